package gguf

import "fmt"

// Table is a GGUF model tensor read by rows (a table such as token_embd,
// whose Hugging Face form is [rows, cols] with GGUF's ne0 = cols): the
// lookup of an embedding kept in its GGUF type, which dequantizes only
// the blocks of the rows it is asked for. OpenTable checks the tensor
// once; each lookup only slices its rows.
type Table struct {
	f          *File
	name       string
	typ        GGMLType
	rows, cols int
	rowBytes   int
	data       []byte
}

// OpenTable returns the GGUF model tensor called name (its GGUF name) as
// a Table. Tensors that ModelTensor transforms (permuted q/k rows, Gemma's
// offset norms, GPT-2's transposed weights) are refused: they are read
// whole.
func OpenTable(f *File, name string) (*Table, error) {
	ti, h, hf, err := f.modelInfo(name)
	if err != nil {
		return nil, err
	}
	if len(ti.Dims) != 2 {
		return nil, fmt.Errorf("%s: tensor %q: %d dimensions: rows are read from 2-D tensors only", f.name, name, len(ti.Dims))
	}
	if h.qkHeads(name) > 0 || h.arch.offsetNorm(hf) || h.arch.transposed(name, len(ti.Dims)) {
		return nil, fmt.Errorf("%s: tensor %q: its Hugging Face values are not its stored rows", f.name, name)
	}
	if !ti.Type.Dequantizable() {
		return nil, fmt.Errorf("%s: tensor %q: ggml type %s cannot be dequantized (supported: %s): %w", f.name, name, ti.Type, supportedList(), ErrUnsupportedType)
	}
	t := &Table{f: f, name: name, typ: ti.Type, cols: int(ti.Dims[0]), rows: int(ti.Dims[1])}
	bs, bb := ti.Type.BlockSize(), ti.Type.BlockBytes()
	if t.cols%bs != 0 {
		return nil, fmt.Errorf("%s: tensor %q: rows of %d are not whole %d-element %s blocks", f.name, name, t.cols, bs, ti.Type)
	}
	if t.data, err = f.TensorData(name); err != nil {
		return nil, err
	}
	t.rowBytes = t.cols / bs * bb
	if len(t.data) != t.rows*t.rowBytes {
		return nil, fmt.Errorf("%s: tensor %q: %d bytes, %d rows of %s need %d", f.name, name, len(t.data), t.rows, ti.Type, t.rows*t.rowBytes)
	}
	return t, nil
}

// Into decodes rows ids of the table into dst, one after another; dst
// must hold len(ids)*cols values.
func (t *Table) Into(ids []int, dst []float32) error {
	if len(dst) != len(ids)*t.cols {
		return fmt.Errorf("%s: tensor %q: destination has %d values, %d rows of %d need %d", t.f.name, t.name, len(dst), len(ids), t.cols, len(ids)*t.cols)
	}
	for k, id := range ids {
		if id < 0 || id >= t.rows {
			return fmt.Errorf("%s: tensor %q: row %d out of range [0, %d)", t.f.name, t.name, id, t.rows)
		}
		if err := Dequantize(t.typ, dst[k*t.cols:(k+1)*t.cols], t.data[id*t.rowBytes:(id+1)*t.rowBytes]); err != nil {
			return fmt.Errorf("%s: tensor %q: %w", t.f.name, t.name, err)
		}
	}
	return nil
}
