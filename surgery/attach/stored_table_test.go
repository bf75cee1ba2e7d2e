package attach_test

import (
	"context"
	"math"
	"path/filepath"
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

// A saved adapter whose word embeddings were fully trained
// (modules_to_save) applies to a base whose tables stay where they are
// stored (checkpoint.LoadStored) as to the float32 load: the table is
// read into memory before the saved values replace it, so lookups and the
// tied output layer see the new values, not the file's. Tied models, so
// that the table is also the output layer.
func TestSavedTableOnStoredBase(t *testing.T) {
	store := attach.InProcess(sdktest.Connect(t, lora.Adapters()...))
	ctx := context.Background()
	for _, c := range []struct{ name, slot, table string }{
		{"qwen2-tied-bf16-sharded", "model.layers.0.self_attn.q_proj", "model.embed_tokens"},
		{"gpt2-bf16-sharded", "transformer.h.0.attn.c_attn", "transformer.wte"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join("../../core/testdata/reference", c.name)
			l, err := checkpoint.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ts := []attach.Target{{Path: c.slot, Adapter: "lora", Config: map[string]any{"r": 2, "lora_alpha": 4.0}}}
			adapted, err := attach.Attach(ctx, l.Model, store, ts, 3)
			if err != nil {
				t.Fatal(err)
			}
			for i := range ops.Data(adapted[0].Param(lora.ParamB)) {
				ops.Data(adapted[0].Param(lora.ParamB))[i] = float32(math.Sin(float64(i))) * 0.3
			}
			table := ops.Data(layer.Embeddings(l.Model)[c.table].Weight)
			for i := range table {
				table[i] += float32(math.Cos(float64(i))) * 0.05
			}
			info := attach.Info{TaskType: "CAUSAL_LM", ModulesToSave: []string{c.table}, Saved: attach.SavedTensors(l.Model, []string{c.table})}
			a, err := attach.ToPEFT(ctx, store, attach.Adapted(l.Model), info)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "adapter")
			if err := peft.Write(out, a); err != nil {
				t.Fatal(err)
			}
			ids := [][]int{{1, 5, 9, 17, 33, 41, 7}}
			logits := func(m model.Model) []float32 {
				y, err := m.Logits(model.NewBatch(ids, 0))
				if err != nil {
					t.Fatal(err)
				}
				return append([]float32(nil), ops.Data(y)...)
			}
			want := logits(l.Model)
			st, err := checkpoint.LoadStored(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if layer.Embeddings(st.Model)[c.table].Source == nil {
				t.Fatalf("%s was read into memory by LoadStored", c.table)
			}
			base := logits(st.Model)
			m, err := attach.AttachFolder(ctx, st.Model, store, out)
			if err != nil {
				t.Fatal(err)
			}
			got := logits(m)
			var scale, diff, moved float64
			for i := range want {
				scale = math.Max(scale, math.Abs(float64(want[i])))
				diff = math.Max(diff, math.Abs(float64(got[i]-want[i])))
				moved = math.Max(moved, math.Abs(float64(base[i]-want[i])))
			}
			if diff > 1e-5*scale {
				t.Fatalf("stored base with the adapter: logits differ from the float32 load's by up to %g (largest %g)", diff, scale)
			}
			if moved < 1e-2 {
				t.Fatalf("the adapter moves the logits by only %g", moved)
			}
		})
	}
}
