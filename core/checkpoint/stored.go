package checkpoint

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/linalg"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/detect"
	"github.com/surgeon-ml/surgeon/formats/gguf"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
)

// LoadStored loads a model like Load, except that the linear weights and
// embedding tables of a Hugging Face folder or a GGUF file stay where they
// are stored: memory-mapped in their file's type (F32, F16 or BF16;
// quantized GGUF blocks stay quantized: QLoRA). A linear weight is filled
// into a float32 buffer (or multiplied from its halves or blocks) only
// while a product needs it (layer.Linear.Source, ops.StoredLinear); a
// lookup reads only the table rows it needs (layer.Embedding.Source,
// ops.StoredEmbedding). Only norms and biases are read into memory, so a
// model of any size holds about one layer's float32 weight at a time.
// Results equal Load's. Adapters attach as usual; code that needs a base
// weight's values materializes it (layer.MaterializeAll). Other formats
// load as Load does.
func LoadStored(path string) (*Loaded, error) {
	f, err := detect.Path(path)
	if err == nil && f == detect.GGUF {
		return loadGGUFStored(path)
	}
	if err != nil || f != detect.HFModel {
		return Load(path)
	}
	sk, err := OpenSkeleton(path)
	if err != nil {
		return nil, err
	}
	m, st := sk.Model, sk.st
	linears := layer.Linears(m)
	tables := layer.Embeddings(m)
	for _, p := range layer.Params(m) {
		info, err := st.Info(p.Path)
		if err != nil {
			continue // checked above: a parameter the checkpoint need not hold
		}
		w := &storedWeight{st: st, name: p.Path, dtype: string(info.DType), size: info.Size(), transposed: p.Transposed}
		module, isWeight := strings.CutSuffix(p.Path, ".weight")
		if l := linears[module]; l != nil && isWeight {
			w.rows, w.cols = l.Out(), l.In()
			l.Source = w
			continue
		}
		if e := tables[module]; e != nil && isWeight && w.rowsReadable() {
			w.rows, w.cols = p.Shape[0], p.Shape[1]
			e.Source = w
			continue
		}
		if err := sk.Fill(p); err != nil {
			sk.Close()
			return nil, fmt.Errorf("parameter %s: %w", p.Path, err)
		}
	}
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
	return decodeInto(w.st, w.name, dst, w.transposed, w.rows, w.cols)
}

// Half reports the weight's type when it is BF16 or F16 stored [out, in]
// (ops.HalfFiller): its products then widen it as they pack it.
func (w *storedWeight) Half() (linalg.Half, bool) {
	if w.transposed || !littleEndian {
		return 0, false
	}
	switch w.dtype {
	case string(tensor.BF16):
		return linalg.BF16, true
	case string(tensor.F16):
		return linalg.F16, true
	}
	return 0, false
}

// FillHalf reads the weight's stored halves into dst, [out, in].
func (w *storedWeight) FillHalf(dst []uint16) error {
	if _, ok := w.Half(); !ok {
		return fmt.Errorf("tensor %q: %s stored %v is not a half-precision [out, in] weight", w.name, w.dtype, w.transposed)
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 2*len(dst))
	return w.st.RawInto(w.name, b)
}

// littleEndian: stored halves are little-endian, usable as uint16 as read
// only on such a host.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// decodeInto decodes the named tensor into dst, a layer's [out, in]
// layout; transposed says the file stores it [in, out] (Conv1D). The
// tensor's mapped pages are dropped afterwards: the page cache keeps them.
func decodeInto(st *safetensors.Model, name string, dst []float32, transposed bool, out, in int) error {
	defer st.Evict(name)
	if !transposed {
		return st.Float32Into(name, dst)
	}
	v, err := st.Float32(name)
	if err != nil {
		return err
	}
	for i := 0; i < in; i++ { // stored row i is input feature i
		for j, x := range v[i*out : (i+1)*out] {
			dst[j*in+i] = x
		}
	}
	return nil
}

// rowsReadable says a table of this weight's dtype and layout is read by
// rows (FillRows): float tensors stored as the model holds them.
func (w *storedWeight) rowsReadable() bool {
	switch tensor.DType(w.dtype) {
	case tensor.F32, tensor.F16, tensor.BF16:
		return !w.transposed
	}
	return false
}

