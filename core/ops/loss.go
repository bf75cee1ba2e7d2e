package ops

import (
	"math"

	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/vmath"
)

// crossEntropyFn is the mean softmax cross-entropy of rows of logits
// against target classes; rows whose target is negative are ignored.
type crossEntropyFn struct {
	x       mat.Tensor
	targets []int
	probs   []float32
	count   int
}

// CrossEntropy returns the mean over rows with a target >= 0 of
// -log softmax(logits[row])[target], as a [1,1] scalar. Rows with a negative
// target (padding, prompt tokens) are ignored. Targets must be < columns.
func CrossEntropy(logits mat.Tensor, targets []int) mat.Tensor {
	if len(targets) != Rows(logits) {
		panic("ops: CrossEntropy: one target per row is required")
	}
	for _, t := range targets {
		if t >= Cols(logits) {
			panic("ops: CrossEntropy: target out of range")
		}
	}
	return run(&crossEntropyFn{x: logits, targets: targets})
}

func (f *crossEntropyFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *crossEntropyFn) Forward() (mat.Tensor, error) {
	n, c := Rows(f.x), Cols(f.x)
	x := Data(f.x)
	// Backward needs the probabilities (zero on ignored rows), and turns
	// them into the gradient in place; without it, every row goes through a
	// scratch row of its worker.
	keep := requires(f.x)
	if keep {
		f.probs = allocDirty(n * c)
	}
	rowLoss := make([]float64, n)
	rowsParallel(n, c, func(lo, hi int) {
		var scratch []float32
		if !keep {
			scratch = make([]float32, c)
		}
		for i := lo; i < hi; i++ {
			t, p := f.targets[i], scratch
			if keep {
				p = f.probs[i*c : (i+1)*c]
			}
			if t < 0 {
				clear(p)
				continue
			}
			row := x[i*c : (i+1)*c]
			mx := vmath.Max(row)
			sum := vmath.ExpSum(p, row, mx)
			vmath.Scale(p, 1/sum)
			rowLoss[i] = math.Log(float64(sum)) + float64(mx) - float64(row[t])
		}
	})
	var loss float64 // summed in row order, whatever the split
	f.count = 0
	for i, t := range f.targets[:n] {
		if t >= 0 {
			f.count++
			loss += rowLoss[i]
		}
	}
	if f.count > 0 {
		loss /= float64(f.count)
	}
	return New(1, 1, []float32{float32(loss)}), nil
}

func (f *crossEntropyFn) recycle() { recycle(f.probs) }

func (f *crossEntropyFn) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() || f.count == 0 || f.probs == nil {
		return nil
	}
	n, c := Rows(f.x), Cols(f.x)
	g := Data(gy)[0] / float32(f.count)
	// The gradient (softmax - one-hot) * g is made in the probabilities'
	// buffer, which then belongs to x's gradient.
	gx := f.probs
	f.probs = nil
	rowsParallel(n, c, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if t := f.targets[i]; t >= 0 {
				gi := gx[i*c : (i+1)*c]
				vmath.Scale(gi, g)
				gi[t] -= g
			}
		}
	})
	accGrad(f.x, n, c, gx[:n*c])
	return nil
}
