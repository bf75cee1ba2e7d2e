package generate_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/generate"
	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

// decodeModels are the checkpoints the key/value cache is checked on: the
// real stories260K (when ../shared/fixtures is there), the reference
// models of every family built on core/llama, sliding windows shorter than
// the sequence included, GPT-2, and Gemma 2 (soft-capping, windows on
// alternate layers).
var decodeModels = []string{
	"stories260K",
	"llama-gqa-f32",
	"llama-mha-tied-f16",
	"qwen2-gqa-f32",
	"qwen3-gqa-f32",
	"qwen3-mha-tied-f16",
	"mistral-gqa-window3-f32",
	"mistral-mha-tied-window4-f16",
	"gemma-gqa-f32",
	"gemma-mqa-f16",
	"phi3-gqa-f32",
	"phi3-mha-window5-f16",
	"gpt2-f32",
	"gpt2-untied-f16",
	"gemma2-gqa-window3-f32",
	"gemma2-mqa-untied-window4-f16",
	"gemma2-bf16-sharded",
	// Scaled rotary embeddings whose frequencies do not depend on the
	// sequence's length.
	"rope-llama3-f32",
	"rope-llama-linear-f16",
	"rope-qwen2-yarn-bf16",
}

func loadDecodeModel(t *testing.T, name string) *checkpoint.Loaded {
	t.Helper()
	path := filepath.Join("../testdata/reference", name)
	if name == "stories260K" {
		path = "../../../shared/fixtures/stories260K-gguf/stories260K.gguf"
		if _, err := os.Stat(path); err != nil {
			t.Skipf("fixture %s not available: %v", path, err)
		}
	}
	l, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// closeRows fails unless got is within 1e-5 (relative to the row's
// largest logit, at least 1) of want.
func closeRows(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d logits, want %d", what, len(got), len(want))
	}
	scale, worst := 1.0, 0.0
	for i := range want {
		scale = max(scale, math.Abs(float64(want[i])))
		worst = max(worst, math.Abs(float64(got[i]-want[i])))
	}
	if worst > 1e-5*scale {
		t.Fatalf("%s: logits differ by %g (scale %g)", what, worst, scale)
	}
}

// Stepping with the key/value cache, a prompt at once then one token at a
// time, or in chunks after a non-empty cache, gives the logits of the
// uncached forward pass over the whole sequence, row by row; and greedy
// generation gives the same ids either way.
func TestStepMatchesLogits(t *testing.T) {
	for _, name := range decodeModels {
		t.Run(name, func(t *testing.T) {
			l := loadDecodeModel(t, name)
			dec, ok := l.Model.(model.Decoder)
			if !ok {
				t.Fatalf("%T does not implement model.Decoder", l.Model)
			}
			const n = 24
			r := rand.New(rand.NewPCG(13, uint64(len(name))))
			ids := make([]int, n)
			for i := range ids {
				ids[i] = 1 + r.IntN(l.Model.VocabSize()-1)
			}
			full, err := l.Model.Logits(model.Batch{IDs: [][]int{ids}})
			if err != nil {
				t.Fatal(err)
			}
			v := l.Model.VocabSize()
			row := func(i int) []float32 { return ops.Data(full)[i*v : (i+1)*v] }

			// A prompt of 5, then one token at a time.
			c := dec.NewCache()
			y, err := dec.Step(c, ids[:5])
			if err != nil {
				t.Fatal(err)
			}
			closeRows(t, "prompt", ops.Data(y), row(4))
			for i := 5; i < n; i++ {
				if y, err = dec.Step(c, ids[i:i+1]); err != nil {
					t.Fatal(err)
				}
				closeRows(t, fmt.Sprintf("token %d", i), ops.Data(y), row(i))
			}
			if c.Len() != n {
				t.Fatalf("cache holds %d tokens, want %d", c.Len(), n)
			}
			// Chunks of several tokens after a non-empty cache.
			c = dec.NewCache()
			for _, cut := range [][2]int{{0, 3}, {3, 10}, {10, 11}, {11, n}} {
				if y, err = dec.Step(c, ids[cut[0]:cut[1]]); err != nil {
					t.Fatal(err)
				}
				closeRows(t, "chunk", ops.Data(y), row(cut[1]-1))
			}

			prompt := ids[:4]
			maxCtx := 60
			for _, key := range []string{"max_position_embeddings", "n_positions"} {
				if v, ok := l.Model.HFConfig()[key].(float64); ok {
					maxCtx = min(maxCtx, int(v))
				}
			}
			opts := generate.Options{MaxNew: 30, EOS: -1, MaxContext: maxCtx}
			cached, err := generate.Generate(context.Background(), l.Model, prompt, opts)
			if err != nil {
				t.Fatal(err)
			}
			opts.NoCache = true
			plain, err := generate.Generate(context.Background(), l.Model, prompt, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cached, plain) {
				t.Fatalf("greedy ids with the cache %v, without %v", cached, plain)
			}
		})
	}
}

