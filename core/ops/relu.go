package ops

import "github.com/nlpodyssey/spago/mat"

// reluFn is the elementwise rectifier max(x, 0).
type reluFn struct{ x mat.Tensor }

// ReLU returns max(x, 0) elementwise (DistilBERT's classification head and
// its "relu" activation). The gradient at 0 is 0, as in PyTorch.
func ReLU(x mat.Tensor) mat.Tensor { return run(&reluFn{x: x}) }

func (f *reluFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *reluFn) Forward() (mat.Tensor, error) {
	x := Data(f.x)
	y := allocOutput(len(x))
	for i, v := range x {
		y[i] = max(v, 0)
	}
	return New(Rows(f.x), Cols(f.x), y), nil
}

func (f *reluFn) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	x, g := Data(f.x), Data(gy)
	gx := allocDirty(len(x))
	for i, v := range x {
		if v > 0 {
			gx[i] = g[i]
		} else {
			gx[i] = 0
		}
	}
	accGrad(f.x, Rows(f.x), Cols(f.x), gx)
	return nil
}

func (f *reluFn) backwardReads() []mat.Tensor { return []mat.Tensor{f.x} }
