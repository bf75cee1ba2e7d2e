package ops

import (
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

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
	// released: the output went back to the pool when its block ended,
	// since no backward pass reads it (see releaseDead).
	released bool
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
	tape = append(tape, tapeEntry{op: op, fn: fn})
	tapeMu.Unlock()
}

// tapeLen returns the number of operators recorded so far.
func tapeLen() int {
	tapeMu.Lock()
	defer tapeMu.Unlock()
	return len(tape)
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
//
// The outputs of the recorded operators other than y are released as
// Backward goes: read whatever is needed from them (the loss, the logits)
// before calling it.
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
		// The operators before this one on the tape do not read its
		// gradient: release it, so that the collector can reuse the memory
		// while the backward pass goes on.
		g := v.Grad()
		v.ZeroGrad()
		if g != nil {
			recycle(Data(g))
		}
		_, pooled := e.fn.(pooledOutput)
		release(e)
		// Nor does anything on the graph read its output any more: its
		// consumers, all later on the tape, have run and been released.
		// The output of the root stays, for the caller.
		if pooled && !e.released && mat.Tensor(e.op) != y {
			recycle(Data(v))
		}
		entries[i] = tapeEntry{}
	}
	return nil
}

// operandsOffset is the offset of ag.Operator's memoized operand list, or
// 0 if this version of spago has no such field.
var operandsOffset = func() uintptr {
	f, ok := reflect.TypeFor[ag.Operator]().FieldByName("operands")
	if !ok || f.Type != reflect.TypeFor[[]mat.Tensor]() {
		return 0
	}
	return f.Offset
}()

// release cuts an operator whose backward pass has run loose from its
// inputs: it clears the function's saved state and the operand list that
// spago memoizes in the operator. Backward visits consumers before their
// inputs, so once every consumer of an activation is released nothing on
// the graph refers to it any more, and the collector can reclaim it during
// the rest of the backward pass, as PyTorch frees saved tensors.
func release(e tapeEntry) {
	if r, ok := e.fn.(recycler); ok {
		r.recycle()
	}
	if v := reflect.ValueOf(e.fn); v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
		v.Elem().SetZero()
	}
	if operandsOffset != 0 {
		*(*[]mat.Tensor)(unsafe.Add(unsafe.Pointer(e.op), operandsOffset)) = nil
	}
}
