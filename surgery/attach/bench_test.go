package attach_test

import (
	"context"
	"os"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/plugins/builtin/lora"
	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

const storiesPath = "../../../shared/fixtures/stories260K-gguf/stories260K.gguf"

// BenchmarkLoRAStepStories measures one LoRA training step (forward and
// backward; r=8 on q and v, a trainable 2-way head) of stories260K as a
// sequence classifier on a batch of 32 x 64 tokens.
func BenchmarkLoRAStepStories(b *testing.B) {
	if _, err := os.Stat(storiesPath); err != nil {
		b.Skipf("stories260K fixture missing: %v", err)
	}
	l, err := checkpoint.Load(storiesPath)
	if err != nil {
		b.Fatal(err)
	}
	m := l.Model.(*llama.Model).AsClassifier([]string{"ham", "spam"}, 1)
	var ts []attach.Target
	for _, mod := range layer.Modules(m) {
		if p := mod.Path; len(p) > 7 && (p[len(p)-6:] == "q_proj" || p[len(p)-6:] == "v_proj") {
			ts = append(ts, attach.Target{Path: p, Adapter: "lora", Config: map[string]any{"r": 8, "lora_alpha": 16.0}})
		}
	}
	planner := sdktest.Connect(b, lora.Adapters()...)
	if _, err := attach.Attach(context.Background(), m, planner, ts, 1); err != nil {
		b.Fatal(err)
	}
	m.Score.Base().Weight.SetRequiresGrad(true)
	seqs := make([][]int, 32)
	labels := make([]int, 32)
	for i := range seqs {
		for t := 0; t < 64; t++ {
			seqs[i] = append(seqs[i], (i*31+t*7)%512)
		}
		labels[i] = i % 2
	}
	batch := model.NewBatch(seqs, 0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		logits, err := m.Logits(batch)
		if err != nil {
			b.Fatal(err)
		}
		loss := ops.CrossEntropy(logits, labels)
		if err := ops.Backward(loss); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*32*64)/b.Elapsed().Seconds(), "tokens/s")
}
