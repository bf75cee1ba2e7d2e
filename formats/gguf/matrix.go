package gguf

import (
	"fmt"

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
