package gguf

import (
	"fmt"
	"unsafe"

	"github.com/surgeon-ml/surgeon/core/qmat"
)

// qmatTypes are the ggml types whose blocks package qmat multiplies
// directly.
var qmatTypes = map[GGMLType]qmat.Type{
	TypeQ8_0: qmat.Q8_0,
	TypeQ4_0: qmat.Q4_0,
	TypeQ4_K: qmat.Q4_K,
	TypeQ6_K: qmat.Q6_K,
}

// WeightMatrix returns the file's weight matrix called name (its GGUF
// name) as a qmat.Matrix over the mapped blocks, valid until Close, in
// Hugging Face's row order (the q and k projections of the architectures
// whose converter permutes them get the RowOrder that undoes it): the
// weight as WeightInto decodes it, for products that read the blocks
// directly. ok is false when the tensor is not a matrix of a type qmat
// handles.
func WeightMatrix(f *File, name string) (m qmat.Matrix, ok bool, err error) {
	i, found := f.byName[name]
	if !found {
		return qmat.Matrix{}, false, fmt.Errorf("%s: no tensor %q", f.name, name)
	}
	ti := &f.tensors[i]
	qt, known := qmatTypes[ti.Type]
	if !known || len(ti.Dims) != 2 {
		return qmat.Matrix{}, false, nil
	}
	data, err := f.TensorData(name)
	if err != nil {
		return qmat.Matrix{}, false, err
	}
	m = qmat.Matrix{Type: qt, Rows: int(ti.Dims[1]), Cols: int(ti.Dims[0]), Data: data}
	h, err := f.fileHParams()
	if err != nil {
		return qmat.Matrix{}, false, err
	}
	if nHead := h.qkHeads(name); nHead > 0 {
		if m.RowOrder, err = qkRowOrder(m.Rows, nHead); err != nil {
			return qmat.Matrix{}, false, fmt.Errorf("%s: tensor %q: %w", f.name, name, err)
		}
	}
	if err := m.Check(); err != nil {
		return qmat.Matrix{}, false, fmt.Errorf("%s: tensor %q: %w", f.name, name, err)
	}
	return m, true, nil
}

// qkRowOrder is the row order that UnpermuteQK applies: Hugging Face row
// base+j*half+i is GGUF row base+2i+j within each head.
func qkRowOrder(rows, nHead int) ([]int, error) {
	if nHead <= 0 || rows%nHead != 0 || (rows/nHead)%2 != 0 {
		return nil, fmt.Errorf("%d rows cannot be split into %d heads of an even number of rows", rows, nHead)
	}
	perHead := rows / nHead
	half := perHead / 2
	order := make([]int, rows)
	for h := range nHead {
		base := h * perHead
		for j := range 2 {
			for i := range half {
				order[base+j*half+i] = base + 2*i + j
			}
		}
	}
	return order, nil
}

// WeightHalvesInto copies the file's F16 or BF16 weight matrix called name
// (its GGUF name) into dst as stored, two bytes an element in the host's
// order, in Hugging Face's row order (the rows of a permuted q or k
// projection are put back as WeightInto puts them): the weight WeightInto
// decodes, before its widening to float32, for products that widen it as
// they pack it. dst must hold exactly the matrix's elements; the host
// must be little-endian, as the file is.
func WeightHalvesInto(f *File, name string, dst []uint16) error {
	i, found := f.byName[name]
	if !found {
		return fmt.Errorf("%s: no tensor %q", f.name, name)
	}
	ti := &f.tensors[i]
	if (ti.Type != TypeF16 && ti.Type != TypeBF16) || len(ti.Dims) != 2 {
		return fmt.Errorf("%s: tensor %q: %s with %d dimensions is not a half-precision matrix", f.name, name, ti.Type, len(ti.Dims))
	}
	rows, cols := int(ti.Dims[1]), int(ti.Dims[0])
	if len(dst) != rows*cols {
		return fmt.Errorf("%s: tensor %q has %d elements, the destination %d", f.name, name, rows*cols, len(dst))
	}
	data, err := f.TensorData(name)
	if err != nil {
		return err
	}
	if len(data) != 2*rows*cols {
		return fmt.Errorf("%s: tensor %q: %d bytes for [%d, %d] halves", f.name, name, len(data), rows, cols)
	}
	src := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(data))), rows*cols)
	h, err := f.fileHParams()
	if err != nil {
		return err
	}
	nHead := h.qkHeads(name)
	if nHead == 0 {
		copy(dst, src)
		return nil
	}
	order, err := qkRowOrder(rows, nHead)
	if err != nil {
		return fmt.Errorf("%s: tensor %q: %w", f.name, name, err)
	}
	for r, s := range order {
		copy(dst[r*cols:(r+1)*cols], src[s*cols:(s+1)*cols])
	}
	return nil
}
