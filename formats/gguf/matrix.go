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
	if m.RowOrder, err = f.qkOrder(name, m.Rows); err != nil {
		return qmat.Matrix{}, false, err
	}
	if err := m.Check(); err != nil {
		return qmat.Matrix{}, false, fmt.Errorf("%s: tensor %q: %w", f.name, name, err)
	}
	return m, true, nil
}

// qkOrder is the Hugging Face row order of the file's weight called name
// (qkRowOrder) when the converter permuted its rows, nil otherwise.
func (f *File) qkOrder(name string, rows int) ([]int, error) {
	h, err := f.fileHParams()
	if err != nil {
		return nil, err
	}
	nHead := h.qkHeads(name)
	if nHead == 0 {
		return nil, nil
	}
	order, err := qkRowOrder(rows, nHead)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.name, name, err)
	}
	return order, nil
}

// reorderRows puts the rows of the row-major [len(order), cols] v in the
// given order (row r becomes what was row order[r]) in place, following
// each cycle of the permutation with one row set aside: where
// permuteHeads would copy the whole matrix.
func reorderRows[T any](v []T, cols int, order []int) {
	done := make([]bool, len(order))
	tmp := make([]T, cols)
	row := func(r int) []T { return v[r*cols : (r+1)*cols] }
	for i := range order {
		if done[i] || order[i] == i {
			continue
		}
		copy(tmp, row(i))
		for j := i; ; {
			done[j] = true
			k := order[j]
			if k == i {
				copy(row(j), tmp)
				break
			}
			copy(row(j), row(k))
			j = k
		}
	}
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
	order, err := f.qkOrder(name, rows)
	if err != nil {
		return err
	}
	src := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(data))), rows*cols)
	if order == nil {
		copy(dst, src)
		return nil
	}
	for r, s := range order {
		copy(dst[r*cols:(r+1)*cols], src[s*cols:(s+1)*cols])
	}
	return nil
}