// Step refuses what it cannot run, and leaves the cache as it was.
func TestStepErrors(t *testing.T) {
	l := loadDecodeModel(t, "llama-gqa-f32")
	dec := l.Model.(model.Decoder)
	other := loadDecodeModel(t, "qwen2-gqa-f32").Model.(model.Decoder)
	c := dec.NewCache()
	if _, err := dec.Step(c, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		c   model.Cache
		ids []int
	}{
		"empty":          {c, nil},
		"out of range":   {c, []int{1, l.Model.VocabSize()}},
		"negative":       {c, []int{-1}},
		"foreign cache":  {other.NewCache(), []int{1}},
		"classifier use": {c, []int{1}},
	} {
		t.Run(name, func(t *testing.T) {
			m := dec
			if name == "classifier use" {
				cl := l.Model.(*llama.Model).AsClassifier([]string{"a", "b"}, 1)
				m, tc.c = cl, cl.NewCache()
			}
			if _, err := m.Step(tc.c, tc.ids); err == nil {
				t.Fatal("no error")
			}
			if c.Len() != 2 {
				t.Fatalf("cache holds %d tokens after an error, want 2", c.Len())
			}
		})
	}
}

// With rotary frequencies that depend on the sequence's length, Step
// equals the forward pass over the sequence so far (not row i of a longer
// one). LongRoPE (Phi-3, 8 original positions) switches to its long factors
// at the 9th token and the cache is recomputed then, so cached and uncached
// greedy decoding agree all along; dynamic NTK (8 positions) grows its base
// past them while the cached keys keep theirs, as in transformers'
// generation, so the two agree up to max_position_embeddings only.
func TestStepLengthDependentRope(t *testing.T) {
	for _, tc := range []struct {
		name  string
		exact int // tokens up to which Step equals the forward pass
	}{
		{"rope-phi3-longrope-partial-f32", 24},
		{"rope-llama-dynamic-f32", 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := loadDecodeModel(t, tc.name)
			dec := l.Model.(model.Decoder)
			r := rand.New(rand.NewPCG(17, 3))
			ids := make([]int, 24)
			for i := range ids {
				ids[i] = 1 + r.IntN(l.Model.VocabSize()-1)
			}
			v := l.Model.VocabSize()
			last := func(n int) []float32 {
				y, err := l.Model.Logits(model.Batch{IDs: [][]int{ids[:n]}})
				if err != nil {
					t.Fatal(err)
				}
				return ops.Data(y)[(n-1)*v:]
			}
			c := dec.NewCache()
			for n := 1; n <= tc.exact; n++ {
				y, err := dec.Step(c, ids[n-1:n])
				if err != nil {
					t.Fatal(err)
				}
				closeRows(t, fmt.Sprintf("token %d", n), ops.Data(y), last(n))
			}
			opts := generate.Options{MaxNew: tc.exact - 4, EOS: -1}
			cached, err := generate.Generate(context.Background(), l.Model, ids[:4], opts)
			if err != nil {
				t.Fatal(err)
			}
			opts.NoCache = true
			plain, err := generate.Generate(context.Background(), l.Model, ids[:4], opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cached, plain) {
				t.Fatalf("greedy ids with the cache %v, without %v", cached, plain)
			}
		})
	}
}
