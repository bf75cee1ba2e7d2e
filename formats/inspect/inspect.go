// Package inspect describes any checkpoint surgeon can read (a safetensors
// file, a sharded folder, a GGUF file, a Hugging Face model folder, a PEFT
// adapter folder, a PyTorch pickle, a spago native model or adapter) as one
// neutral report: format, metadata, and a table of
// tensors with dtypes and shapes; for a model, the architecture family
// surgeon builds for it and its head.
package inspect

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/detect"
	"github.com/surgeon-ml/surgeon/formats/gguf"
	"github.com/surgeon-ml/surgeon/formats/native"
	"github.com/surgeon-ml/surgeon/formats/pickle"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
)

// Tensor is one row of the report's tensor table.
type Tensor struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
	// File is the shard holding the tensor, for sharded checkpoints.
	File string `json:"file,omitempty"`
}

// Report describes a checkpoint.
type Report struct {
	Path   string `json:"path"`
	Format string `json:"format"`
	// Version is the GGUF version (0 for other formats).
	Version int `json:"version,omitempty"`
	// Files lists the data files read.
	Files []string `json:"files"`
	// Metadata holds safetensors __metadata__ or GGUF key/values (arrays
	// summarised).
	Metadata map[string]string `json:"metadata,omitempty"`
	// Config is config.json or adapter_config.json, when present.
	Config map[string]any `json:"config,omitempty"`
	// Family is the architecture surgeon builds for a model (its
	// registered model_type, "llama", "gpt2", "bert", ...) and Head what
	// its logits are: "causal-lm", or "sequence-classification" over
	// Labels classes. They are empty for files that are not models and,
	// with FamilyError saying why, for a config surgeon cannot build.
	Family      string `json:"family,omitempty"`
	Head        string `json:"head,omitempty"`
	Labels      int    `json:"labels,omitempty"`
	FamilyError string `json:"family_error,omitempty"`
	// BitsPerWeight is a GGUF file's tensor data bits per element (32 for
	// all-F32, about 4.5 for Q4_K); 0 for other formats.
	BitsPerWeight float64  `json:"bits_per_weight,omitempty"`
	TensorCount   int      `json:"tensor_count"`
	ParamCount    int64    `json:"param_count"`
	Tensors       []Tensor `json:"tensors"`
}

// Path inspects the file or folder at path; formats/detect decides what it
// holds.
func Path(path string) (*Report, error) {
	format, err := detect.Path(path)
	if err != nil {
		return nil, err
	}
	switch format {
	case detect.GGUF:
		return ggufFile(path)
	case detect.PyTorch:
		return pickleFile(path)
	case detect.Safetensors:
		return safetensorsPath(path, string(format))
	case detect.Native:
		return nativeModel(path)
	case detect.NativeAdapter:
		return nativeAdapter(path)
	case detect.PEFTAdapter, detect.HFModel, detect.SafetensorsFolder:
		return folder(path, format)
	}
	return nil, fmt.Errorf("%s: cannot inspect a %s", path, format)
}

// folder reports a PEFT adapter, Hugging Face model or safetensors folder.
func folder(dir string, format detect.Format) (*Report, error) {
	var cfg map[string]any
	cfgFile := map[detect.Format]string{detect.PEFTAdapter: detect.AdapterConfigFile, detect.HFModel: detect.ConfigFile}[format]
	if cfgFile != "" {
		p := filepath.Join(dir, cfgFile)
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	var r *Report
	var err error
	if format == detect.PEFTAdapter {
		p := filepath.Join(dir, "adapter_model.safetensors")
		if _, statErr := os.Stat(p); statErr != nil {
			return nil, fmt.Errorf("%s: PEFT adapter folder without adapter_model.safetensors", dir)
		}
		r, err = safetensorsPath(p, string(format))
	} else {
		r, err = safetensorsPath(dir, string(format))
	}
	if err != nil {
		return nil, err
	}
	r.Path = dir
	r.Config = cfg
	if format == detect.HFModel {
		r.describeConfig(filepath.Join(dir, cfgFile))
	}
	return r, nil
}

// describeConfig names the family and head of the model the config file
// describes. The model is built with lazily mapped parameters
// (layer.BuildMeta) and released at once, so this costs no memory
// whatever the model's size. A config surgeon cannot build is not an
// error of the report: FamilyError says why.
func (r *Report) describeConfig(path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		r.FamilyError = err.Error()
		return
	}
	if err := r.describeJSON(raw); err != nil {
		r.FamilyError = fmt.Sprintf("%s: %v", path, err)
	}
}

// describeJSON names the family and head of the model a config.json
// document describes (see describeConfig).
func (r *Report) describeJSON(raw []byte) error {
	m, err := layer.BuildMeta(func() (model.Model, error) { return model.New(raw) })
	if err != nil {
		return err
	}
	r.describe(m)
	for _, p := range layer.Params(m) {
		layer.Release(p.Param)
	}
	return nil
}

// describe names the family and head of m.
func (r *Report) describe(m model.Model) {
	r.Family, _ = m.HFConfig()["model_type"].(string)
	r.Head = string(m.Task())
	if m.Task() == model.SequenceClassification {
		r.Labels = model.NumLabels(m)
	}
}

