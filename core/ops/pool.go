package ops

import (
	"math"
	"sync"
)

// Buffer reuse. A training step allocates the same buffers step after step:
// gradients, the state operators keep for backward, and the temporaries of
// backward passes. Left to the collector, each step's copies become garbage
// that the next step replaces with fresh pages, which the runtime zeroes,
// faults in and later returns to the system. Instead, Backward hands
// every gradient it has consumed and every operator's saved state back to
// this pool once the operator's backward pass has run, and the operators
// take their buffers from it, so that a steady training loop stops growing
// the heap. Buffers are matched by exact length, which repeats from step to
// step.
//
// Only buffers that nothing else can reach go back to the pool: never an
// operator's output, which the caller may still hold.

// maxPooled is the most memory the pool keeps, in float32s (1 GiB).
const maxPooled = 1 << 28

// poisonRecycled fills buffers with NaN as they go back to the pool, so
// that tests catch a reader of a reused buffer that it did not write.
var poisonRecycled = false

// minPooled is the smallest buffer worth pooling, in float32s.
const minPooled = 1 << 10

var bufs struct {
	sync.Mutex
	free map[int][][]float32
	held int
}

// alloc returns a zeroed slice of n floats, from the pool when it has one.
func alloc(n int) []float32 {
	s := allocDirty(n)
	clear(s)
	return s
}

// allocDirty returns a slice of n floats whose contents are undefined (a
// reused buffer keeps what it held), for a caller that writes every element
// before reading any.
func allocDirty(n int) []float32 {
	if n >= minPooled {
		bufs.Lock()
		if l := bufs.free[n]; len(l) > 0 {
			s := l[len(l)-1]
			l[len(l)-1] = nil
			bufs.free[n] = l[:len(l)-1]
			bufs.held -= n
			bufs.Unlock()
			return s
		}
		bufs.Unlock()
	}
	return make([]float32, n)
}

// recycle gives buffers back to the pool. The caller must own them: no
// tensor, operator or other buffer may refer to them afterwards.
func recycle(ss ...[]float32) {
	bufs.Lock()
	defer bufs.Unlock()
	if bufs.free == nil {
		bufs.free = map[int][][]float32{}
	}
	for _, s := range ss {
		n := len(s)
		if n < minPooled || cap(s) != n || bufs.held+n > maxPooled {
			continue
		}
		if poisonRecycled {
			for i := range s {
				s[i] = float32(math.NaN())
			}
		}
		bufs.free[n] = append(bufs.free[n], s)
		bufs.held += n
	}
}

// FreeBuffers empties the pool of reusable buffers, for a program that has
// finished training and wants the memory back.
func FreeBuffers() {
	bufs.Lock()
	bufs.free, bufs.held = nil, 0
	bufs.Unlock()
}

// pooledBuffers returns the number of floats the pool holds (for tests).
func pooledBuffers() int {
	bufs.Lock()
	defer bufs.Unlock()
	return bufs.held
}

// recycler is an autograd function whose saved state may go back to the
// pool once its backward pass has run.
type recycler interface {
	recycle()
}
