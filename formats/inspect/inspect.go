// Package inspect describes any checkpoint surgeon can read (a safetensors
// file, a sharded folder, a GGUF file, a Hugging Face model folder or a PEFT
// adapter folder) as one neutral report: format, metadata, and a table of
// tensors with dtypes and shapes.
package inspect

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/surgeon-ml/surgeon/formats/gguf"
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
	Config      map[string]any `json:"config,omitempty"`
	TensorCount int            `json:"tensor_count"`
	ParamCount  int64          `json:"param_count"`
	Tensors     []Tensor       `json:"tensors"`
}

// Path inspects the file or folder at path.
func Path(path string) (*Report, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return folder(path)
	}
	kind, err := sniff(path)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "gguf":
		return ggufFile(path)
	case "pytorch":
		return pickleFile(path)
	}
	return safetensorsPath(path, "safetensors")
}

func sniff(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var head [9]byte
	n, err := io.ReadFull(f, head[:])
	if n >= 4 && string(head[:4]) == "GGUF" {
		return "gguf", nil
	}
	if n == 9 && head[8] == '{' || filepath.Ext(path) == ".safetensors" {
		return "safetensors", nil
	}
	if n >= 4 && string(head[:4]) == "PK\x03\x04" || n >= 1 && head[0] == 0x80 {
		return "pytorch", nil
	}
	if err != nil && n < 9 {
		return "", fmt.Errorf("%s: file of %d bytes is too short to be a checkpoint", path, n)
	}
	return "", fmt.Errorf("%s: not a safetensors or GGUF file (unrecognised header)", path)
}

func folder(dir string) (*Report, error) {
	format := "safetensors-folder"
	var cfg map[string]any
	for _, c := range []struct{ file, format string }{
		{"adapter_config.json", "peft-adapter"},
		{"config.json", "hf-model"},
	} {
		p := filepath.Join(dir, c.file)
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		format = c.format
		break
	}
	var r *Report
	var err error
	if format == "peft-adapter" {
		p := filepath.Join(dir, "adapter_model.safetensors")
		if _, statErr := os.Stat(p); statErr != nil {
			return nil, fmt.Errorf("%s: PEFT adapter folder without adapter_model.safetensors", dir)
		}
		r, err = safetensorsPath(p, format)
	} else {
		r, err = safetensorsPath(dir, format)
	}
	if err != nil {
		return nil, err
	}
	r.Path = dir
	r.Config = cfg
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
