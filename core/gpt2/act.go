package gpt2

import (
	"math"

	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/linalg"
	"github.com/surgeon-ml/surgeon/core/ops"
)

// geluC is sqrt(2/pi).
const geluC = 0.7978845608028654

// geluTanhFn is GPT-2's gelu_new: 0.5*x*(1 + tanh(sqrt(2/pi)*(x +
// 0.044715*x^3))), evaluated per element in float64.
type geluTanhFn struct{ x mat.Tensor }

// GELUTanh returns the tanh approximation of GELU (transformers'
// gelu_new, gelu_pytorch_tanh), elementwise.
func GELUTanh(x mat.Tensor) mat.Tensor { return ops.Custom(&geluTanhFn{x: x}) }

func (f *geluTanhFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

// each runs fn over ranges of n elements, on several cores for large n.
func each(n int, fn func(lo, hi int)) { linalg.ParallelRanges(n, 1<<14, fn) }

func (f *geluTanhFn) Forward() (mat.Tensor, error) {
	x := ops.Data(f.x)
	y := make([]float32, len(x))
	each(len(x), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			y[i] = float32(0.5 * v * (1 + math.Tanh(geluC*(v+0.044715*v*v*v))))
		}
	})
	return ops.New(ops.Rows(f.x), ops.Cols(f.x), y), nil
}

func (f *geluTanhFn) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	x, g := ops.Data(f.x), ops.Data(gy)
	gx := make([]float32, len(x))
	each(len(x), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			t := math.Tanh(geluC * (v + 0.044715*v*v*v))
			d := 0.5*(1+t) + 0.5*v*(1-t*t)*geluC*(1+3*0.044715*v*v)
			gx[i] = float32(d * float64(g[i]))
		}
	})
	f.x.AccGrad(ops.New(ops.Rows(f.x), ops.Cols(f.x), gx))
	return nil
}
