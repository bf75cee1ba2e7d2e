package ranks

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

// Extracting from two skeletons (checkpoint.OpenSkeleton, one module in
// memory at a time) gives exactly the adapter and stats of extracting from
// the loaded models: LoRA deltas, a changed norm saved whole, on a GPT-2
// base (Conv1D weights stored transposed) and a Llama one.
func TestExtractFromSkeletons(t *testing.T) {
	ctx := context.Background()
	s := connect(t)
	for _, name := range []string{"llama-gqa-f32", "gpt2-f32"} {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join("../../core/testdata/reference", name)
			l, err := checkpoint.Load(src)
			if err != nil {
				t.Fatal(err)
			}
			// A "fine-tuned" model: every linear weight and one norm moved.
			tuned, err := checkpoint.Load(src)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, p := range layer.Params(tuned.Model) {
				d := ops.Data(p.Param)
				if len(p.Shape) == 2 || n == 0 {
					for i := range d {
						d[i] += float32((i*7+n)%13-6) * 1e-3
					}
					n++
				}
			}
			dir := filepath.Join(t.TempDir(), "tuned")
			if err := checkpoint.SaveHF(dir, tuned.Model, checkpoint.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			opts := ExtractOptions{Adapter: "lora", Select: rpc.RankSelection{Method: rpc.MethodRank, Rank: 3}, SaveChanged: true}
			t2, err := checkpoint.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			want, wstats, err := Extract(ctx, s, l.Model, t2.Model, opts)
			if err != nil {
				t.Fatal(err)
			}
			bs, err := checkpoint.OpenSkeleton(src)
			if err != nil {
				t.Fatal(err)
			}
			defer bs.Close()
			ts, err := checkpoint.OpenSkeleton(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer ts.Close()
			opts.BaseFiller, opts.TunedFiller = bs, ts
			got, gstats, err := Extract(ctx, s, bs.Model, ts.Model, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gstats, wstats) {
				t.Fatalf("stats differ:\n%+v\n%+v", gstats, wstats)
			}
			a, b := t.TempDir(), t.TempDir()
			if err := peft.Write(a, want); err != nil {
				t.Fatal(err)
			}
			if err := peft.Write(b, got); err != nil {
				t.Fatal(err)
			}
			wa, _, err := attach.Read(ctx, s, a)
			if err != nil {
				t.Fatal(err)
			}
			ga, _, err := attach.Read(ctx, s, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(wa.Modules) == 0 || !reflect.DeepEqual(wa.Modules, ga.Modules) || !reflect.DeepEqual(wa.Saved, ga.Saved) {
				t.Fatalf("adapters differ (%d and %d modules, %d and %d saved)", len(ga.Modules), len(wa.Modules), len(ga.Saved), len(wa.Saved))
			}
		})
	}
}
