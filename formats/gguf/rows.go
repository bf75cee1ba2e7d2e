package gguf

import "fmt"

// RowsInto decodes rows ids of the GGUF model tensor called name (its GGUF
// name; a table such as token_embd, whose Hugging Face form is [rows,
// cols] with GGUF's ne0 = cols) into dst, one after another, dequantizing
// only the blocks of those rows: the lookup of an embedding kept in its
// GGUF type. dst must hold len(ids)*cols values. Tensors that ModelTensor
// transforms (permuted q/k rows, Gemma's offset norms, GPT-2's transposed
// weights) are refused: they are read whole. With no ids it only checks
// that the tensor can be read by rows.
func RowsInto(f *File, name string, ids []int, dst []float32) error {
	ti, h, hf, err := f.modelInfo(name)
	if err != nil {
		return err
	}
	if len(ti.Dims) != 2 {
		return fmt.Errorf("%s: tensor %q: %d dimensions: rows are read from 2-D tensors only", f.name, name, len(ti.Dims))
	}
	if h.qkHeads(name) > 0 || h.arch.offsetNorm(hf) || h.arch.transposed(name, len(ti.Dims)) {
		return fmt.Errorf("%s: tensor %q: its Hugging Face values are not its stored rows", f.name, name)
	}
	if !ti.Type.Dequantizable() {
		return fmt.Errorf("%s: tensor %q: ggml type %s cannot be dequantized (supported: %s): %w", f.name, name, ti.Type, supportedList(), ErrUnsupportedType)
	}
	cols, rows := int(ti.Dims[0]), int(ti.Dims[1])
	bs, bb := ti.Type.BlockSize(), ti.Type.BlockBytes()
	if cols%bs != 0 {
		return fmt.Errorf("%s: tensor %q: rows of %d are not whole %d-element %s blocks", f.name, name, cols, bs, ti.Type)
	}
	if len(dst) != len(ids)*cols {
		return fmt.Errorf("%s: tensor %q: destination has %d values, %d rows of %d need %d", f.name, name, len(dst), len(ids), cols, len(ids)*cols)
	}
	if len(ids) == 0 {
		return nil
	}
	data, err := f.TensorData(name)
	if err != nil {
		return err
	}
	rowBytes := cols / bs * bb
	if len(data) != rows*rowBytes {
		return fmt.Errorf("%s: tensor %q: %d bytes, %d rows of %s need %d", f.name, name, len(data), rows, ti.Type, rows*rowBytes)
	}
	for k, id := range ids {
		if id < 0 || id >= rows {
			return fmt.Errorf("%s: tensor %q: row %d out of range [0, %d)", f.name, name, id, rows)
		}
		if err := Dequantize(ti.Type, dst[k*cols:(k+1)*cols], data[id*rowBytes:(id+1)*rowBytes]); err != nil {
			return fmt.Errorf("%s: tensor %q: %w", f.name, name, err)
		}
	}
	return nil
}
