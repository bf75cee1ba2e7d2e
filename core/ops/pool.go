package ops

import (
	"math"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"

	"github.com/surgeon-ml/surgeon/core/vmem"
)

// Buffer reuse. A training step allocates the same buffers step after step:
// gradients, the state operators keep for backward, and the temporaries of
// backward passes. Left to the collector, each step's copies become garbage
// that the next step replaces with fresh pages, which the runtime zeroes,
// faults in and later returns to the system. Instead, Backward hands
// every gradient it has consumed and every operator's saved state back to
// this pool once the operator's backward pass has run, and the operators
// take their buffers from it, so that a steady training loop stops growing
// the heap. Buffers come in size classes, eight per octave, so that batches
// padded to different lengths still find buffers to reuse; a request takes
// a buffer of its class and uses a prefix of it.
//
// Only buffers that nothing else can reach go back to the pool. Operator
// outputs qualify once Backward has run their operator's backward pass and
// those of all their consumers, except the output Backward started from;
// so Backward's callers read what they need from the graph before calling
// it.

// defaultPoolLimit is the most memory the pool keeps unless SetPoolLimit
// says otherwise, in float32s (128 MiB): room for the operator outputs of a
// small model's step, which the next step reuses (stories260K's at 32x64 do
// not fit in 64 MiB, and its steps ran 8% slower with that cap). Beyond the
// limit the pool drops buffers of other sizes to make room.
const defaultPoolLimit = 1 << 25

// SetPoolLimit sets the most memory, in bytes, that the pool of reusable
// buffers keeps between operators and steps (at least 128 MiB), and returns
// the previous limit. A training run whose activations exceed the limit
// hands the excess to the collector, and every step then faults in and
// zeroes fresh pages for it: a runner that knows a step's activations sets
// the limit to them. Buffers the pool holds are memory the step needed at
// its peak anyway.
func SetPoolLimit(bytes int64) (was int64) {
	bufs.Lock()
	defer bufs.Unlock()
	was = 4 * int64(bufs.limit)
	bufs.limit = int(max(defaultPoolLimit, bytes/4))
	return was
}

// poisonRecycled fills buffers with NaN as they go back to the pool, so
// that tests catch a reader of a reused buffer that it did not write.
// SURGEON_POOL_POISON=1 in the environment turns it on (make test does, for
// every package).
var poisonRecycled = os.Getenv("SURGEON_POOL_POISON") == "1"

// minPooled is the smallest buffer worth pooling, in float32s.
const minPooled = 1 << 10

var bufs = struct {
	sync.Mutex
	free  map[int][][]float32 // by capacity, a size class
	held  int
	limit int // the most floats held (SetPoolLimit)
}{limit: defaultPoolLimit}

// sizeClass rounds n up to its size class: for n in [2^k, 2^(k+1)), a
// multiple of 2^(k-3). A class size is its own class.
func sizeClass(n int) int {
	if n <= 8 {
		return n
	}
	step := 1 << (bits.Len(uint(n)) - 4)
	return (n + step - 1) &^ (step - 1)
}

// alloc returns a zeroed slice of n floats, from the pool when it has one.
func alloc(n int) []float32 {
	s := allocDirty(n)
	clear(s)
	return s
}

// allocDirty returns a slice of n floats whose contents are undefined (a
// reused buffer keeps what it held), for a caller that writes every element
// before reading any. Its capacity is n's size class.
func allocDirty(n int) []float32 {
	if n < minPooled {
		return make([]float32, n)
	}
	c := sizeClass(n)
	bufs.Lock()
	if l := bufs.free[c]; len(l) > 0 {
		s := l[len(l)-1]
		l[len(l)-1] = nil
		bufs.free[c] = l[:len(l)-1]
		bufs.held -= c
		bufs.Unlock()
		return s[:n]
	}
	huge := c >= minHuge && bufs.limit > defaultPoolLimit
	bufs.Unlock()
	s := make([]float32, n, c)
	if huge {
		adviseHuge(s[:c])
	}
	return s
}

