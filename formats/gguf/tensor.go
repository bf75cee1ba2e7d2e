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
// I8, I16, I32 and I64 tensors are supported; quantized types yield an error
// wrapping ErrUnsupportedType. Data aliases the file and is valid until
// Close; copy it to keep it longer.
func (f *File) Tensor(name string) (tensor.Tensor, error) {
	data, err := f.TensorData(name)
	if err != nil {
		return tensor.Tensor{}, err
	}
	ti := &f.tensors[f.byName[name]]
	dt := ti.Type.DType()
	if dt == tensor.Unknown {
		if ti.Type.Quantized() {
			return tensor.Tensor{}, fmt.Errorf("%s: tensor %s: ggml type %s is quantized; only F32, F16 and BF16 are supported: %w", f.name, name, ti.Type, ErrUnsupportedType)
		}
		return tensor.Tensor{}, fmt.Errorf("%s: tensor %s: ggml type %s cannot be read: %w", f.name, name, ti.Type, ErrUnsupportedType)
	}
	return tensor.Tensor{Name: name, DType: dt, Shape: ti.Shape(), Data: data}, nil
}

// Float32 returns the named tensor converted to float32 in a new slice, with
// its row-major shape. Any type Tensor accepts is converted.
func (f *File) Float32(name string) ([]float32, []int, error) {
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