// nativeModel reports a spago native model (folder or file): its
// parameters (float32), its config, and its tokenizer files.
func nativeModel(path string) (*Report, error) {
	l, err := checkpoint.Load(path)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	r := &Report{Path: path, Format: string(detect.Native), Files: []string{path}, Config: l.Model.HFConfig()}
	r.describe(l.Model)
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		r.Files = []string{filepath.Join(path, detect.NativeModelFile)}
		tok, err := checkpoint.TokenizerFiles(l)
		if err != nil {
			return nil, err
		}
		names := slices.Sorted(maps.Keys(tok))
		r.Metadata = map[string]string{"tokenizer_files": strings.Join(names, ", ")}
		if len(names) == 0 {
			r.Metadata["tokenizer_files"] = "(none)"
		}
	}
	for _, p := range layer.Params(l.Model) {
		r.Tensors = append(r.Tensors, Tensor{Name: p.Path, DType: string(tensor.F32), Shape: p.Shape})
		r.ParamCount += int64(tensor.NumElements(p.Shape))
	}
	r.TensorCount = len(r.Tensors)
	return r, nil
}

// nativeAdapter reports a spago native adapter file.
func nativeAdapter(path string) (*Report, error) {
	a, err := native.LoadAdapter(path)
	if err != nil {
		return nil, err
	}
	r := &Report{Path: path, Format: string(detect.NativeAdapter), Files: []string{path}}
	if err := json.Unmarshal([]byte(a.ConfigJSON), &r.Config); err != nil {
		return nil, fmt.Errorf("%s: adapter config: %w", path, err)
	}
	if len(a.Names) != len(a.Shapes) {
		return nil, fmt.Errorf("%s: %d names for %d shapes", path, len(a.Names), len(a.Shapes))
	}
	for i, n := range a.Names {
		module, param, _ := strings.Cut(n, "|")
		name := param
		if module != "" {
			name = module + "." + param
		}
		r.Tensors = append(r.Tensors, Tensor{Name: name, DType: string(tensor.F32), Shape: a.Shapes[i]})
		r.ParamCount += int64(tensor.NumElements(a.Shapes[i]))
	}
	r.TensorCount = len(r.Tensors)
	return r, nil
}

func safetensorsPath(path, format string) (*Report, error) {
	m, err := safetensors.OpenModel(path)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	r := &Report{Path: path, Format: format, Metadata: m.Metadata()}
	shards := m.Shards()
	for _, s := range shards {
		r.Files = append(r.Files, s.Path())
	}
	for _, name := range m.Names() {
		info, err := m.Info(name)
		if err != nil {
			return nil, err
		}
		t := Tensor{Name: name, DType: string(info.DType), Shape: info.Shape}
		if len(shards) > 1 {
			if f, err := m.Shard(name); err == nil {
				t.File = filepath.Base(f.Path())
			}
		}
		r.Tensors = append(r.Tensors, t)
		r.ParamCount += int64(info.NumElements())
	}
	r.TensorCount = len(r.Tensors)
	return r, nil
}

func ggufFile(path string) (*Report, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &Report{Path: path, Format: "gguf", Version: f.Version(), Files: []string{path}, Metadata: map[string]string{}}
	for _, k := range f.SortedKeys() {
		v, err := f.Value(k)
		if err != nil {
			return nil, err
		}
		r.Metadata[k] = v.String()
	}
	for _, ti := range f.Tensors() {
		r.Tensors = append(r.Tensors, Tensor{Name: ti.Name, DType: ti.Type.String(), Shape: ti.Shape()})
		r.ParamCount += int64(ti.NumElements())
	}
	r.TensorCount = len(r.Tensors)
	r.BitsPerWeight = f.BitsPerWeight()
	if r.Metadata["general.type"] != "adapter" { // a model: its family and head
		cfg, err := gguf.ModelConfig(f)
		if err == nil {
			var raw []byte
			if raw, err = json.Marshal(cfg); err == nil {
				err = r.describeJSON(raw)
			}
		}
		if err != nil {
			r.FamilyError = err.Error()
		}
	}
	return r, nil
}

func pickleFile(path string) (*Report, error) {
	f, err := pickle.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &Report{Path: path, Format: "pytorch", Files: []string{path}}
	for _, name := range f.Names() {
		t, err := f.Tensor(name)
		if err != nil {
			return nil, err
		}
		r.Tensors = append(r.Tensors, Tensor{Name: name, DType: string(t.DType), Shape: t.Shape})
		r.ParamCount += int64(t.NumElements())
	}
	if sk := f.Skipped(); len(sk) > 0 {
		r.Metadata = map[string]string{"skipped_non_tensors": strings.Join(sk, ", ")}
	}
	r.TensorCount = len(r.Tensors)
	return r, nil
}

// SortedMetadataKeys returns the report's metadata keys in order.
func (r *Report) SortedMetadataKeys() []string {
	keys := make([]string, 0, len(r.Metadata))
	for k := range r.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
