// Package checkpoint turns files on disk into ready-to-run models: a Hugging
// Face folder (config.json plus safetensors, single or sharded, F32, F16 or
// BF16) or a GGUF file (Llama), built as spago models with Hugging Face
// parameter names.
package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"encoding/json"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/gguf"
	"github.com/surgeon-ml/surgeon/formats/native"
	"github.com/surgeon-ml/surgeon/formats/safetensors"

	// The architectures a checkpoint can hold.
	_ "github.com/surgeon-ml/surgeon/core/bert"
	_ "github.com/surgeon-ml/surgeon/core/llama"
)

// Format names what a path holds.
type Format string

// The formats Detect recognises.
const (
	GGUF        Format = "gguf"
	Safetensors Format = "safetensors"
	HFFolder    Format = "hf-folder"
	PEFTAdapter Format = "peft-adapter"
	Native      Format = "native"
)

// Detect tells what path holds from its content: a GGUF file, a safetensors
// file, a Hugging Face model folder (config.json), a PEFT adapter folder
// (adapter_config.json) or a folder of safetensors shards.
func Detect(path string) (Format, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		switch {
		case exists(filepath.Join(path, "adapter_config.json")):
			return PEFTAdapter, nil
		case exists(filepath.Join(path, "config.json")):
			return HFFolder, nil
		case exists(filepath.Join(path, safetensors.SingleFileName)), exists(filepath.Join(path, safetensors.IndexFileName)):
			return Safetensors, nil
		}
		if m, _ := filepath.Glob(filepath.Join(path, "*.safetensors")); len(m) > 0 {
			return Safetensors, nil
		}
		return "", fmt.Errorf("%s: folder holds no config.json, adapter_config.json or safetensors files", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var head [9]byte
	n, _ := io.ReadFull(f, head[:])
	if n >= 4 && string(head[:4]) == "GGUF" {
		return GGUF, nil
	}
	if strings.HasSuffix(path, ".safetensors") ||
		(n == 9 && head[8] == '{' && binary.LittleEndian.Uint64(head[:8]) < uint64(st.Size())) {
		return Safetensors, nil
	}
	if strings.HasSuffix(path, native.Ext) {
		return Native, nil
	}
	return "", fmt.Errorf("%s: not a GGUF, safetensors or spago native (%s) file", path, native.Ext)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Loaded is a model with what came with it.
type Loaded struct {
	Model model.Model
	// Format is where the model came from.
	Format Format
	// GGUF is the open GGUF file when the model came from one (for its
	// tokenizer); nil otherwise. Close releases it.
	GGUF *gguf.File
}

// Close releases files held by the loaded model.
func (l *Loaded) Close() error {
	if l.GGUF != nil {
		return l.GGUF.Close()
	}
	return nil
}

// Load reads a model from a Hugging Face folder or a GGUF file. Parameters
// are converted to float32; every model parameter must be present with its
// Hugging Face shape, and checkpoint tensors the model does not use are an
// error (apart from known buffers such as rotary inv_freq).
func Load(path string) (*Loaded, error) {
	format, err := Detect(path)
	if err != nil {
		return nil, err
	}
	switch format {
	case GGUF:
		return loadGGUF(path)
	case HFFolder:
		m, err := loadHF(path)
		if err != nil {
			return nil, err
		}
		return &Loaded{Model: m, Format: HFFolder}, nil
	case Native:
		m, err := native.LoadModel(path)
		if err != nil {
			return nil, err
		}
		return &Loaded{Model: m, Format: Native}, nil
	case PEFTAdapter:
		return nil, fmt.Errorf("%s: is a PEFT adapter, not a model (pass it with --adapter)", path)
	default:
		return nil, fmt.Errorf("%s: safetensors without a config.json: cannot tell the architecture", path)
	}
}

func loadHF(dir string) (model.Model, error) {
	cfgPath := filepath.Join(dir, "config.json")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	m, err := model.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	st, err := safetensors.OpenModel(dir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	src := stSource{st}
	if err := layer.Load(m, src); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := checkUnused(m, st.Names()); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	layer.Freeze(m, true)
	return m, nil
}

type stSource struct{ m *safetensors.Model }

func (s stSource) Float32(name string) ([]float32, []int, error) {
	info, err := s.m.Info(name)
	if err != nil {
		return nil, nil, err
	}
	v, err := s.m.Float32(name)
	return v, info.Shape, err
}

// ignorable are checkpoint buffers that are not parameters.
func ignorable(name string) bool {
	return strings.HasSuffix(name, "rotary_emb.inv_freq") || strings.HasSuffix(name, "embeddings.position_ids") ||
		strings.HasSuffix(name, "masked_bias") || strings.HasSuffix(name, ".attn.bias")
}

func checkUnused(m model.Model, names []string) error {
	used := map[string]bool{}
	for _, p := range layer.Params(m) {
		used[p.Path] = true
	}
	var extra []string
	for _, n := range names {
		if !used[n] && !ignorable(n) {
			if n == "lm_head.weight" && m.HFConfig()["tie_word_embeddings"] == true {
				continue
			}
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		if len(extra) > 5 {
			extra = append(extra[:5], fmt.Sprintf("... (%d more)", len(extra)-5))
		}
		return fmt.Errorf("checkpoint tensors not used by the model: %s", strings.Join(extra, ", "))
	}
	return nil
}

type mapSource map[string]tensor.Tensor

func (s mapSource) Float32(name string) ([]float32, []int, error) {
	t, ok := s[name]
	if !ok {
		return nil, nil, errors.New("missing from the checkpoint")
	}
	v, err := t.Float32()
	return v, t.Shape, err
}

func loadGGUF(path string) (*Loaded, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	cfg, err := gguf.LlamaConfig(f)
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", path, err)
	}
	m, err := model.New(js)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ts, err := gguf.LlamaTensors(f)
	if err != nil {
		return nil, err
	}
	src := mapSource{}
	var names []string
	for _, t := range ts {
		src[t.Name] = t
		names = append(names, t.Name)
	}
	if err := layer.Load(m, src); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkUnused(m, names); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	layer.Freeze(m, true)
	ok = true
	return &Loaded{Model: m, Format: GGUF, GGUF: f}, nil
}
