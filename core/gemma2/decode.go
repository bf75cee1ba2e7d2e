package gemma2

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

var _ model.Decoder = (*Model)(nil)

// Cache is a Gemma 2 model's key/value cache: one ops.KVCache per decoder
// layer. Layers with a sliding window keep every key too (the window is
// applied when attending), so rolling back stays possible.
type Cache struct {
	layers []*ops.KVCache
	// owner is the model the cache belongs to.
	owner *Model
}

// Len returns the number of cached tokens.
func (c *Cache) Len() int { return c.layers[0].Len() }

// NewCache returns an empty key/value cache for one sequence.
func (m *Model) NewCache() model.Cache {
	c := &Cache{owner: m}
	for range m.Base.Layers {
		c.layers = append(c.layers, ops.NewKVCache(m.Config.NumKeyValueHeads, m.Config.HeadDim))
	}
	return c
}

// Step runs ids after the tokens in the cache mc and returns the
// next-token logits [1, vocab] of the last one, soft-capped as Logits's
// (see model.Decoder). Each layer attends with its own window, score scale
// and soft-cap, as in Logits.
func (m *Model) Step(mc model.Cache, ids []int) (mat.Tensor, error) {
	c, ok := mc.(*Cache)
	if !ok || c.owner != m {
		return nil, fmt.Errorf("gemma2: step: cache %T does not belong to this model", mc)
	}
	if m.Score != nil {
		return nil, fmt.Errorf("gemma2: step: a sequence classifier has no next-token logits")
	}
	if err := model.CheckStep(ids, m.Config.VocabSize); err != nil {
		return nil, fmt.Errorf("gemma2: %w", err)
	}
	p0 := c.Len()
	pos := make([]int, len(ids))
	for i := range pos {
		pos[i] = p0 + i
	}
	heads := m.Config.NumAttentionHeads
	var logits mat.Tensor
	err := ops.WithoutGrad(func() error {
		h := m.hidden(ids, pos, p0+len(ids), func(i int, q, k, v mat.Tensor) mat.Tensor {
			return ops.CachedAttentionWith(q, k, v, c.layers[i], heads, m.attnOptions(i))
		})
		if len(ids) > 1 {
			h = ops.SelectRows(h, []int{len(ids) - 1})
		}
		logits = m.lmLogits(h)
		return nil
	})
	return logits, err
}
