package ops

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/mat"
)

// colsFn is the column range [lo, hi) of every row of x.
type colsFn struct {
	x      mat.Tensor
	lo, hi int
}

// SliceCols returns columns lo..hi-1 of x [rows, cols] as a [rows, hi-lo]
// matrix: one part of a fused projection (Phi-3's qkv_proj and
// gate_up_proj), whose gradient flows back into those columns only.
func SliceCols(x mat.Tensor, lo, hi int) mat.Tensor {
	if lo < 0 || hi > Cols(x) || lo >= hi {
		panic(fmt.Sprintf("ops: SliceCols: columns [%d,%d) of %d", lo, hi, Cols(x)))
	}
	return run(&colsFn{x: x, lo: lo, hi: hi})
}

func (f *colsFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *colsFn) Forward() (mat.Tensor, error) {
	n, d, w := Rows(f.x), Cols(f.x), f.hi-f.lo
	x := Data(f.x)
	y := allocOutput(n * w)
	for i := 0; i < n; i++ {
		copy(y[i*w:(i+1)*w], x[i*d+f.lo:i*d+f.hi])
	}
	return New(n, w, y), nil
}

func (f *colsFn) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	n, d, w := Rows(f.x), Cols(f.x), f.hi-f.lo
	g := Data(gy)
	gx := alloc(n * d)
	for i := 0; i < n; i++ {
		copy(gx[i*d+f.lo:i*d+f.hi], g[i*w:(i+1)*w])
	}
	accGrad(f.x, n, d, gx)
	return nil
}

func (f *colsFn) backwardReads() []mat.Tensor { return nil }

// geluTanhGateFn computes gelu_tanh(gate) * up elementwise.
type geluTanhGateFn struct{ gate, up mat.Tensor }

// GELUTanhGate returns gelu_tanh(gate) * up, the gated activation of
// Gemma's MLP (hidden_activation "gelu_pytorch_tanh"), where
// gelu_tanh(x) = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).
func GELUTanhGate(gate, up mat.Tensor) mat.Tensor {
	if gate.Value().Size() != up.Value().Size() {
		panic("ops: GELUTanhGate: gate and up differ in size")
	}
	return run(&geluTanhGateFn{gate: gate, up: up})
}

func (f *geluTanhGateFn) Operands() []mat.Tensor { return []mat.Tensor{f.gate, f.up} }

const geluTanhC = 0.7978845608028654 // sqrt(2/pi)

// geluTanh returns gelu_tanh(x) and its derivative, in float64.
func geluTanh(x float64) (y, dy float64) {
	u := geluTanhC * (x + 0.044715*x*x*x)
	t := math.Tanh(u)
	y = 0.5 * x * (1 + t)
	dy = 0.5*(1+t) + 0.5*x*(1-t*t)*geluTanhC*(1+3*0.044715*x*x)
	return y, dy
}

func (f *geluTanhGateFn) Forward() (mat.Tensor, error) {
	g, u := Data(f.gate), Data(f.up)
	y := allocOutput(len(g))
	rowsParallel(len(g), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			a, _ := geluTanh(float64(g[i]))
			y[i] = float32(a) * u[i]
		}
	})
	return New(Rows(f.gate), Cols(f.gate), y), nil
}

func (f *geluTanhGateFn) Backward(gy mat.Tensor) error {
	if !f.up.RequiresGrad() && !f.gate.RequiresGrad() {
		return nil
	}
	n, d := Rows(f.gate), Cols(f.gate)
	g, u, dy := Data(f.gate), Data(f.up), Data(gy)
	gg, gu := allocDirty(len(g)), allocDirty(len(g))
	rowsParallel(len(g), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			a, da := geluTanh(float64(g[i]))
			gu[i] = dy[i] * float32(a)
			gg[i] = float32(float64(dy[i]) * float64(u[i]) * da)
		}
	})
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

func (f *geluTanhGateFn) backwardReads() []mat.Tensor { return []mat.Tensor{f.gate, f.up} }

func (*colsFn) pooledOutput()         {}
func (*geluTanhGateFn) pooledOutput() {}
