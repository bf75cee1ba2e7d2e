// Package checkpoint turns files on disk into ready-to-run models: a Hugging
// Face folder (config.json plus safetensors, single or sharded, F32, F16 or
// BF16) or a GGUF file (the architectures gguf.Architectures lists), built
// as spago models with Hugging Face parameter names.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/detect"
	"github.com/surgeon-ml/surgeon/formats/gguf"
	"github.com/surgeon-ml/surgeon/formats/native"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
	"github.com/surgeon-ml/surgeon/internal/memavail"

	// The architectures a checkpoint can hold.
	_ "github.com/surgeon-ml/surgeon/core/bert"
	_ "github.com/surgeon-ml/surgeon/core/distilbert"
	_ "github.com/surgeon-ml/surgeon/core/gemma"
	_ "github.com/surgeon-ml/surgeon/core/gemma2"
	_ "github.com/surgeon-ml/surgeon/core/gpt2"
	_ "github.com/surgeon-ml/surgeon/core/llama"
	_ "github.com/surgeon-ml/surgeon/core/mistral"
	_ "github.com/surgeon-ml/surgeon/core/phi3"
	_ "github.com/surgeon-ml/surgeon/core/qwen2"
	_ "github.com/surgeon-ml/surgeon/core/qwen3"
	_ "github.com/surgeon-ml/surgeon/core/roberta"
)

// Format names what a path holds; formats/detect decides it.
type Format = detect.Format

// Loaded is a model with what came with it.
type Loaded struct {
	Model model.Model
	// Format is where the model came from.
	Format Format
	// Path is the file or folder the model was loaded from.
	Path string
	// GGUF is the open GGUF file when the model came from one (for its
	// tokenizer); nil otherwise. Close releases it.
	GGUF *gguf.File
	// st is the open checkpoint of a model whose weights stay stored
	// (LoadStored); Close releases it.
	st *safetensors.Model
}

// Close releases files held by the loaded model.
func (l *Loaded) Close() error {
	if l.st != nil {
		return l.st.Close()
	}
	if l.GGUF != nil {
		return l.GGUF.Close()
	}
	return nil
}

// Load reads a model from a Hugging Face folder, a GGUF file or a spago
// native model (folder or file). Parameters are converted to float32;
// every model parameter must be present with its Hugging Face shape, and
// checkpoint tensors the model does not use are an error (apart from known
// buffers such as rotary inv_freq).
func Load(path string) (*Loaded, error) {
	format, err := detect.Path(path)
	if err != nil {
		return nil, err
	}
	switch format {
	case detect.GGUF:
		return loadGGUF(path)
	case detect.HFModel:
		m, err := loadHF(path)
		if err != nil {
			return nil, err
		}
		return &Loaded{Model: m, Format: format, Path: path}, nil
	case detect.Native:
		m, err := native.LoadModel(path)
		if err != nil {
			return nil, err
		}
		return &Loaded{Model: m, Format: format, Path: path}, nil
	case detect.PEFTAdapter, detect.NativeAdapter:
		return nil, fmt.Errorf("%s: is a %s, not a model (pass it with --adapter)", path, format)
	case detect.PyTorch:
		return nil, fmt.Errorf("%s: a bare PyTorch checkpoint cannot be loaded as a model: convert it to safetensors (surgeon convert %s --to safetensors) and put it in a folder with its config.json", path, path)
	default:
		return nil, fmt.Errorf("%s: %s without a config.json: cannot tell the architecture", path, format)
	}
}

func loadHF(dir string) (model.Model, error) {
	cfgPath := filepath.Join(dir, "config.json")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	st, err := safetensors.OpenModel(dir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var values int64
	for _, name := range st.Names() {
		if info, err := st.Info(name); err == nil {
			values += int64(info.NumElements())
		}
	}
	if err := checkFits(dir, values); err != nil {
		return nil, err
	}
	m, err := model.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	src := stSource{st}
	shape := func(name string) ([]int, bool) {
		info, err := st.Info(name)
		if err != nil {
			return nil, false
		}
		return info.Shape, true
	}
	if err := checkTensors(m, shape, st.Names()); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := layer.Load(m, src); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	layer.Freeze(m, true)
	return m, nil
}

// stSource serves a safetensors checkpoint to layer.Load, which decodes
// the parameters held in stored layout straight into their memory
// (layer.IntoSource).
type stSource struct{ m *safetensors.Model }

var _ layer.IntoSource = stSource{}

func (s stSource) Float32(name string) ([]float32, []int, error) {
	info, err := s.m.Info(name)
	if err != nil {
		return nil, nil, err
	}
	v, err := s.m.Float32(name)
	return v, info.Shape, err
}

func (s stSource) Shape(name string) ([]int, error) {
	info, err := s.m.Info(name)
	if err != nil {
		return nil, err
	}
	return info.Shape, nil
}

func (s stSource) Float32Into(name string, dst []float32) error {
	return s.m.Float32Into(name, dst)
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

// openGGUF opens a GGUF model file and builds the model of the family its
// general.architecture names, as its metadata describes, with lazily
// mapped parameters when meta is set (layer.BuildMeta).
func openGGUF(path string, meta bool) (*gguf.File, model.Model, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := gguf.ModelConfig(f)
	if err == nil {
		err = f.CheckDecodable()
	}
	if err == nil && !meta {
		var values int64
		for _, ti := range f.Tensors() {
			n := int64(1)
			for _, d := range ti.Dims {
				n *= int64(d)
			}
			values += n
		}
		err = checkFits(path, values)
	}
	if err == nil {
		var js []byte
		if js, err = json.Marshal(cfg); err != nil {
			err = fmt.Errorf("%s: config: %w", path, err)
		} else {
			build := func() (model.Model, error) { return model.New(js) }
			var m model.Model
			if meta {
				m, err = layer.BuildMeta(build)
			} else {
				m, err = build()
			}
			if err == nil {
				return f, m, nil
			}
			err = fmt.Errorf("%s: %w", path, err)
		}
	}
	f.Close()
	return nil, nil, err
}

// ErrTooBig means a model's weights would not fit in the memory available
// as float32.
var ErrTooBig = errors.New("model too big for the memory available")

// checkFits refuses to read a checkpoint of the given number of values
// into float32 memory when that, plus the process's own needs, exceeds
// the memory available (memavail.Available), before anything is read, so
// that the process does not meet the OOM killer halfway through.
func checkFits(path string, values int64) error {
	avail, from, ok, err := memavail.Available()
	if err != nil {
		return err
	}
	need := 4*values + fitMargin
	if !ok || need <= avail {
		return nil
	}
	return fmt.Errorf("%s: its %d weights need about %d MiB as float32 (with %d MiB for the process), but %d MiB is available (%s): keep the weights stored instead (--weights stored, or model.weights = \"stored\" in a recipe), or free memory: %w",
		path, values, need>>20, fitMargin>>20, avail>>20, from, ErrTooBig)
}

// fitMargin is what checkFits adds to the float32 weights for the
// process itself.
const fitMargin = 256 << 20

func loadGGUF(path string) (*Loaded, error) {
	f, m, err := openGGUF(path, false)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	ts, err := gguf.ModelTensors(f)
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
	return &Loaded{Model: m, Format: detect.GGUF, Path: path, GGUF: f}, nil
}
