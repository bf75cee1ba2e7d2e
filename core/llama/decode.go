package llama

import (
	"fmt"
	"slices"

	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

var _ model.Decoder = (*Model)(nil)

// Cache is a Llama-family model's key/value cache: one ops.KVCache per
// decoder layer, and the token ids they hold.
type Cache struct {
	layers []*ops.KVCache
	// owner is the model the cache belongs to.
	owner *Model
	// ids are the cached tokens, kept to recompute the keys when a
	// longrope embedding switches factors.
	ids []int
	// long: the cached keys were rotated with longrope's long factors.
	long bool
}

// Len returns the number of cached tokens.
func (c *Cache) Len() int { return c.layers[0].Len() }

// Truncate forgets the cached tokens from position n on, rolling the
// sequence back to its first n tokens (0 <= n <= Len).
func (c *Cache) Truncate(n int) {
	for _, l := range c.layers {
		l.Truncate(n)
	}
	c.ids = c.ids[:n]
}

// NewCache returns an empty key/value cache for one sequence.
func (m *Model) NewCache() model.Cache {
	c := &Cache{owner: m}
	for range m.Base.Layers {
		c.layers = append(c.layers, ops.NewKVCache(m.Config.NumKeyValueHeads, m.Config.HeadDim))
	}
	return c
}

// Step runs ids after the tokens in the cache mc and returns the
// next-token logits [1, vocab] of the last one (see model.Decoder). The
// adapters attached to the model's layers apply as in Logits.
//
// The rotary frequencies are those of a forward pass over the whole
// sequence so far, as transformers' generation computes them. With
// longrope, whose factors depend on that length, the cached keys are
// recomputed from the cached ids when the sequence crosses
// original_max_position_embeddings (transformers' Phi-3 drops its cache
// there too), so Step always equals Logits over the sequence so far. With
// dynamic NTK scaling past max_position_embeddings, cached keys keep the
// frequencies they were rotated with, as in transformers' generation: Step
// then differs from one forward pass over the whole sequence.
func (m *Model) Step(mc model.Cache, ids []int) (mat.Tensor, error) {
	c, ok := mc.(*Cache)
	if !ok || c.owner != m {
		return nil, fmt.Errorf("llama: step: cache %T does not belong to this model", mc)
	}
	if m.Score != nil {
		return nil, fmt.Errorf("llama: step: a sequence classifier has no next-token logits")
	}
	if err := model.CheckStep(ids, m.Config.VocabSize); err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	cfg := m.Config
	rope, err := cfg.Rope()
	if err != nil {
		return nil, fmt.Errorf("llama: step: %w", err)
	}
	p0, run := c.Len(), ids
	total := p0 + len(ids)
	long := rope.LongFactors(total)
	if p0 > 0 && long != c.long {
		run = append(slices.Clone(c.ids), ids...)
		c.Truncate(0)
		p0 = 0
	}
	pos := make([]int, len(run))
	for i := range pos {
		pos[i] = p0 + i
	}
	var logits mat.Tensor
	err = ops.WithoutGrad(func() error {
		h := m.hidden(run, pos, total, func(i int, q, k, v mat.Tensor) mat.Tensor {
			return ops.CachedAttention(q, k, v, c.layers[i], cfg.NumAttentionHeads, cfg.SlidingWindow)
		})
		if len(run) > 1 {
			h = ops.SelectRows(h, []int{len(run) - 1})
		}
		if m.LMHead != nil {
			logits = m.LMHead.Forward(h)
		} else {
			logits = m.Base.EmbedTokens.Project(h)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.ids = append(c.ids, run...) // all ids when recomputed from empty
	c.long = long
	return logits, nil
}
