package train

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/ops"
)

// toy is a linear regression y = x w^T with data depending only on (epoch, i).
type toy struct {
	w *nn.Param
}

func newToy() *toy {
	t := &toy{w: nn.NewParam(ops.New(1, 4, make([]float32, 4)))}
	return t
}

func (t *toy) forward(epoch, i int, scale float64) (float64, int, error) {
	r := rand.New(rand.NewPCG(uint64(epoch), uint64(i)))
	xs := make([]float32, 8*4)
	ys := make([]int, 8)
	for k := range xs {
		xs[k] = float32(r.NormFloat64())
	}
	// Two-class problem: label 1 when x0 + x1 > 0.
	logits := make([]float32, 0)
	_ = logits
	for k := range ys {
		if xs[k*4]+xs[k*4+1] > 0 {
			ys[k] = 1
		}
	}
	x := ops.New(8, 4, xs)
	// logits for two classes: [x w^T, 0]
	s := ops.Linear(x, t.w, nil)
	zero := ops.New(8, 1, make([]float32, 8))
	two := ops.Binary(ops.AddOp, ops.MatMul(s, ops.New(1, 2, []float32{1, 0})), ops.MatMul(zero, ops.New(1, 2, []float32{0, 1})))
	loss := ops.CrossEntropy(two, ys)
	l := float64(ops.Data(loss)[0])
	if err := ops.Backward(ops.Scale(loss, float32(scale))); err != nil {
		return 0, 0, err
	}
	return l, 8, nil
}

func TestRunLearnsAndResumes(t *testing.T) {
	cfg := Config{Epochs: 3, Batches: 10, GradAccum: 2, LR: 0.1, Kind: "linear", Warmup: 0.1, MaxGradNorm: 1,
		Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Fingerprint: "toy"}
	full := newToy()
	res, err := Run(context.Background(), []*nn.Param{full.w}, cfg, Hooks{Forward: full.forward})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 15 || len(res.History) != 3 {
		t.Fatalf("steps %d, epochs %d", res.Steps, len(res.History))
	}
	if !(res.History[2].Loss < res.History[0].Loss) {
		t.Fatalf("loss did not fall: %+v", res.History)
	}
	// Interrupt after 7 steps (mid-epoch), then resume from the checkpoint.
	dir := t.TempDir()
	cfg.CheckpointDir = dir
	cfg.CheckpointEvery = 1
	part := newToy()
	ctx, cancel := context.WithCancel(context.Background())
	_, err = Run(ctx, []*nn.Param{part.w}, cfg, Hooks{Forward: part.forward, Progress: func(e Event) {
		if e.Step == 7 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	again := newToy()
	res2, err := Run(context.Background(), []*nn.Param{again.w}, cfg, Hooks{Forward: again.forward})
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Resumed || res2.ResumedAt != 7 {
		t.Fatalf("did not resume: %+v", res2)
	}
	for i, v := range ops.Data(full.w) {
		if ops.Data(again.w)[i] != v {
			t.Fatalf("resumed run differs: %v vs %v", ops.Data(again.w), ops.Data(full.w))
		}
	}
	// A checkpoint of another run is ignored.
	cfg.Fingerprint = "other"
	other := newToy()
	res3, err := Run(context.Background(), []*nn.Param{other.w}, cfg, Hooks{Forward: other.forward})
	if err != nil || res3.Resumed {
		t.Fatalf("foreign checkpoint resumed: %v %+v", err, res3)
	}
}

func TestNonFinite(t *testing.T) {
	w := nn.NewParam(ops.New(1, 1, []float32{1}))
	cfg := Config{Epochs: 1, Batches: 3, LR: 0.1, Kind: "constant", Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	_, err := Run(context.Background(), []*nn.Param{w}, cfg, Hooks{Forward: func(e, i int, s float64) (float64, int, error) {
		if i == 1 {
			return math.NaN(), 1, nil
		}
		return 1, 1, nil
	}})
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("NaN loss: %v", err)
	}
}
