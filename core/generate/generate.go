// Package generate decodes text from a causal language model: greedy by
// default, or sampled with a temperature, top-k, top-p, min-p and a repeat
// penalty, reproducibly for a seed. Models that implement model.Decoder
// decode with a key/value cache, one row per new token; others recompute
// the prefix for every token.
package generate

import (
	"context"
	"fmt"
	"math"
	"time"

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
	// TopK, when positive, samples among the TopK most likely tokens only.
	TopK int
	// TopP, in (0, 1), samples among the smallest set of most likely tokens
	// whose probabilities add up to at least TopP (nucleus sampling); 0 or
	// 1 disables it.
	TopP float64
	// MinP, in (0, 1], drops the tokens less likely than MinP times the most
	// likely one; 0 disables it.
	MinP float64
	// RepeatPenalty, above 1, makes the tokens among the last RepeatLastN
	// of the sequence less likely, as llama.cpp does: a positive logit is
	// divided by it, a negative one multiplied. 0 or 1 disables it. It
	// applies to greedy decoding too.
	RepeatPenalty float64
	// RepeatLastN is how many of the latest tokens RepeatPenalty looks at
	// (0: 64, llama.cpp's default; -1: the whole sequence).
	RepeatLastN int
	// Seed makes sampling reproducible.
	Seed uint64
	// EOS stops generation when produced (-1: never stop early).
	EOS int
	// MaxContext bounds the sequence length (0: unbounded).
	MaxContext int
	// NoCache recomputes the whole prefix for every token even when the
	// model implements model.Decoder (for comparisons).
	NoCache bool
	// Stats, when set, receives the token counts and times of the run.
	Stats *Stats
}

// Stats are the counts and wall-clock times of a generation, split as
// llama.cpp reports them: evaluating the prompt, then decoding one token
// at a time.
type Stats struct {
	// Cached reports whether the key/value cache was used.
	Cached bool
	// PromptTokens were evaluated in PromptTime (with the cache, in one
	// step that also yields the first new token's logits).
	PromptTokens int
	PromptTime   time.Duration
	// DecodeTokens were evaluated one at a time in DecodeTime (the tokens
	// fed back after the first one).
	DecodeTokens int
	DecodeTime   time.Duration
}

// validate checks the options' ranges.
func (o Options) validate() error {
	switch {
	case o.Temperature < 0 || math.IsNaN(o.Temperature):
		return fmt.Errorf("generate: temperature %v must be >= 0", o.Temperature)
	case o.TopK < 0:
		return fmt.Errorf("generate: top-k %d must be >= 0", o.TopK)
	case !(o.TopP >= 0 && o.TopP <= 1):
		return fmt.Errorf("generate: top-p %v must be in [0, 1]", o.TopP)
	case !(o.MinP >= 0 && o.MinP <= 1):
		return fmt.Errorf("generate: min-p %v must be in [0, 1]", o.MinP)
	case o.RepeatPenalty < 0 || math.IsNaN(o.RepeatPenalty) || math.IsInf(o.RepeatPenalty, 0):
		return fmt.Errorf("generate: repeat penalty %v must be >= 0", o.RepeatPenalty)
	case o.RepeatLastN < -1:
		return fmt.Errorf("generate: repeat-last-n %d must be >= -1", o.RepeatLastN)
	}
	return nil
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
	if err := opts.validate(); err != nil {
		return nil, err
	}
	st := opts.Stats
	if st == nil {
		st = new(Stats)
	}
	*st = Stats{}
	s := NewSampler(opts)
	seq := append([]int(nil), prompt...)
	dec, cached := m.(model.Decoder)
	cached = cached && !opts.NoCache
	st.Cached = cached
	var cache model.Cache
	if cached {
		cache = dec.NewCache()
	}
	var out []int
	fed := 0 // tokens of seq the model has seen (with the cache)
	for len(out) < opts.MaxNew {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if opts.MaxContext > 0 && len(seq) >= opts.MaxContext {
			break
		}
		start := time.Now()
		var last []float32
		if cached {
			logits, err := dec.Step(cache, seq[fed:])
			if err != nil {
				return out, err
			}
			last = ops.Data(logits)
		} else {
			err := ops.WithoutGrad(func() error {
				l, err := m.Logits(model.Batch{IDs: [][]int{seq}})
				if err == nil {
					v := ops.Cols(l)
					last = ops.Data(l)[(len(seq)-1)*v : len(seq)*v]
				}
				return err
			})
			if err != nil {
				return out, err
			}
		}
		if len(out) == 0 {
			st.PromptTokens, st.PromptTime = len(seq), time.Since(start)
		} else {
			st.DecodeTokens++
			st.DecodeTime += time.Since(start)
		}
		fed = len(seq)
		next := s.Pick(last, seq)
		out = append(out, next)
		seq = append(seq, next)
		if next == opts.EOS {
			break
		}
	}
	return out, nil
}
