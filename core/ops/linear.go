package ops

import (
	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/linalg"
)

// linearFn computes y = x*W^T + b for x [n,in], W [out,in], b [out] (or nil).
type linearFn struct {
	x, w, b mat.Tensor
}

// Linear returns x*W^T + b. b may be nil.
func Linear(x, w, b mat.Tensor) mat.Tensor {
	if Cols(x) != Cols(w) {
		panic("ops: Linear: input features do not match the weight")
	}
	return run(&linearFn{x: x, w: w, b: b})
}

func (f *linearFn) Operands() []mat.Tensor {
	if f.b == nil {
		return []mat.Tensor{f.x, f.w}
	}
	return []mat.Tensor{f.x, f.w, f.b}
}

func (f *linearFn) Forward() (mat.Tensor, error) {
	n, in, out := Rows(f.x), Cols(f.x), Rows(f.w)
	y := allocOutput(n * out)
	if f.b != nil {
		b := Data(f.b)
		for i := 0; i < n; i++ {
			copy(y[i*out:(i+1)*out], b)
		}
	}
	linalg.MatMulNT(y, Data(f.x), Data(f.w), n, out, in, f.b != nil)
	return New(n, out, y), nil
}

func (f *linearFn) Backward(gy mat.Tensor) error {
	n, in, out := Rows(f.x), Cols(f.x), Rows(f.w)
	g := Data(gy)
	if f.x.RequiresGrad() {
		gx := allocDirty(n * in)
		linalg.MatMulNN(gx, g, Data(f.w), n, in, out, false)
		accGrad(f.x, n, in, gx)
	}
	if f.w.RequiresGrad() {
		gw := allocDirty(out * in)
		linalg.MatMulTN(gw, g, Data(f.x), out, in, n, false)
		accGrad(f.w, out, in, gw)
	}
	if f.b != nil && f.b.RequiresGrad() {
		gb := alloc(out)
		for i := 0; i < n; i++ {
			linalg.Axpy(1, g[i*out:(i+1)*out], gb)
		}
		accGrad(f.b, out, 1, gb)
	}
	return nil
}

func (f *linearFn) backwardReads() []mat.Tensor {
	var r []mat.Tensor
	if f.w.RequiresGrad() {
		r = append(r, f.x)
	}
	if f.x.RequiresGrad() {
		r = append(r, f.w)
	}
	return r
}

// embeddingFn gathers rows of a table.
type embeddingFn struct {
	w   mat.Tensor
	ids []int
}

// Embedding returns the rows of table w [vocab,d] selected by ids, as a
// [len(ids), d] matrix. Ids must be in range.
func Embedding(w mat.Tensor, ids []int) mat.Tensor {
	v := Rows(w)
	for _, id := range ids {
		if id < 0 || id >= v {
			panic("ops: Embedding: id out of range")
		}
	}
	return run(&embeddingFn{w: w, ids: ids})
}

func (f *embeddingFn) Operands() []mat.Tensor { return []mat.Tensor{f.w} }

func (f *embeddingFn) Forward() (mat.Tensor, error) {
	d := Cols(f.w)
	w := Data(f.w)
	y := make([]float32, len(f.ids)*d)
	for i, id := range f.ids {
		copy(y[i*d:(i+1)*d], w[id*d:(id+1)*d])
	}
	return New(len(f.ids), d, y), nil
}

func (f *embeddingFn) Backward(gy mat.Tensor) error {
	if !f.w.RequiresGrad() {
		return nil
	}
	v, d := Rows(f.w), Cols(f.w)
	g := Data(gy)
	gw := alloc(v * d)
	for i, id := range f.ids {
		linalg.Axpy(1, g[i*d:(i+1)*d], gw[id*d:(id+1)*d])
	}
	accGrad(f.w, v, d, gw)
	return nil
}

// rowsFn selects rows of a matrix.
type rowsFn struct {
	x   mat.Tensor
	idx []int
}

// SelectRows returns the rows of x at idx, as a [len(idx), cols] matrix.
func SelectRows(x mat.Tensor, idx []int) mat.Tensor {
	for _, i := range idx {
		if i < 0 || i >= Rows(x) {
			panic("ops: SelectRows: row out of range")
		}
	}
	return run(&rowsFn{x: x, idx: idx})
}

func (f *rowsFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *rowsFn) Forward() (mat.Tensor, error) {
	d := Cols(f.x)
	x := Data(f.x)
	y := make([]float32, len(f.idx)*d)
	for i, r := range f.idx {
		copy(y[i*d:(i+1)*d], x[r*d:(r+1)*d])
	}
	return New(len(f.idx), d, y), nil
}

func (f *rowsFn) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	n, d := Rows(f.x), Cols(f.x)
	g := Data(gy)
	gx := alloc(n * d)
	for i, r := range f.idx {
		linalg.Axpy(1, g[i*d:(i+1)*d], gx[r*d:(r+1)*d])
	}
	accGrad(f.x, n, d, gx)
	return nil
}
