package gguf

import (
	"fmt"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// TensorData returns the raw bytes of the named tensor, whatever its ggml
// type (quantized blocks included). The slice aliases the file.
func (f *File) TensorData(name string) ([]byte, error) {
	if f.closed {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.name, name, ErrClosed)
	}
	i, ok := f.byName[name]
	if !ok {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.name, name, ErrNotFound)
	}
	ti := &f.tensors[i]
	if ti.Size == 0 {
		// An empty tensor may sit past the end of a file whose data
		// section is empty.
		return []byte{}, nil
	}
	start := f.dataOffset + ti.Offset
	return f.data[start : start+ti.Size : start+ti.Size], nil
}

// Tensor returns the named tensor as a neutral tensor record with its Shape
// in row-major order (the reverse of the file's Dims). F32, F16, BF16, F64,
// I8, I16, I32 and I64 tensors are supported; quantized types, which have
// no neutral dtype, yield an error wrapping ErrUnsupportedType (Float32
// dequantizes them). Data aliases the file and is valid until Close; copy
// it to keep it longer.
func (f *File) Tensor(name string) (tensor.Tensor, error) {
	data, err := f.TensorData(name)
	if err != nil {
		return tensor.Tensor{}, err
	}
	ti := &f.tensors[f.byName[name]]
	dt := ti.Type.DType()
	if dt == tensor.Unknown {
		if ti.Type.Quantized() {
			return tensor.Tensor{}, fmt.Errorf("%s: tensor %q: ggml type %s is quantized and has no plain dtype (Float32 dequantizes it): %w", f.name, name, ti.Type, ErrUnsupportedType)
		}
		return tensor.Tensor{}, fmt.Errorf("%s: tensor %q: ggml type %s cannot be read: %w", f.name, name, ti.Type, ErrUnsupportedType)
	}
	return tensor.Tensor{Name: name, DType: dt, Shape: ti.Shape(), Data: data}, nil
}

// Float32 returns the named tensor converted to float32 in a new slice, with
// its row-major shape. Plain types are converted as Tensor reads them;
// quantized types are dequantized as ggml's dequantize_row_* does (see
// Dequantize and DequantizableTypes).
func (f *File) Float32(name string) ([]float32, []int, error) {
	data, err := f.TensorData(name)
	if err != nil {
		return nil, nil, err
	}
	ti := &f.tensors[f.byName[name]]
	if ti.Type.Dequantizable() || ti.Type.Quantized() {
		v := make([]float32, ti.NumElements())
		if err := Dequantize(ti.Type, v, data); err != nil {
			return nil, nil, fmt.Errorf("%s: tensor %q: %w", f.name, name, err)
		}
		return v, ti.Shape(), nil
	}
	t, err := f.Tensor(name)
	if err != nil {
		return nil, nil, err
	}
	v, err := t.Float32()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", f.name, err)
	}
	return v, t.Shape, nil
}

// BitsPerWeight returns the file's tensor data bits per element: the bytes
// of every tensor times 8 over their element count (32 for an all-F32
// file, about 4.5 for Q4_K), or 0 for a file without elements.
func (f *File) BitsPerWeight() float64 {
	var bytes, n uint64
	for i := range f.tensors {
		bytes += f.tensors[i].Size
		n += f.tensors[i].NumElements()
	}
	if n == 0 {
		return 0
	}
	return float64(bytes) * 8 / float64(n)
}

// Float32Rows dequantizes rows [first, first+n) of the named tensor (a row
// is Dims[0] elements, a whole number of blocks) into a new slice, without
// decoding the rest: the per-block-range access that lets callers keep a
// quantized tensor in its blocks and decode rows as they need them.
func (f *File) Float32Rows(name string, first, n int) ([]float32, error) {
	data, err := f.TensorData(name)
	if err != nil {
		return nil, err
	}
	ti := &f.tensors[f.byName[name]]
	if len(ti.Dims) == 0 {
		return nil, fmt.Errorf("%s: tensor %q is a scalar, it has no rows", f.name, name)
	}
	rowLen := ti.Dims[0]
	rows := ti.NumElements() / max(rowLen, 1)
	if first < 0 || n < 0 || uint64(first) > rows || uint64(n) > rows-uint64(first) {
		return nil, fmt.Errorf("%s: tensor %q: rows [%d, %d) out of range [0, %d)", f.name, name, first, first+n, rows)
	}
	rowBytes := rowLen / uint64(ti.Type.BlockSize()) * uint64(ti.Type.BlockBytes())
	out := make([]float32, uint64(n)*rowLen)
	src := data[uint64(first)*rowBytes : uint64(first+n)*rowBytes]
	if err := Dequantize(ti.Type, out, src); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.name, name, err)
	}
	return out, nil
}
