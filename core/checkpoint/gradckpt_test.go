package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

// Gradient checkpointing (ops.SetCheckpointing) gives bit for bit the
// loss and the gradients of the ordinary backward pass, for every family
// of the reference models, with every parameter trainable (so gradients
// flow into each block's parameters and through its input), and with
// stored weights; so does checkpointing only the first block
// (ops.SetCheckpointBlocks), which runs exactly that block again.
// Blocks run again give back what no backward pass reads, as others do.
func TestGradientCheckpointingSameGradients(t *testing.T) {
	cases, err := os.ReadDir(refDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		dir := filepath.Join(refDir, c.Name())
		if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
			continue
		}
		t.Run(c.Name(), func(t *testing.T) {
			grads := func(ckpt bool, blocks int) (float32, map[string][]float32) {
				l, err := Load(dir)
				if err != nil {
					t.Fatal(err)
				}
				layer.Freeze(l.Model, false)
				was := ops.SetCheckpointing(ckpt)
				defer ops.SetCheckpointing(was)
				defer ops.SetCheckpointBlocks(ops.SetCheckpointBlocks(blocks))
				return lossAndGrads(t, l)
			}
			l0, g0 := grads(false, 0)
			for _, c := range []struct {
				blocks    int
				recompute func(n int64) bool // of the blocks run again
			}{
				{0, func(n int64) bool { return n >= 2 }}, // every block (2 or more)
				{1, func(n int64) bool { return n == 1 }},
			} {
				before, freed := ops.Recomputed(), ops.Released()
				l1, g1 := grads(true, c.blocks)
				if n := ops.Recomputed() - before; !c.recompute(n) {
					t.Fatalf("checkpoint_blocks %d: %d blocks run again", c.blocks, n)
				}
				// A block run again gives back what its backward does not
				// read, as any recorded block does (a residual sum's addends).
				if ops.Released() == freed {
					t.Fatalf("checkpoint_blocks %d: nothing given back", c.blocks)
				}
				sameGrads(t, fmt.Sprintf("checkpoint_blocks %d", c.blocks), "with checkpointing", l0, g0, l1, g1)
			}
		})
	}
}

// lossAndGrads runs l's model forward on a fixed batch of two sequences,
// then backward from the cross-entropy to fixed targets, and returns the
// loss and a copy of every parameter's gradient by path.
func lossAndGrads(t *testing.T, l *Loaded) (float32, map[string][]float32) {
	t.Helper()
	return lossAndGradsOf(t, l, [][]int{{1, 5, 9, 2, 7, 3, 11, 4}, {4, 4, 8, 1, 6, 2, 10, 3}})
}

// lossAndGradsOf is lossAndGrads on the batch ids.
func lossAndGradsOf(t *testing.T, l *Loaded, ids [][]int) (float32, map[string][]float32) {
	t.Helper()
	logits, err := l.Model.Logits(model.NewBatch(ids, 0))
	if err != nil {
		t.Fatal(err)
	}
	targets := make([]int, ops.Rows(logits))
	for i := range targets {
		targets[i] = (3*i + 1) % ops.Cols(logits)
	}
	loss := ops.CrossEntropy(logits, targets)
	lv := ops.Data(loss)[0]
	if err := ops.Backward(loss); err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for _, p := range layer.Params(l.Model) {
		if p.Param.HasGrad() {
			out[p.Path] = append([]float32(nil), ops.Data(p.Param.Grad())...)
		}
	}
	return lv, out
}

// sameGrads fails the test (naming what for case and how for the second
// run) unless the two runs' losses and gradients are bit for bit equal.
func sameGrads(t *testing.T, what, how string, l0 float32, g0 map[string][]float32, l1 float32, g1 map[string][]float32) {
	t.Helper()
	if l0 != l1 {
		t.Fatalf("%s: loss %v %s, %v without", what, l1, how, l0)
	}
	if len(g0) == 0 || len(g0) != len(g1) {
		t.Fatalf("%s: %d gradients %s, %d without", what, len(g1), how, len(g0))
	}
	for name, a := range g0 {
		b := g1[name]
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s: %s[%d]: %v %s, %v without", what, name, i, b[i], how, a[i])
			}
		}
	}
}
