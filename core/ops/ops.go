// Package ops holds the fused autograd operators surgeon's models are built
// from. Activations are row-major [tokens, features] float32 matrices; every
// operator is an ag.AutoGradFunction with a forward and a backward pass that
// only accumulates gradients into operands that require them.
package ops

import (
	"fmt"
	"github.com/surgeon-ml/surgeon/core/linalg"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// Data returns the float32 backing slice of a tensor's value.
func Data(t mat.Tensor) []float32 { return mat.Data[float32](t.Value()) }

// New returns a rows x cols float32 matrix backed by data (not copied).
func New(rows, cols int, data []float32) *mat.Dense[float32] {
	if len(data) != rows*cols {
		panic(fmt.Sprintf("ops: %d values for a %dx%d matrix", len(data), rows, cols))
	}
	return mat.NewDense[float32](mat.WithShape(rows, cols), mat.WithBacking(data))
}

// Rows returns the number of rows of a 2-D tensor value.
func Rows(t mat.Tensor) int { return t.Value().Shape()[0] }

// Cols returns the number of columns of a 2-D tensor value (1 for vectors).
func Cols(t mat.Tensor) int {
	s := t.Value().Shape()
	if len(s) < 2 {
		return 1
	}
	return s[1]
}

// run applies an operator. With gradients off (WithoutGrad) it returns the
// plain result: an ag.Operator would hold its operands, and through them
// every activation of the forward pass, alive until the output is dropped.
func run(f ag.AutoGradFunction) mat.Tensor {
	if !gradEnabled() {
		y, err := f.Forward()
		if err != nil {
			panic(fmt.Errorf("ops: %w", err))
		}
		return y
	}
	op := ag.NewOperator(f).Run()
	record(op, f)
	return op
}

// accGrad adds g to t's gradient when t requires one. g has t's layout; rows
// and cols document the expected shape.
//
// accGrad takes ownership of g: the caller must pass a slice of its own that
// it neither keeps nor shares.
func accGrad(t mat.Tensor, rows, cols int, g []float32) {
	if !t.RequiresGrad() {
		return
	}
	if len(g) != rows*cols {
		panic("ops: gradient of the wrong size")
	}
	t.AccGrad(ownedGrad{mat.NewDense[float32](mat.WithShape(t.Value().Shape()...), mat.WithBacking(g))})
}

// ownedGrad is a gradient whose backing slice the receiver may keep: spago's
// AccGrad clones the first gradient a tensor receives, and a gradient that
// an operator has just computed into a fresh slice needs no copy. Its Clone
// hands over the matrix itself; every other method is the matrix's own.
type ownedGrad struct{ *mat.Dense[float32] }

// Clone returns the wrapped matrix itself, without copying.
func (o ownedGrad) Clone() mat.Matrix { return o.Dense }

func requires(ts ...mat.Tensor) bool {
	if !gradEnabled() {
		return false
	}
	for _, t := range ts {
		if t != nil && t.RequiresGrad() {
			return true
		}
	}
	return false
}

// parallelWork is the number of elements from which an elementwise or
// row-by-row operator splits its work over the cores.
const parallelWork = 1 << 14

// rowsParallel runs fn over row ranges of n rows of width d, on several
// cores when there is enough work.
func rowsParallel(n, d int, fn func(lo, hi int)) {
	linalg.ParallelRanges(n, max(1, parallelWork/max(d, 1)), fn)
}
