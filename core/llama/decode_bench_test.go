package llama

import (
	"fmt"
	"testing"
)

// BenchmarkStep measures one cached decoding step after prefixes of
// growing length. With the key/value cache the projections and the MLP cost
// the same at every position; only attention reads the cached keys and
// values, a few MB at 2048 tokens, so ns/op grows slowly (recomputing the
// prefix would multiply it by the prefix length: about 100x from 16 to
// 2048 tokens). With a sliding window it stays flat. Each iteration decodes
// one token, then rolls the cache back.
func BenchmarkStep(b *testing.B) {
	const cfg = `{"model_type":"llama","hidden_size":256,"intermediate_size":688,"num_hidden_layers":4,
	"num_attention_heads":8,"num_key_value_heads":4,"vocab_size":2000,"rms_norm_eps":1e-5,"max_position_embeddings":4096}`
	for _, window := range []int{0, 64} {
		m := randomModel(b, cfg)
		m.Config.SlidingWindow = window
		for _, prefix := range []int{16, 256, 1024, 2048} {
			b.Run(fmt.Sprintf("window=%d/prefix=%d", window, prefix), func(b *testing.B) {
				c := m.NewCache().(*Cache)
				ids := make([]int, prefix)
				for i := range ids {
					ids[i] = (i*7 + 3) % m.Config.VocabSize
				}
				if _, err := m.Step(c, ids); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := m.Step(c, []int{i % m.Config.VocabSize}); err != nil {
						b.Fatal(err)
					}
					c.Truncate(prefix)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			})
		}
	}
}