// FillRows decodes rows ids of the table into dst (ops.RowFiller).
func (w *storedWeight) FillRows(ids []int, dst []float32) error {
	return w.st.RowsInto(w.name, ids, dst)
}

// DType is the file's dtype.
func (w *storedWeight) DType() string { return w.dtype }

// Bytes is the size in the file.
func (w *storedWeight) Bytes() int64 { return w.size }

// loadGGUFStored is LoadStored for a GGUF file: embeddings, norms and
// biases are read (dequantized, in Hugging Face's conventions) into
// memory, linear weights stay in the mapped file in their GGUF type and
// are dequantized, with llama.cpp's q/k row order undone, each time a
// product needs them.
func loadGGUFStored(path string) (*Loaded, error) {
	f, m, err := openGGUF(path, true)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	linears, tables := layer.Linears(m), layer.Embeddings(m)
	params := map[string]layer.Param{}
	for _, p := range layer.Params(m) {
		params[p.Path] = p
	}
	var names []string
	seen := map[string]bool{}
	for _, ti := range f.Tensors() {
		if gguf.ConfigTensor(f, ti.Name) {
			continue // read into the config
		}
		hf, shape, known, err := gguf.HFTensorName(f, ti.Name)
		if err != nil {
			return nil, err
		}
		if !known {
			arch, _ := gguf.Architecture(f)
			return nil, fmt.Errorf("%s: tensor %q has no Hugging Face equivalent in architecture %s", path, ti.Name, arch)
		}
		names = append(names, hf)
		p, used := params[hf]
		if !used {
			continue // checkUnused names it below
		}
		if !slices.Equal(shape, p.Shape) {
			return nil, fmt.Errorf("%s: tensor %s (%s): shape %v, the model expects %v", path, ti.Name, hf, shape, p.Shape)
		}
		seen[hf] = true
		w := &ggufWeight{f: f, name: ti.Name, dtype: ti.Type.String(), size: int64(ti.Size)}
		module, isWeight := strings.CutSuffix(hf, ".weight")
		if l := linears[module]; l != nil && isWeight {
			l.Source = w
			continue
		}
		// A table whose rows are stored as the model reads them stays in
		// its GGUF type too: lookups dequantize the rows they need.
		if e := tables[module]; e != nil && isWeight {
			if tab, err := gguf.OpenTable(f, ti.Name); err == nil {
				w.table, e.Source = tab, w
				continue
			}
		}
		if !p.Transposed {
			// Straight into the parameter: no float32 copies of a
			// quantized embedding in between.
			if err := gguf.ModelTensorInto(f, ti.Name, ops.Data(p.Param)); err != nil {
				return nil, err
			}
			continue
		}
		t, err := gguf.ModelTensor(f, ti.Name)
		if err != nil {
			return nil, err
		}
		v, err := t.Float32()
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", path, ti.Name, err)
		}
		p.SetStored(v)
	}
	for name, p := range params {
		if !seen[name] {
			return nil, fmt.Errorf("%s: missing %s %v", path, name, p.Shape)
		}
	}
	if err := checkUnused(m, names); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	layer.Freeze(m, true)
	ok = true
	return &Loaded{Model: m, Format: detect.GGUF, Path: path, GGUF: f}, nil
}

// ggufWeight is a linear weight in a memory-mapped GGUF file, quantized or
// not.
type ggufWeight struct {
	f     *gguf.File
	name  string
	dtype string
	size  int64
	q     blocks      // the quantized blocks, for Matrix
	table *gguf.Table // an embedding table's rows, for FillRows
}

// Fill dequantizes the weight into dst in the layer's [out, in] layout.
func (w *ggufWeight) Fill(dst []float32) error {
	return gguf.WeightInto(w.f, w.name, dst)
}

// FillRows dequantizes rows ids of the table into dst (ops.RowFiller).
func (w *ggufWeight) FillRows(ids []int, dst []float32) error {
	if w.table == nil {
		return fmt.Errorf("%s: tensor %q is not read by rows", w.f.Name(), w.name)
	}
	return w.table.Into(ids, dst)
}

// DType is the GGUF type ("Q4_K", "F16", ...).
func (w *ggufWeight) DType() string { return w.dtype }

// Bytes is the size in the file.
func (w *ggufWeight) Bytes() int64 { return w.size }
