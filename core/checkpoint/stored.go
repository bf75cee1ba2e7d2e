package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/formats/detect"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
)

// LoadStored loads a model like Load, except that the linear weights of a
// Hugging Face folder stay where they are stored: memory-mapped in their
// file's dtype (F32, F16 or BF16), each filled into a float32 buffer only
// while a product needs it (layer.Linear.Source, ops.StoredLinear). Only
// embeddings, norms and biases are read into memory, so a model of any
// size holds about one layer's float32 weight at a time. Results equal
// Load's. Adapters attach as usual; code that needs a base weight's
// values materializes it (layer.Linear.Materialize). Other formats load
// as Load does.
func LoadStored(path string) (*Loaded, error) {
	if f, err := detect.Path(path); err != nil || f != detect.HFModel {
		return Load(path)
	}
	cfgPath := filepath.Join(path, "config.json")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	m, err := layer.BuildMeta(func() (model.Model, error) { return model.New(cfg) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	st, err := safetensors.OpenModel(path)
	if err != nil {
		return nil, err
	}
	shape := func(name string) ([]int, bool) {
		info, err := st.Info(name)
		if err != nil {
			return nil, false
		}
		return info.Shape, true
	}
	if err := checkTensors(m, shape, st.Names()); err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	linears := map[string]*layer.Linear{}
	for _, mod := range layer.Modules(m) {
		if s, ok := mod.Model.(*layer.Slot); ok && s.Base() != nil {
			linears[mod.Path+".weight"] = s.Base()
		}
	}
	for _, p := range layer.Params(m) {
		info, err := st.Info(p.Path)
		if err != nil {
			continue // checked above: a parameter the checkpoint need not hold
		}
		if l := linears[p.Path]; l != nil {
			l.Source = &storedWeight{st: st, name: p.Path, dtype: string(info.DType), size: info.Size(), transposed: p.Transposed, rows: l.Out(), cols: l.In()}
			continue
		}
		if !p.Transposed {
			err = st.Float32Into(p.Path, ops.Data(p.Param))
		} else {
			var v []float32
			if v, err = st.Float32(p.Path); err == nil {
				p.SetStored(v)
			}
		}
		st.Evict(p.Path)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("%s: parameter %s: %w", path, p.Path, err)
		}
	}
	layer.Freeze(m, true)
	return &Loaded{Model: m, Format: detect.HFModel, Path: path, st: st}, nil
}

// storedWeight is a linear weight in a memory-mapped safetensors file.
type storedWeight struct {
	st         *safetensors.Model
	name       string
	dtype      string
	size       int64
	transposed bool // stored [in, out] (Conv1D)
	rows, cols int  // the layer's [out, in]
}

// Fill decodes the weight into dst ([out, in]) and drops its pages from
// the process's mapping: the page cache keeps them for the next use.
func (w *storedWeight) Fill(dst []float32) error {
	defer w.st.Evict(w.name)
	if !w.transposed {
		return w.st.Float32Into(w.name, dst)
	}
	v, err := w.st.Float32(w.name)
	if err != nil {
		return err
	}
	for i := 0; i < w.cols; i++ { // stored row i is input feature i
		for j, x := range v[i*w.rows : (i+1)*w.rows] {
			dst[j*w.cols+i] = x
		}
	}
	return nil
}

// DType is the file's dtype.
func (w *storedWeight) DType() string { return w.dtype }

// Bytes is the size in the file.
func (w *storedWeight) Bytes() int64 { return w.size }
