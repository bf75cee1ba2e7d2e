package attach

import (
	"context"
	"math"
	"os"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/internal/plugintest"
	"github.com/surgeon-ml/surgeon/plugins/host"
)

func TestMain(m *testing.M) {
	code := m.Run()
	plugintest.Cleanup()
	os.Exit(code)
}

// Every adapter type, served by its real plugin binary (the example LoHa
// plugin included), trains through the same path (attach, forward,
// backward, update) and merges into weights that reproduce its output.
func TestTrainAndMergeWithRealPlugins(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugin binaries")
	}
	mgr := plugintest.Manager(t, host.Options{}, "lora", "ia3", "loha")
	seq := []int{1, 17, 33, 9, 54, 3, 71, 22, 5, 40}
	targets := make([]int, len(seq))
	for i := range seq {
		targets[i] = -1
		if i+1 < len(seq) {
			targets[i] = seq[i+1]
		}
	}
	for _, tc := range []struct {
		adapter string
		config  map[string]any
	}{
		{"lora", map[string]any{"r": 4, "lora_alpha": 8.0}},
		{"dora", map[string]any{"r": 4, "lora_alpha": 8.0}},
		{"lora-merged", map[string]any{"r": 4, "lora_alpha": 8.0}},
		{"ia3", map[string]any{}},
		{"loha", map[string]any{"r": 2, "alpha": 2.0}},
	} {
		t.Run(tc.adapter, func(t *testing.T) {
			l, err := checkpoint.Load(refBase)
			if err != nil {
				t.Fatal(err)
			}
			var ts []Target
			for _, p := range []string{"model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.v_proj", "model.layers.1.mlp.down_proj"} {
				ts = append(ts, Target{Path: p, Adapter: tc.adapter, Config: tc.config})
			}
			adapted, err := Attach(context.Background(), l.Model, mgr.Adapters(), ts, 7)
			if err != nil {
				t.Fatal(err)
			}
			loss := func() (float64, error) {
				logits, err := l.Model.Logits(model.Batch{IDs: [][]int{seq}})
				if err != nil {
					return 0, err
				}
				ce := ops.CrossEntropy(logits, targets)
				return float64(ops.Data(ce)[0]), ops.Backward(ce)
			}
			first, err := loss()
			if err != nil {
				t.Fatal(err)
			}
			last := first
			for step := 0; step < 30; step++ {
				for _, a := range adapted {
					for i, p := range a.Values {
						if !a.Train[i] || !p.HasGrad() {
							continue
						}
						g := ops.Data(p.Grad())
						d := ops.Data(p)
						for j := range d {
							d[j] -= 0.05 * g[j]
						}
						p.ZeroGrad()
					}
				}
				if last, err = loss(); err != nil {
					t.Fatal(err)
				}
			}
			if !(last < first-0.05) || math.IsNaN(last) {
				t.Fatalf("loss %v -> %v: training did not reduce it", first, last)
			}
			logits, _ := l.Model.Logits(model.Batch{IDs: [][]int{seq}})
			before := append([]float32(nil), ops.Data(logits)...)
			if err := Merge(l.Model); err != nil {
				t.Fatal(err)
			}
			if n := len(Adapted(l.Model)); n != 0 {
				t.Fatalf("%d adapters left after merge", n)
			}
			logits, _ = l.Model.Logits(model.Batch{IDs: [][]int{seq}})
			for i, v := range ops.Data(logits) {
				if math.Abs(float64(v-before[i])) > 1e-4*math.Max(1, math.Abs(float64(before[i]))) {
					t.Fatalf("merged logit %d = %v, adapted %v", i, v, before[i])
				}
			}
			t.Logf("loss %.4f -> %.4f", first, last)
		})
	}
}

const refBase = "../../core/testdata/reference/llama-gqa-f32"