// minHuge is the capacity, in float32s (4 MiB), from which a new pooled
// buffer asks for transparent huge pages, when a runner has raised the
// pool's limit for a step's large activations (SetPoolLimit): it holds at
// least one whole 2 MiB page wherever it starts. The step's activations,
// gradients and stored-weight buffers then fault in and are mapped 2 MiB
// at a time: the TinyLlama LoRA step (4 x 256 tokens) took 13.27-13.66 s
// (mean 13.47, eight runs) instead of 13.22-15.11 s (mean 14.05, nine),
// alternated. Under the default limit, whose few large buffers come and
// go, they did not pay (the quickstart's 420 steps took 27-32 s instead
// of 24 in two runs each), so small runs keep ordinary pages.
const minHuge = 1 << 20

// adviseHuge is vmem.AdviseHuge; tests count its calls.
var adviseHuge = vmem.AdviseHuge

// recycle gives buffers back to the pool. The caller must own them whole
// (from their first element to their capacity): no tensor, operator or
// other buffer may refer to them afterwards. Buffers whose capacity is not a
// size class are left to the collector.
func recycle(ss ...[]float32) {
	bufs.Lock()
	defer bufs.Unlock()
	limit := bufs.limit
	if bufs.free == nil {
		bufs.free = map[int][][]float32{}
	}
	for _, s := range ss {
		c := cap(s)
		if c < minPooled || sizeClass(c) != c || c > limit {
			continue
		}
		s = s[:c]
		if poisonRecycled {
			for i := range s {
				s[i] = float32(math.NaN())
			}
		}
		for size, l := range bufs.free { // make room, dropping other sizes first
			if bufs.held+c <= limit {
				break
			}
			if size != c {
				bufs.held -= size * len(l)
				delete(bufs.free, size)
			}
		}
		if bufs.held+c > limit {
			continue
		}
		bufs.free[c] = append(bufs.free[c], s)
		bufs.held += c
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

// pooledOutput is an autograd function whose output comes from the pool
// (allocOutput), is written whole by Forward and is not part of its saved
// state: Backward may recycle it once the graph no longer needs it.
type pooledOutput interface {
	pooledOutput()
}

// allocOutput returns the buffer of n floats for the output of a
// pooledOutput function, contents undefined. While an arena is open (see
// inArena) the buffer is also recorded for the arena to take back.
func allocOutput(n int) []float32 {
	s := allocDirty(n)
	if arena.open.Load() {
		arena.Lock()
		arena.bufs = append(arena.bufs, s)
		arena.Unlock()
	}
	return s
}

// arena records the operator outputs made while a checkpointed block runs
// forward without gradients (checkpointFn.Forward): once the block's output
// has been copied out, nothing refers to them, and they go back to the pool
// instead of to the collector.
var arena struct {
	sync.Mutex
	open atomic.Bool
	bufs [][]float32
}

// inArena runs fn, which must keep no reference to the operator outputs it
// makes once it returns (it copies out what it needs), and gives those
// outputs back to the pool afterwards. An arena opened inside another adds
// to the outer one.
func inArena(fn func()) {
	if arena.open.Swap(true) {
		fn()
		return
	}
	defer func() {
		arena.Lock()
		bufs := arena.bufs
		arena.bufs = nil
		arena.open.Store(false)
		arena.Unlock()
		recycle(bufs...)
		clear(bufs)
	}()
	fn()
}

// recycler is an autograd function whose saved state may go back to the
// pool once its backward pass has run.
type recycler interface {
	recycle()
}

// The operators whose outputs come from the pool (see pooledOutput).
func (*linearFn) pooledOutput()       {}
func (*loraFn) pooledOutput()         {}
func (*swiGLUFn) pooledOutput()       {}
func (*addFn) pooledOutput()          {}
func (*geluFn) pooledOutput()         {}
func (*attentionFn) pooledOutput()    {}
func (*rmsNormFn) pooledOutput()      {}
func (*layerNormFn) pooledOutput()    {}
func (*storedLinearFn) pooledOutput() {}
func (*reluFn) pooledOutput()         {}
func (*rotaryFn) pooledOutput()       {}
