package ops

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/linalg"
)

// Filler supplies a frozen [out, in] weight from where it is stored (a
// memory-mapped BF16 tensor, quantized GGUF blocks): Fill writes its
// float32 values into dst, row-major [out, in].
type Filler interface {
	Fill(dst []float32) error
}

// storedLinearFn is y = x*W^T + b with a frozen W that exists as float32
// only while a product needs it: Forward and Backward each fill a pooled
// buffer from the weight's store and give it back when done, so a model
// holds one layer's float32 weight at a time.
type storedLinearFn struct {
	x, b    mat.Tensor
	w       Filler
	out, in int
}

// StoredLinear returns x*W^T + b for a frozen weight W [out, in] supplied
// by w (see Filler); b may be nil. The values and the product are those of
// Linear on the filled weight. A Filler that fails panics with its error,
// as the other operators do on bad operands.
func StoredLinear(x mat.Tensor, w Filler, out, in int, b mat.Tensor) mat.Tensor {
	if Cols(x) != in {
		panic("ops: StoredLinear: input features do not match the weight")
	}
	return run(&storedLinearFn{x: x, b: b, w: w, out: out, in: in})
}

func (f *storedLinearFn) Operands() []mat.Tensor {
	if f.b == nil {
		return []mat.Tensor{f.x}
	}
	return []mat.Tensor{f.x, f.b}
}

// weight fills a pooled buffer with W.
func (f *storedLinearFn) weight() []float32 {
	w := allocDirty(f.out * f.in)
	if err := f.w.Fill(w); err != nil {
		recycle(w)
		panic(fmt.Errorf("ops: StoredLinear: %w", err))
	}
	return w
}

func (f *storedLinearFn) Forward() (mat.Tensor, error) {
	n := Rows(f.x)
	y := allocOutput(n * f.out)
	if f.b != nil {
		b := Data(f.b)
		for i := 0; i < n; i++ {
			copy(y[i*f.out:(i+1)*f.out], b)
		}
	}
	w := f.weight()
	linalg.MatMulNT(y, Data(f.x), w, n, f.out, f.in, f.b != nil)
	recycle(w)
	return New(n, f.out, y), nil
}

func (f *storedLinearFn) Backward(gy mat.Tensor) error {
	n := Rows(f.x)
	g := Data(gy)
	if f.x.RequiresGrad() {
		w := f.weight()
		gx := allocDirty(n * f.in)
		linalg.MatMulNN(gx, g, w, n, f.in, f.out, false)
		recycle(w)
		accGrad(f.x, n, f.in, gx)
	}
	if f.b != nil && f.b.RequiresGrad() {
		gb := alloc(f.out)
		for i := 0; i < n; i++ {
			linalg.Axpy(1, g[i*f.out:(i+1)*f.out], gb)
		}
		accGrad(f.b, f.out, 1, gb)
	}
	return nil
}
