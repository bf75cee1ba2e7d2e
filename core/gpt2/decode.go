package gpt2

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

var _ model.Decoder = (*Model)(nil)

// Cache is a GPT-2 model's key/value cache: one ops.KVCache per block.
type Cache struct {
	layers []*ops.KVCache
	// owner is the model the cache belongs to.
	owner *Model
}

// Len returns the number of cached tokens.
func (c *Cache) Len() int { return c.layers[0].Len() }

// Truncate forgets the cached tokens from position n on (0 <= n <= Len).
func (c *Cache) Truncate(n int) {
	for _, l := range c.layers {
		l.Truncate(n)
	}
}

// NewCache returns an empty key/value cache for one sequence.
func (m *Model) NewCache() model.Cache {
	c := &Cache{owner: m}
	for range m.Transformer.H {
		c.layers = append(c.layers, ops.NewKVCache(m.Config.NHead, m.Config.NEmbd/m.Config.NHead))
	}
	return c
}

// Step runs ids after the tokens in the cache mc and returns the
// next-token logits [1, vocab] of the last one (see model.Decoder).
func (m *Model) Step(mc model.Cache, ids []int) (mat.Tensor, error) {
	c, ok := mc.(*Cache)
	if !ok || c.owner != m {
		return nil, fmt.Errorf("gpt2: step: cache %T does not belong to this model", mc)
	}
	if m.Score != nil {
		return nil, fmt.Errorf("gpt2: step: a sequence classifier has no next-token logits")
	}
	if err := model.CheckStep(ids, m.Config.VocabSize); err != nil {
		return nil, fmt.Errorf("gpt2: %w", err)
	}
	p0 := c.Len()
	if p0+len(ids) > m.Config.NPositions {
		return nil, fmt.Errorf("gpt2: step: %d tokens exceed n_positions = %d", p0+len(ids), m.Config.NPositions)
	}
	pos := make([]int, len(ids))
	for i := range pos {
		pos[i] = p0 + i
	}
	var logits mat.Tensor
	err := ops.WithoutGrad(func() error {
		h := m.hidden(ids, pos, func(i int, q, k, v mat.Tensor) mat.Tensor {
			return ops.CachedAttention(q, k, v, c.layers[i], m.Config.NHead, 0)
		})
		if len(ids) > 1 {
			h = ops.SelectRows(h, []int{len(ids) - 1})
		}
		if m.LMHead != nil {
			logits = m.LMHead.Forward(h)
		} else {
			logits = m.Transformer.WTE.Project(h)
		}
		return nil
	})
	return logits, err
}
