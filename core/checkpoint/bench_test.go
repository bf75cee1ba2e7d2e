package checkpoint

import (
	"os"
	"testing"

	"github.com/surgeon-ml/surgeon/core/model"
)

const storiesPath = "../../../shared/fixtures/stories260K-gguf/stories260K.gguf"

// BenchmarkForwardStories measures forward tokens/s of stories260K on a batch
// of 8 sequences of 64 tokens (inference, no gradients).
func BenchmarkForwardStories(b *testing.B) {
	if _, err := os.Stat(storiesPath); err != nil {
		b.Skipf("stories260K fixture missing: %v", err)
	}
	l, err := Load(storiesPath)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for _, shape := range []struct {
		name   string
		batch  int
		length int
	}{{"1x64", 1, 64}, {"8x64", 8, 64}, {"32x64", 32, 64}} {
		b.Run(shape.name, func(b *testing.B) {
			seqs := make([][]int, shape.batch)
			for i := range seqs {
				for t := 0; t < shape.length; t++ {
					seqs[i] = append(seqs[i], (i*31+t*7)%512)
				}
			}
			batch := model.NewBatch(seqs, 0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Model.Logits(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*shape.batch*shape.length)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
