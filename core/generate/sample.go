package generate

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Sampler picks next tokens from logits with the options of a generation,
// in llama.cpp's order: repeat penalty, then (when sampling) top-k, top-p,
// min-p over the untempered distribution, then temperature and a draw.
// Its draws are reproducible for a seed.
type Sampler struct {
	opts Options
	rng  *rand.Rand
	// scratch, reused across picks
	cand []candidate
	seen map[int]bool
}

// candidate is a token still in the running and its logit.
type candidate struct {
	id    int
	logit float64
}

// NewSampler returns a sampler for opts, seeded with opts.Seed.
func NewSampler(opts Options) *Sampler {
	return &Sampler{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 0x5eed)), seen: map[int]bool{}}
}

// Pick chooses the next token from one row of logits; history is the
// sequence so far (prompt included), read by the repeat penalty. logits
// is not modified.
func (s *Sampler) Pick(logits []float32, history []int) int {
	o := s.opts
	c := s.cand[:0]
	for i, v := range logits {
		c = append(c, candidate{i, float64(v)})
	}
	s.cand = c
	if o.RepeatPenalty > 0 && o.RepeatPenalty != 1 {
		n := o.RepeatLastN
		if n == 0 {
			n = 64
		}
		h := history
		if n > 0 && len(h) > n {
			h = h[len(h)-n:]
		}
		clear(s.seen)
		for _, id := range h {
			if id < 0 || id >= len(c) || s.seen[id] {
				continue
			}
			s.seen[id] = true
			if c[id].logit > 0 {
				c[id].logit /= o.RepeatPenalty
			} else {
				c[id].logit *= o.RepeatPenalty
			}
		}
	}
	best := 0
	for i := range c {
		if c[i].logit > c[best].logit {
			best = i
		}
	}
	if o.Temperature == 0 {
		return c[best].id
	}
	if (o.TopK > 0 && o.TopK < len(c)) || (o.TopP > 0 && o.TopP < 1) {
		// Most likely first, ties by id so the order is deterministic.
		slices.SortFunc(c, func(a, b candidate) int {
			switch {
			case a.logit > b.logit:
				return -1
			case a.logit < b.logit:
				return 1
			}
			return a.id - b.id
		})
		best = 0
		if o.TopK > 0 && o.TopK < len(c) {
			c = c[:o.TopK]
		}
		if o.TopP > 0 && o.TopP < 1 {
			probs := softmax(c, 1)
			cum, keep := 0.0, len(c)
			for i, p := range probs {
				cum += p
				if cum >= o.TopP {
					keep = i + 1
					break
				}
			}
			c = c[:keep]
		}
	}
	top := c[best].logit
	if o.MinP > 0 {
		// p_i >= MinP * p_max  <=>  logit_i >= logit_max + ln(MinP)
		floor := top + math.Log(o.MinP)
		kept := c[:0]
		for _, x := range c {
			if x.logit >= floor {
				kept = append(kept, x)
			}
		}
		c = kept
	}
	probs := softmax(c, o.Temperature)
	r := s.rng.Float64()
	for i, p := range probs {
		r -= p
		if r < 0 {
			return c[i].id
		}
	}
	return c[len(c)-1].id
}

// softmax returns the probabilities of the candidates' logits divided by
// temperature.
func softmax(c []candidate, temperature float64) []float64 {
	mx := math.Inf(-1)
	for _, x := range c {
		mx = max(mx, x.logit)
	}
	p := make([]float64, len(c))
	var sum float64
	for i, x := range c {
		p[i] = math.Exp((x.logit - mx) / temperature)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}
