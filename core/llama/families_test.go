package llama_test

import (
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

// The families built on this implementation keep their options through
// SaveHF (config.json keys such as sliding_window, hidden_activation,
// rope_scaling and partial_rotary_factor)
// and through a spago native folder (the gob of llama.Config): both load
// back to the same config and bit-identical logits.
func TestFamiliesRoundTrip(t *testing.T) {
	for _, name := range []string{"mistral-gqa-window3-f32", "gemma-gqa-f32", "phi3-mha-window5-f16", "qwen3-cls-f32", "mistral-cls-window3-f16", "gemma-cls-bf16-sharded", "phi3-cls-f32",
		"rope-phi3-longrope-partial-f32", "rope-qwen2-yarn-bf16", "rope-llama3-f32", "rope-llama-linear-f16"} {
		t.Run(name, func(t *testing.T) {
			l, err := checkpoint.Load(filepath.Join("../testdata/reference", name))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ids := [][]int{{1, 5, 9, 17, 33, 41, 7, 3}}
			logits := func(m model.Model) []float32 {
				y, err := m.Logits(model.NewBatch(ids, 0))
				if err != nil {
					t.Fatal(err)
				}
				return append([]float32(nil), ops.Data(y)...)
			}
			want := logits(l.Model)
			hfDir := filepath.Join(t.TempDir(), "hf")
			if err := checkpoint.SaveHF(hfDir, l.Model, checkpoint.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			natDir := filepath.Join(t.TempDir(), "m.spago")
			if err := checkpoint.SaveNative(natDir, l); err != nil {
				t.Fatal(err)
			}
			for _, dir := range []string{hfDir, natDir} {
				r, err := checkpoint.Load(dir)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				// SaveHF writes F32 weights and says so; gob drops a
				// pad_token_id of 0 (a pointer to a zero value).
				got, exp := r.Model.HFConfig(), l.Model.HFConfig()
				for _, k := range []string{"torch_dtype", "pad_token_id"} {
					delete(got, k)
					delete(exp, k)
				}
				if !reflect.DeepEqual(got, exp) {
					t.Errorf("%s: config %v, want %v", filepath.Base(dir), got, exp)
				}
				a, b := r.Model.(*llama.Model).Config, l.Model.(*llama.Model).Config
				if a.SlidingWindow != b.SlidingWindow || a.Fused != b.Fused || a.NormUnitOffset != b.NormUnitOffset ||
					a.ScaleEmbeddings != b.ScaleEmbeddings || a.Activation != b.Activation || a.Prefix() != b.Prefix() ||
					a.PartialRotary != b.PartialRotary || !reflect.DeepEqual(a.PartialRotaryFactor, b.PartialRotaryFactor) ||
					a.OriginalMaxPositionEmbeddings != b.OriginalMaxPositionEmbeddings {
					t.Errorf("%s: options %+v, want %+v", filepath.Base(dir), a, b)
				}
				ra, errA := a.Rope()
				rb, errB := b.Rope()
				if errA != nil || errB != nil || !reflect.DeepEqual(ra, rb) {
					t.Errorf("%s: rope %+v (%v), want %+v (%v)", filepath.Base(dir), ra, errA, rb, errB)
				}
				if !slices.Equal(logits(r.Model), want) {
					t.Errorf("%s: logits differ", filepath.Base(dir))
				}
			}
		})
	}
}
