// Package generate decodes text from a causal language model: greedy by
// default, or sampled with a temperature and a seed.
package generate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

// Options control decoding.
type Options struct {
	// MaxNew is the number of tokens to generate.
	MaxNew int
	// Temperature 0 means greedy (argmax); above 0 the logits are divided by
	// it and a token is sampled.
	Temperature float64
	// Seed makes sampling reproducible.
	Seed uint64
	// EOS stops generation when produced (-1: never stop early).
	EOS int
	// MaxContext bounds the sequence length (0: unbounded).
	MaxContext int
}

// Generate extends prompt by up to opts.MaxNew tokens and returns the new
// tokens. It stops early at EOS or when ctx is cancelled (returning the
// tokens so far and ctx's error).
func Generate(ctx context.Context, m model.Model, prompt []int, opts Options) ([]int, error) {
	if m.Task() != model.CausalLM {
		return nil, fmt.Errorf("generate: the model is a %s model, not a causal LM", m.Task())
	}
	if len(prompt) == 0 {
		return nil, fmt.Errorf("generate: empty prompt")
	}
	if opts.Temperature < 0 || math.IsNaN(opts.Temperature) {
		return nil, fmt.Errorf("generate: temperature %v must be >= 0", opts.Temperature)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	seq := append([]int(nil), prompt...)
	var out []int
	for len(out) < opts.MaxNew {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if opts.MaxContext > 0 && len(seq) >= opts.MaxContext {
			break
		}
		logits, err := m.Logits(model.Batch{IDs: [][]int{seq}})
		if err != nil {
			return out, err
		}
		v := ops.Cols(logits)
		last := ops.Data(logits)[(len(seq)-1)*v : len(seq)*v]
		next := pick(last, opts.Temperature, rng)
		out = append(out, next)
		seq = append(seq, next)
		if next == opts.EOS {
			break
		}
	}
	return out, nil
}

// pick chooses the next token from one row of logits.
func pick(logits []float32, temperature float64, rng *rand.Rand) int {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	if temperature == 0 {
		return best
	}
	probs := make([]float64, len(logits))
	var sum float64
	for i, v := range logits {
		p := math.Exp((float64(v) - float64(logits[best])) / temperature)
		probs[i] = p
		sum += p
	}
	r := rng.Float64() * sum
	for i, p := range probs {
		r -= p
		if r <= 0 {
			return i
		}
	}
	return best
}
