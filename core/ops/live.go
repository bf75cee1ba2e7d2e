package ops

import (
	"sync/atomic"
	"unsafe"

	"github.com/nlpodyssey/spago/mat"
)

// Activations no backward pass reads. A block's forward pass makes many
// outputs that only its own forward needs: the input of a frozen
// projection (whose backward multiplies by the weight alone), the two
// addends of a residual sum, the rotated queries that attention copies
// into its own head-major layout. Keeping them until Backward reaches
// them, as a graph does by default, holds several times the memory that
// backward actually reads. Block therefore ends a block recorded on the
// tape by giving such outputs back to the pool at once (releaseDead), as
// PyTorch keeps only the tensors an operator saves for backward.
//
// An operator says what its backward pass reads through valueReader; one
// that does not is taken to read every operand and its own output, so an
// operator written without it costs memory, never correctness.

// valueReader is an autograd function that names the operands whose values
// its Backward reads, given which operands require gradients at the time
// it runs (those do not change between forward and backward). It never
// reads its own output.
type valueReader interface {
	backwardReads() []mat.Tensor
}

var (
	releaseOff atomic.Bool
	released   atomic.Int64
)

// SetReleaseDead turns off (or back on) the early release of activations
// that no backward pass reads, and returns the previous setting; it is on
// by default. Results are the same either way (for tests and reports).
func SetReleaseDead(on bool) (was bool) { return !releaseOff.Swap(!on) }

// Released returns how many floats of activations Block has given back to
// the pool early since the program started (for tests and reports).
func Released() int64 { return released.Load() }

// span is the memory [lo, hi) of a float32 slice.
type span struct{ lo, hi uintptr }

func spanOf(s []float32, n int) span {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	return span{p, p + 4*uintptr(n)}
}

func (s span) overlaps(t span) bool { return s.lo < t.hi && t.lo < s.hi }

// releaseDead gives back to the pool the outputs of the operators recorded
// on the tape from position start on whose values no backward pass will
// read: those that no recorded operator's backward reads (directly or
// through a slice of the same memory) and that are not y, the block's
// output, which the rest of the model reads. It must run once the block's
// forward pass is over, since later operators of the block read them.
// Backward then leaves those outputs alone.
func releaseDead(start int, y mat.Tensor) {
	if releaseOff.Load() {
		return
	}
	tapeMu.Lock()
	defer tapeMu.Unlock()
	if start >= len(tape) {
		return // nothing recorded, or the tape was reset meanwhile
	}
	entries := tape[start:]
	var live []span
	mark := func(t mat.Tensor) {
		if t == nil {
			return
		}
		if d := Data(t); len(d) > 0 {
			live = append(live, spanOf(d, len(d)))
		}
	}
	mark(y)
	for _, e := range entries {
		if r, ok := e.fn.(valueReader); ok {
			for _, t := range r.backwardReads() {
				mark(t)
			}
			continue
		}
		for _, t := range e.fn.Operands() {
			mark(t)
		}
		mark(e.op)
	}
	var n int64
	for i := range entries {
		e := &entries[i]
		if _, pooled := e.fn.(pooledOutput); !pooled || e.released {
			continue
		}
		d := Data(e.op)
		if cap(d) == 0 {
			continue
		}
		s := spanOf(d, cap(d))
		dead := true
		for _, l := range live {
			if s.overlaps(l) {
				dead = false
				break
			}
		}
		if dead {
			recycle(d)
			e.released = true
			n += int64(cap(d))
		}
	}
	released.Add(n)
}
