package ops

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// spago's ag.Backward runs every operator's backward pass in its own
// goroutine, so the gradients flowing into a tensor used several times are
// summed in whatever order those goroutines finish: float32 results then
// differ from run to run. Training must be reproducible (a resumed run has
// to end exactly where an uninterrupted one does), so surgeon records the
// operators that need gradients on a tape, in creation order, and Backward
// replays it in reverse on one goroutine. Each operator still uses every
// core inside its kernels.

type tapeEntry struct {
	op *ag.Operator
	fn ag.AutoGradFunction
}

var (
	tapeMu sync.Mutex
	tape   []tapeEntry
	// noGrad counts active WithoutGrad calls.
	noGrad atomic.Int32
)

// WithoutGrad runs fn with gradient tracking off: operators are not
// recorded and keep nothing for a backward pass, so evaluation with
// trainable parameters costs no more memory than inference.
func WithoutGrad(fn func() error) error {
	noGrad.Add(1)
	defer noGrad.Add(-1)
	return fn()
}

func gradEnabled() bool { return noGrad.Load() == 0 }

func record(op *ag.Operator, fn ag.AutoGradFunction) {
	if !gradEnabled() || !op.RequiresGrad() {
		return
	}
	tapeMu.Lock()
	tape = append(tape, tapeEntry{op, fn})
	tapeMu.Unlock()
}

// ResetTape forgets the recorded operators (for example after an evaluation
// pass with trainable parameters), releasing their memory.
func ResetTape() {
	tapeMu.Lock()
	tape = nil
	tapeMu.Unlock()
}

// Backward propagates gradients from y (seeded with ones when y has no
// gradient yet) through the operators recorded since the last Backward or
// ResetTape, in reverse order, deterministically. It then clears the tape.
func Backward(y mat.Tensor) error {
	tapeMu.Lock()
	entries := tape
	tape = nil
	tapeMu.Unlock()
	if !y.HasGrad() {
		n := y.Value().Size()
		ones := make([]float32, n)
		for i := range ones {
			ones[i] = 1
		}
		y.AccGrad(mat.NewDense[float32](mat.WithShape(y.Value().Shape()...), mat.WithBacking(ones)))
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		v := e.op.Value()
		if !v.HasGrad() {
			continue
		}
		if err := e.fn.Backward(v.Grad()); err != nil {
			return fmt.Errorf("backward: %w", err)
		}
	}
	return nil
}
