package ops

import (
	"fmt"
	"sync/atomic"

	"github.com/nlpodyssey/spago/mat"
)

// Gradient checkpointing. A model's blocks run through Block; while
// checkpointing is on (SetCheckpointing) and gradients are tracked, each
// block keeps only its input for the backward pass: its forward runs
// without recording, and Backward runs it again from the saved input with
// recording on, then propagates through that copy. Activations inside a
// block then live for one block at a time, at the cost of a second forward
// pass. The kernels are deterministic, so gradients are bit for bit those
// of the ordinary pass; a block must therefore draw no random numbers
// (dropout), which would differ the second time.

var (
	checkpointing atomic.Bool
	// checkpointBlocks limits checkpointing to the blocks numbered below
	// it; 0 checkpoints every block.
	checkpointBlocks atomic.Int64
	recomputed       atomic.Int64
)

// Recomputed returns how many checkpointed blocks Backward has run again
// since the program started (for tests and reports).
func Recomputed() int64 { return recomputed.Load() }

// SetCheckpointing turns gradient checkpointing of Block on or off and
// returns the previous setting.
func SetCheckpointing(on bool) (was bool) { return checkpointing.Swap(on) }

// Checkpointing reports whether gradient checkpointing is on.
func Checkpointing() bool { return checkpointing.Load() }

// SetCheckpointBlocks limits checkpointing to the blocks numbered 0 to n-1
// of a model (Block's i); the later blocks keep their activations, so that
// fewer blocks run twice for more memory. n = 0 checkpoints every block. It
// returns the previous limit.
func SetCheckpointBlocks(n int) (was int) { return int(checkpointBlocks.Swap(int64(max(n, 0)))) }

// Block returns f(x) for the model's block number i (from 0), as a
// checkpointed block when checkpointing is on for i and gradients are
// being tracked, else by calling f. A block that keeps its activations
// for backward gives back to the pool, once f returns, those that no
// backward pass reads (see releaseDead); f's result must be the only
// tensor of the block that the rest of the model reads.
func Block(i int, x mat.Tensor, f func(mat.Tensor) mat.Tensor) mat.Tensor {
	if !gradEnabled() {
		return f(x)
	}
	if n := checkpointBlocks.Load(); !checkpointing.Load() || n > 0 && int64(i) >= n {
		return recordBlock(x, f)
	}
	return run(&checkpointFn{x: x, f: f, marker: gradMarker})
}

// recordBlock returns f(x), run with recording on, and gives back to the
// pool the outputs of the block that no backward pass reads.
func recordBlock(x mat.Tensor, f func(mat.Tensor) mat.Tensor) mat.Tensor {
	start := tapeLen()
	y := f(x)
	releaseDead(start, y)
	return y
}

// gradMarker is an operand that requires a gradient, so that a block is
// recorded even when its input does not need one (its parameters may):
// nothing reads or writes its gradient.
var gradMarker = func() mat.Tensor {
	m := New(1, 1, []float32{0})
	m.SetRequiresGrad(true)
	return m
}()

type checkpointFn struct {
	x, marker mat.Tensor
	f         func(mat.Tensor) mat.Tensor
}

func (c *checkpointFn) pooledOutput() {}

func (c *checkpointFn) Operands() []mat.Tensor { return []mat.Tensor{c.x, c.marker} }

func (c *checkpointFn) Forward() (mat.Tensor, error) {
	var out mat.Tensor
	// The block's operator outputs go back to the pool once its output is
	// copied out of them (the copy: y's buffer may be one of them).
	inArena(func() {
		_ = WithoutGrad(func() error {
			y := c.f(c.x)
			v := Data(y)
			out = New(Rows(y), Cols(y), append(allocDirty(len(v))[:0], v...))
			return nil
		})
	})
	return out, nil
}

func (c *checkpointFn) Backward(gy mat.Tensor) error {
	recomputed.Add(1)
	xv := Data(c.x)
	x := New(Rows(c.x), Cols(c.x), append([]float32(nil), xv...))
	x.SetRequiresGrad(c.x.RequiresGrad())
	// The outer pass owns its tape entries already; the block records on a
	// fresh tape, which the inner Backward replays.
	y := recordBlock(x, c.f)
	if Rows(y) != Rows(gy) || Cols(y) != Cols(gy) {
		return fmt.Errorf("checkpointed block: recomputed output %dx%d, gradient %dx%d", Rows(y), Cols(y), Rows(gy), Cols(gy))
	}
	if !y.RequiresGrad() {
		ResetTape()
		return nil
	}
	g := Data(gy)
	seed := allocDirty(len(g))
	copy(seed, g)
	y.AccGrad(New(Rows(y), Cols(y), seed))
	if err := Backward(y); err != nil {
		return fmt.Errorf("checkpointed block: %w", err)
	}
	if c.x.RequiresGrad() && x.HasGrad() {
		gx := allocDirty(len(xv))
		copy(gx, Data(x.Grad()))
		accGrad(c.x, Rows(c.x), Cols(c.x), gx)
	}
	return nil
}
