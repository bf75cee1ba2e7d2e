package tokenizer

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkHFLoadGemma3 loads gemma3's 33 MB tokenizer.json (262k tokens,
// 515k merges, 6k added tokens); the target is under a second.
func BenchmarkHFLoadGemma3(b *testing.B) {
	file := filepath.Join(fixturesDir, "tokenizers", "gemma3", "tokenizer.json")
	data, err := os.ReadFile(file)
	if err != nil {
		b.Skipf("fixture %s not available (%v); it lives in ../shared/fixtures next to the repository", file, err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := LoadHF(file, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHFEncodeShakespeare tokenizes tinyshakespeare/input.txt (1.1 MB)
// with the llama3 tokenizer, reporting tokens/s and MB/s; tools/tokref's
// bench.mjs measures transformers.js on the same text.
func BenchmarkHFEncodeShakespeare(b *testing.B) {
	file := filepath.Join(fixturesDir, "tinyshakespeare", "input.txt")
	text, err := os.ReadFile(file)
	if err != nil {
		b.Skipf("fixture %s not available (%v); it lives in ../shared/fixtures next to the repository", file, err)
	}
	h := fixtureHF(b, "tokenizers/llama3")
	s := string(text)
	b.SetBytes(int64(len(s)))
	n := 0
	for b.Loop() {
		h.cache = nil // a cold cache each time, as a fresh process has
		n = len(h.Encode(s, false))
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
