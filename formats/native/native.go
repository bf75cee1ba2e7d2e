// Package native reads and writes spago's own serialization: a model (or an
// adapter's parameters) encoded with encoding/gob exactly as spago's nn.Dump
// does, so any spago program can nn.Load it given surgeon's model types.
//
// A native model is a folder (conventionally named NAME.spago) that carries
// what running the model needs:
//
//	model.spago              the model, nn.Dump gob (nn.Load[*llama.Model] reads it)
//	config.json              the model's Hugging Face config (the gob holds the same)
//	tokenizer.model          SentencePiece model (Llama; from a GGUF's vocabulary too)
//	vocab.txt                or a WordPiece vocabulary (BERT)
//	tokenizer_config.json    tokenizer options (do_lower_case, special tokens)
//	special_tokens_map.json
//
// Only model.spago is required. A bare model.spago-style gob file, as
// earlier versions wrote and SaveModel still writes, loads too, without a
// tokenizer.
package native

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/detect"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/internal/atomicfs"
)

// Ext is the conventional extension of native files and folders.
const Ext = detect.NativeExt

// ModelFile is the gob-encoded model inside a native folder.
const ModelFile = detect.NativeModelFile

// ConfigFile is the model's Hugging Face config inside a native folder.
const ConfigFile = detect.ConfigFile

// SaveModel writes m alone as one file with nn.Dump (gob of the concrete
// model type), without config.json or tokenizer; Save writes the folder.
func SaveModel(path string, m model.Model) error {
	if err := checkSavable(path, m); err != nil {
		return err
	}
	return atomicfs.WriteFile(path, func(w io.Writer) error { return nn.Dump(m, w) })
}

func checkSavable(path string, m model.Model) error {
	if len(layer.Params(m)) == 0 {
		return fmt.Errorf("%s: model has no parameters", path)
	}
	for _, p := range layer.Params(m) {
		if filepath.Ext(p.Path) == ".base_layer" || bytes.Contains([]byte(p.Path), []byte(".base_layer.")) {
			return fmt.Errorf("%s: the model has adapters attached; merge or unload them first", path)
		}
	}
	return nil
}

// Save writes m as a native folder at dir: ModelFile (nn.Dump gob),
// ConfigFile, and files (name -> content, typically the tokenizer files;
// names must be plain file names). The folder is assembled under a
// temporary name beside dir and renamed into place; an existing dir is
// replaced only once the new one is complete.
func Save(dir string, m model.Model, files map[string][]byte) (err error) {
	if err := checkSavable(dir, m); err != nil {
		return err
	}
	for name := range files {
		if name == ModelFile || name == ConfigFile || name != filepath.Base(name) || name == "." || name == ".." {
			return fmt.Errorf("%s: cannot write extra file %q into a native folder", dir, name)
		}
	}
	cfg, err := json.MarshalIndent(m.HFConfig(), "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %s: %w", dir, ConfigFile, err)
	}
	tmp, err := atomicfs.TempDir(dir)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := atomicfs.WriteFile(filepath.Join(tmp, ModelFile), func(w io.Writer) error { return nn.Dump(m, w) }); err != nil {
		return err
	}
	files = maps.Clone(files)
	if files == nil {
		files = map[string][]byte{}
	}
	files[ConfigFile] = append(cfg, '\n')
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), data, atomicfs.FilePerm); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
	return atomicfs.ReplaceDir(tmp, dir)
}

// ErrNotNative is returned when a file is not a native model of a known
// architecture.
var ErrNotNative = errors.New("not a spago native model of a known architecture")

// LoadModel reads a native model, a folder (see the package doc) or a
// single gob file, trying every registered architecture. In a folder, the
// model's config must agree with config.json on the architecture.
// Parameters come back frozen.
func LoadModel(path string) (model.Model, error) {
	file := path
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		file = filepath.Join(path, ModelFile)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m, err := model.DecodeNative(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if st.IsDir() {
		if err := checkConfig(filepath.Join(path, ConfigFile), m); err != nil {
			return nil, err
		}
	}
	layer.Freeze(m, true)
	return m, nil
}

// checkConfig compares the architecture fields of the config.json at path
// (when present) with the decoded model's own config.
func checkConfig(path string, m model.Model) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var file map[string]any
	if err := json.Unmarshal(data, &file); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	own := m.HFConfig()
	for _, k := range []string{"model_type", "architectures"} {
		a, _ := json.Marshal(file[k])
		b, _ := json.Marshal(own[k])
		if !bytes.Equal(a, b) {
			return fmt.Errorf("%s: %s is %s but %s holds %s", path, k, a, ModelFile, b)
		}
	}
	return nil
}

