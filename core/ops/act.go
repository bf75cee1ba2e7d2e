package ops

import (
	"math"

	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/vmath"
)

// swiGLUFn computes silu(gate) * up elementwise.
type swiGLUFn struct{ gate, up mat.Tensor }

// SwiGLU returns silu(gate) * up, the gated activation of Llama's MLP.
func SwiGLU(gate, up mat.Tensor) mat.Tensor {
	if gate.Value().Size() != up.Value().Size() {
		panic("ops: SwiGLU: gate and up differ in size")
	}
	return run(&swiGLUFn{gate: gate, up: up})
}

func (f *swiGLUFn) Operands() []mat.Tensor { return []mat.Tensor{f.gate, f.up} }

func (f *swiGLUFn) Forward() (mat.Tensor, error) {
	g, u := Data(f.gate), Data(f.up)
	y := allocOutput(len(g))
	rowsParallel(len(g), 1, func(lo, hi int) {
		g, u, y := g[lo:hi], u[lo:hi], y[lo:hi]
		vmath.Sigmoid(y, g) // in place
		for i, z := range g {
			y[i] = z * y[i] * u[i]
		}
	})
	return New(Rows(f.gate), Cols(f.gate), y), nil
}

// Backward computes sigmoid(gate) again rather than keeping it from
// Forward: a pass over the gate costs less than holding an activation of
// the MLP's width for every block. The pieces are Forward's, so the values
// are too.
func (f *swiGLUFn) Backward(gy mat.Tensor) error {
	g := Data(f.gate)
	n, d := Rows(f.gate), Cols(f.gate)
	if !f.up.RequiresGrad() && !f.gate.RequiresGrad() {
		return nil
	}
	gu, gg, sig := allocDirty(len(g)), allocDirty(len(g)), allocDirty(len(g))
	u, dy := Data(f.up), Data(gy)
	rowsParallel(len(g), 1, func(lo, hi int) {
		vmath.Sigmoid(sig[lo:hi], g[lo:hi])
		vmath.SwiGLUGrad(gg[lo:hi], gu[lo:hi], g[lo:hi], u[lo:hi], sig[lo:hi], dy[lo:hi])
	})
	recycle(sig)
	if f.up.RequiresGrad() {
		accGrad(f.up, n, d, gu)
	} else {
		recycle(gu)
	}
	if f.gate.RequiresGrad() {
		accGrad(f.gate, n, d, gg)
	} else {
		recycle(gg)
	}
	return nil
}

func (f *swiGLUFn) backwardReads() []mat.Tensor { return []mat.Tensor{f.gate, f.up} }

// geluFn is the exact (erf) GELU, evaluated in float32 (see vmath.GELU).
type geluFn struct{ x mat.Tensor }

// GELU returns x * Phi(x) with the exact Gaussian CDF, as BERT's "gelu".
func GELU(x mat.Tensor) mat.Tensor { return run(&geluFn{x: x}) }

func (f *geluFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *geluFn) Forward() (mat.Tensor, error) {
	x := Data(f.x)
	y := allocOutput(len(x))
	rowsParallel(len(x), 1, func(lo, hi int) { vmath.GELU(y[lo:hi], x[lo:hi]) })
	return New(Rows(f.x), Cols(f.x), y), nil
}

func (f *geluFn) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	x, g := Data(f.x), Data(gy)
	gx := allocDirty(len(x))
	rowsParallel(len(x), 1, func(lo, hi int) { vmath.GELUGrad(gx[lo:hi], x[lo:hi], g[lo:hi]) })
	accGrad(f.x, Rows(f.x), Cols(f.x), gx)
	return nil
}

func (f *geluFn) backwardReads() []mat.Tensor { return []mat.Tensor{f.x} }

// tanhFn is the elementwise hyperbolic tangent.
type tanhFn struct {
	x mat.Tensor
	y []float32
}

// Tanh returns tanh(x) elementwise.
func Tanh(x mat.Tensor) mat.Tensor { return run(&tanhFn{x: x}) }

func (f *tanhFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *tanhFn) Forward() (mat.Tensor, error) {
	x := Data(f.x)
	f.y = make([]float32, len(x))
	for i, v := range x {
		f.y[i] = float32(math.Tanh(float64(v)))
	}
	return New(Rows(f.x), Cols(f.x), f.y), nil
}

func (f *tanhFn) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	g := Data(gy)
	gx := allocDirty(len(g))
	for i, y := range f.y {
		gx[i] = g[i] * (1 - y*y)
	}
	accGrad(f.x, Rows(f.x), Cols(f.x), gx)
	return nil
}

// addFn adds matrices of the same shape.
type addFn struct{ a, b mat.Tensor }

// Add returns a + b for matrices of the same shape.
func Add(a, b mat.Tensor) mat.Tensor {
	if a.Value().Size() != b.Value().Size() {
		panic("ops: Add: shapes differ")
	}
	return run(&addFn{a: a, b: b})
}

func (f *addFn) Operands() []mat.Tensor { return []mat.Tensor{f.a, f.b} }

func (f *addFn) Forward() (mat.Tensor, error) {
	a, b := Data(f.a), Data(f.b)
	y := allocOutput(len(a))
	rowsParallel(len(a), 1, func(lo, hi int) {
		a, b, y := a[lo:hi], b[lo:hi], y[lo:hi]
		for i := range a {
			y[i] = a[i] + b[i]
		}
	})
	return New(Rows(f.a), Cols(f.a), y), nil
}

func (f *addFn) Backward(gy mat.Tensor) error {
	g := Data(gy)
	for _, t := range []mat.Tensor{f.a, f.b} {
		if t.RequiresGrad() {
			c := allocDirty(len(g))
			copy(c, g)
			accGrad(t, Rows(t), Cols(t), c)
		}
	}
	return nil
}

func (f *addFn) backwardReads() []mat.Tensor { return nil }
