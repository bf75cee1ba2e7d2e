package attach_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/plugins/builtin/lora"
	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

// LoRA on every linear layer of each decoder family (q/k/v with biases in
// Qwen2, per-head norms in Qwen3, ...): fine-tuning through the adapters
// lowers the loss, the adapter saved as a PEFT folder loads back to the
// same logits, and merging gives the adapter's logits.
func TestLoRAOnFamilies(t *testing.T) {
	store := attach.InProcess(sdktest.Connect(t, lora.Adapters()...))
	ctx := context.Background()
	for _, name := range []string{"llama-gqa-f32", "qwen2-gqa-f32", "qwen3-gqa-f32", "qwen2-tied-bf16-sharded",
		"mistral-gqa-window3-f32", "gpt2-f32", "gpt2-bf16-sharded",
		"gemma-gqa-f32", "phi3-gqa-f32", "phi3-mha-window5-f16", "gemma2-gqa-window3-f32", "gemma2-bf16-sharded"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("../../core/testdata/reference", name)
			load := func() model.Model {
				l, err := checkpoint.Load(dir)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				return l.Model
			}
			m := load()
			var ts []attach.Target
			for p := range attach.Slots(m) {
				if p != "lm_head" {
					ts = append(ts, attach.Target{Path: p, Adapter: "lora", Config: map[string]any{"r": 2, "lora_alpha": 4.0}})
				}
			}
			adapted, err := attach.Attach(ctx, m, store, ts, 3)
			if err != nil {
				t.Fatal(err)
			}
			// Fine-tune: SGD steps on next-token prediction of a fixed
			// sequence, through the adapters only; the loss must fall.
			seq := []int{1, 5, 9, 17, 33, 41, 7, 12, 3, 29, 5, 9}
			in, next := [][]int{seq[:len(seq)-1]}, seq[1:]
			lossAt := func() float64 {
				y, err := m.Logits(model.NewBatch(in, 0))
				if err != nil {
					t.Fatal(err)
				}
				loss := ops.CrossEntropy(y, next)
				v := float64(ops.Data(loss)[0])
				if err := ops.Backward(loss); err != nil {
					t.Fatal(err)
				}
				return v
			}
			first := 0.0
			for step := 0; step < 12; step++ {
				l := lossAt()
				if step == 0 {
					first = l
				}
				for _, a := range adapted {
					for i, p := range a.Values {
						if !a.Train[i] || !p.HasGrad() {
							continue
						}
						g, d := ops.Data(p.Grad()), ops.Data(p)
						for k := range d {
							d[k] -= 0.05 * g[k]
						}
						p.ZeroGrad()
					}
				}
			}
			if last := lossAt(); !(last < 0.95*first) {
				t.Fatalf("fine-tuning did not lower the loss: %.4f -> %.4f", first, last)
			}
			for _, a := range adapted {
				for _, p := range a.Values {
					p.ZeroGrad()
				}
			}
			for _, a := range adapted { // make B clearly non-zero for the merge checks
				for i := range ops.Data(a.Param(lora.ParamB)) {
					ops.Data(a.Param(lora.ParamB))[i] += float32(math.Sin(float64(i))) * 0.3
				}
			}
			ids := [][]int{{1, 5, 9, 17, 33, 41, 7}}
			logits := func(m model.Model) []float32 {
				y, err := m.Logits(model.NewBatch(ids, 0))
				if err != nil {
					t.Fatal(err)
				}
				return append([]float32(nil), ops.Data(y)...)
			}
			want := logits(m)
			// Save through the plugin's saved form and load onto a fresh base.
			a, err := attach.ToPEFT(ctx, store, attach.Adapted(m), attach.Info{TaskType: "CAUSAL_LM"})
			if err != nil {
				t.Fatal(err)
			}
			// PEFT adapts GPT-2's Conv1D layers with fan_in_fan_out.
			if ffo, _ := a.Raw["fan_in_fan_out"].(bool); ffo != strings.HasPrefix(name, "gpt2") {
				t.Fatalf("fan_in_fan_out = %v", a.Raw["fan_in_fan_out"])
			}
			out := filepath.Join(t.TempDir(), "adapter")
			if err := peft.Write(out, a); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(out, peft.ConfigFile)); err != nil {
				t.Fatal(err)
			}
			fresh, err := attach.AttachFolder(ctx, load(), store, out)
			if err != nil {
				t.Fatal(err)
			}
			got := logits(fresh)
			base := logits(load())
			moved := 0.0
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("logit %d after save and load %v, before %v", i, got[i], want[i])
				}
				moved = math.Max(moved, math.Abs(float64(want[i]-base[i])))
			}
			if moved < 1e-3 {
				t.Fatalf("the adapter does not change the logits")
			}
			if err := attach.Merge(fresh); err != nil {
				t.Fatal(err)
			}
			merged := logits(fresh)
			for i := range want {
				if math.Abs(float64(merged[i]-want[i])) > 1e-4*math.Max(1, math.Abs(float64(want[i]))) {
					t.Fatalf("merged logit %d = %v, adapter %v", i, merged[i], want[i])
				}
			}
			if n := len(layer.Params(fresh)); n == 0 {
				t.Fatal("no params")
			}
		})
	}
}
