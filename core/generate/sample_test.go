package generate

import (
	"context"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/model"
)

// counts draws n tokens from logits with opts and counts them.
func counts(opts Options, logits []float32, history []int, n int) map[int]int {
	s := NewSampler(opts)
	c := map[int]int{}
	for range n {
		c[s.Pick(logits, history)]++
	}
	return c
}

// Each option changes which tokens can be drawn from a small distribution
// as documented; the same seed draws the same tokens.
func TestSamplerOptions(t *testing.T) {
	// probabilities about 0.47, 0.26, 0.17, 0.06, 0.03, 0.01
	logits := []float32{2, 1.4, 1, 0, -0.7, -1.8}
	for _, tc := range []struct {
		name    string
		opts    Options
		history []int
		allowed []int // the tokens that may be drawn
		all     bool  // and every one of them is
	}{
		{"greedy", Options{}, nil, []int{0}, true},
		{"temperature", Options{Temperature: 1}, nil, []int{0, 1, 2, 3, 4, 5}, true},
		{"top-k 2", Options{Temperature: 1, TopK: 2}, nil, []int{0, 1}, true},
		{"top-k 1 is greedy", Options{Temperature: 5, TopK: 1}, nil, []int{0}, true},
		{"top-p 0.7", Options{Temperature: 1, TopP: 0.7}, nil, []int{0, 1}, true},
		{"top-p 0.75", Options{Temperature: 1, TopP: 0.75}, nil, []int{0, 1, 2}, true},
		{"min-p 0.3", Options{Temperature: 1, MinP: 0.3}, nil, []int{0, 1, 2}, true},
		{"min-p 1 is greedy", Options{Temperature: 1, MinP: 1}, nil, []int{0}, true},
		{"top-k then min-p", Options{Temperature: 1, TopK: 3, MinP: 0.5}, nil, []int{0, 1}, true},
		{"repeat penalty greedy", Options{RepeatPenalty: 2}, []int{0, 5}, []int{1}, true},
		{"repeat penalty outside the look-back", Options{RepeatPenalty: 2, RepeatLastN: 1}, []int{0, 5}, []int{0}, true},
		{"repeat penalty whole sequence", Options{RepeatPenalty: 2, RepeatLastN: -1}, []int{0, 5, 5, 5}, []int{1}, true},
		{"repeat penalty negative logit", Options{Temperature: 1, TopK: 4, RepeatPenalty: 100}, []int{3, 4}, []int{0, 1, 2, 3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := counts(tc.opts, logits, tc.history, 2000)
			ok := map[int]bool{}
			for _, id := range tc.allowed {
				ok[id] = true
				if tc.all && got[id] == 0 {
					t.Errorf("token %d never drawn: %v", id, got)
				}
			}
			for id := range got {
				if !ok[id] {
					t.Errorf("token %d drawn, allowed %v: %v", id, tc.allowed, got)
				}
			}
			again := counts(tc.opts, logits, tc.history, 2000)
			for id, n := range got {
				if again[id] != n {
					t.Fatalf("same seed, different draws: %v then %v", got, again)
				}
			}
		})
	}
}

// Temperature sharpens or flattens the distribution: at 0.2 the top token
// dominates, at 5 the least likely is drawn often. Seeds differ.
func TestSamplerTemperatureAndSeed(t *testing.T) {
	logits := []float32{2, 1.4, 1, 0, -0.7, -1.8}
	cold := counts(Options{Temperature: 0.2}, logits, nil, 2000)
	hot := counts(Options{Temperature: 5}, logits, nil, 2000)
	if cold[0] < 1800 || hot[5] < 150 {
		t.Fatalf("temperature 0.2: %v; temperature 5: %v", cold, hot)
	}
	a := NewSampler(Options{Temperature: 1, Seed: 1})
	b := NewSampler(Options{Temperature: 1, Seed: 2})
	same := 0
	for range 100 {
		if a.Pick(logits, nil) == b.Pick(logits, nil) {
			same++
		}
	}
	if same == 100 {
		t.Fatal("seeds 1 and 2 drew the same 100 tokens")
	}
}

// Bad options are refused naming the option.
func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]Options{
		"temperature":    {Temperature: -1},
		"top-k":          {TopK: -1},
		"top-p":          {TopP: 1.5},
		"min-p":          {MinP: -0.1},
		"repeat penalty": {RepeatPenalty: -1},
		"repeat-last-n":  {RepeatLastN: -2},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Generate(context.Background(), fixed{}, []int{1}, o)
			if err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// fixed is a causal LM that option checks stop before it runs.
type fixed struct{ model.Model }

func (fixed) Task() model.Task                       { return model.CausalLM }
func (fixed) Logits(model.Batch) (mat.Tensor, error) { return nil, nil }