// Adapter is an adapter in native form: the PEFT configuration and the
// adapter parameters as spago params, keyed by module path and PEFT name.
type Adapter struct {
	nn.Module
	// ConfigJSON is adapter_config.json.
	ConfigJSON string
	// Names are "<module path>|<param name>" for adapter parameters and
	// "|<model param name>" for fully trained tensors (modules_to_save).
	Names  []string
	Shapes [][]int
	Values []*nn.Param
}

func init() { gob.Register(&Adapter{}) }

// FromPEFT converts a PEFT adapter to native form.
func FromPEFT(a *peft.Adapter) (*Adapter, error) {
	var cfg any = a.Config
	if a.Raw != nil {
		cfg = a.Raw
	}
	cj, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	out := &Adapter{ConfigJSON: string(cj)}
	add := func(name string, t tensor.Tensor) error {
		v, err := t.Float32()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		rows, cols := 1, len(v)
		if len(t.Shape) == 2 {
			rows, cols = t.Shape[0], t.Shape[1]
		}
		out.Names = append(out.Names, name)
		out.Shapes = append(out.Shapes, append([]int(nil), t.Shape...))
		out.Values = append(out.Values, nn.NewParam(ops.New(rows, cols, v)))
		return nil
	}
	for _, m := range a.ModuleNames() {
		for _, p := range sortedKeys(a.Modules[m]) {
			if err := add(m+"|"+p, a.Modules[m][p]); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range sortedKeys(a.Saved) {
		if err := add("|"+n, a.Saved[n]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ToPEFT converts a native adapter back to PEFT form (F32 tensors).
func (a *Adapter) ToPEFT() (*peft.Adapter, error) {
	out := &peft.Adapter{Modules: map[string]map[string]tensor.Tensor{}, Saved: map[string]tensor.Tensor{}}
	if err := json.Unmarshal([]byte(a.ConfigJSON), &out.Config); err != nil {
		return nil, fmt.Errorf("native adapter config: %w", err)
	}
	if err := json.Unmarshal([]byte(a.ConfigJSON), &out.Raw); err != nil {
		return nil, fmt.Errorf("native adapter config: %w", err)
	}
	if len(a.Names) != len(a.Values) || len(a.Names) != len(a.Shapes) {
		return nil, fmt.Errorf("native adapter: %d names, %d shapes, %d values", len(a.Names), len(a.Shapes), len(a.Values))
	}
	for i, n := range a.Names {
		data, err := tensor.FromFloat32(tensor.F32, mat.Data[float32](a.Values[i].Value()))
		if err != nil {
			return nil, err
		}
		module, param, ok := cut(n)
		if !ok {
			return nil, fmt.Errorf("native adapter: malformed name %q", n)
		}
		t := tensor.Tensor{DType: tensor.F32, Shape: a.Shapes[i], Data: data}
		if tensor.NumElements(t.Shape)*4 != len(data) {
			return nil, fmt.Errorf("native adapter: %s: shape %v for %d values", n, t.Shape, len(data)/4)
		}
		if module == "" {
			t.Name = param
			out.Saved[param] = t
			continue
		}
		t.Name = module + "." + param
		if out.Modules[module] == nil {
			out.Modules[module] = map[string]tensor.Tensor{}
		}
		out.Modules[module][param] = t
	}
	return out, nil
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '|' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// SaveAdapter writes a native adapter with nn.Dump.
func SaveAdapter(path string, a *Adapter) error {
	return atomicfs.WriteFile(path, func(w io.Writer) error { return nn.Dump(a, w) })
}

// LoadAdapter reads a native adapter.
func LoadAdapter(path string) (*Adapter, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := nn.Load[*Adapter](f)
	if err != nil {
		return nil, fmt.Errorf("%s: not a native adapter: %w", path, err)
	}
	return a, nil
}
