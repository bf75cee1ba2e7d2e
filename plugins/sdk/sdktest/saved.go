package sdktest

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/nlpodyssey/spago/mat"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/adapter"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

// CheckSaved trains an adapted layer a few steps, saves it as a PEFT
// folder in the plugin's saved form, reads the folder back through the
// plugin onto the same base layer and checks that the loaded layer gives
// the same outputs (to 1e-6 relative) and the same configuration. It is
// the saved-form half of the conformance suite; Run calls it for every
// case of an adapter that has a saved form.
func CheckSaved(t *testing.T, c rpc.Interface, cs Case) {
	t.Helper()
	ctx := context.Background()
	store := attach.InProcess(c)
	a := Build(t, c, cs, 7)
	// A few SGD steps on L = sum(y ⊙ R), so that every trainable parameter
	// leaves its initial value.
	r := rand.New(rand.NewPCG(11, 5))
	for step := 0; step < 3; step++ {
		x := randomMatrix(r, 6, cs.In)
		y := a.Forward(x)
		y.AccGrad(randomMatrix(r, 6, cs.Out))
		if err := ops.Backward(y); err != nil {
			t.Fatal(err)
		}
		for i, p := range a.Values {
			if !a.Train[i] || !p.HasGrad() {
				continue
			}
			g := ops.Data(p.Grad())
			d := ops.Data(p)
			for k := range d {
				d[k] -= 0.05 * g[k]
			}
			p.ZeroGrad()
		}
	}
	saved, err := attach.ToPEFT(ctx, store, map[string]*adapter.Adapted{"test.layer": a}, attach.Info{TaskType: "CAUSAL_LM"})
	if err != nil {
		t.Fatalf("%s: save: %v", cs.Adapter, err)
	}
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := peft.Write(dir, saved); err != nil {
		t.Fatalf("%s: write: %v", cs.Adapter, err)
	}
	read, targets, err := attach.Read(ctx, store, dir)
	if err != nil {
		t.Fatalf("%s: read back: %v", cs.Adapter, err)
	}
	if len(targets) != 1 || targets[0].Path != "test.layer" {
		t.Fatalf("%s: read back %d modules %v, want test.layer", cs.Adapter, len(targets), targets)
	}
	if len(read.Saved) != 0 {
		t.Errorf("%s: %d tensors read back as fully trained, want 0 (the plugin claims its parameters)", cs.Adapter, len(read.Saved))
	}
	tg := targets[0]
	plan, err := c.Plan(ctx, rpc.PlanRequest{Adapter: tg.Adapter, Layer: rpc.Layer{Path: tg.Path, Kind: "linear", In: cs.In, Out: cs.Out, HasBias: cs.Bias, DType: "F32"}, Config: tg.Config})
	if err != nil {
		t.Fatalf("%s: plan of the loaded module (%s %v): %v", cs.Adapter, tg.Adapter, tg.Config, err)
	}
	base := &layer.Linear{Weight: a.Base.Weight, Bias: a.Base.Bias}
	b, err := adapter.New(base, tg.Path, tg.Adapter, tg.Config, plan, tg.Values, 0)
	if err != nil {
		t.Fatalf("%s: loaded module: %v", cs.Adapter, err)
	}
	if b.Summary != a.Summary {
		t.Errorf("%s: summary after loading %+v, before %+v", cs.Adapter, b.Summary, a.Summary)
	}
	x := randomMatrix(r, 5, cs.In)
	ya, yb := ops.Data(a.Forward(x)), ops.Data(b.Forward(x))
	for i := range ya {
		if d := math.Abs(float64(ya[i] - yb[i])); d > 1e-6*math.Max(1, math.Abs(float64(ya[i]))) || math.IsNaN(d) {
			t.Fatalf("%s: output %d after save and load %v, before %v", cs.Adapter, i, yb[i], ya[i])
		}
	}
}

func randomMatrix(r *rand.Rand, rows, cols int) *mat.Dense[float32] {
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return ops.New(rows, cols, v)
}
