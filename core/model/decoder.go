package model

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"
)

// Cache is a causal LM's per-layer key/value state between Decoder.Step
// calls: what the tokens seen so far contribute to attention, so that a new
// token costs one row instead of the whole prefix. A Cache belongs to the
// model that made it and to one sequence.
type Cache interface {
	// Len returns the number of tokens the cache holds.
	Len() int
}

// Decoder is the optional capability of a causal LM to decode incrementally
// with a key/value cache; generation type-asserts for it and falls back to
// recomputing the prefix with Logits when a model lacks it. It is for
// inference only: nothing it computes takes part in a backward pass.
type Decoder interface {
	Model
	// NewCache returns an empty cache for one sequence.
	NewCache() Cache
	// Step runs the tokens ids, which follow the ones in c, appends their
	// keys and values to c and returns the next-token logits [1, vocab] of
	// the last of them. Its logits equal (to rounding) the last row of
	// Logits over the sequence so far, and so row c.Len()-1 of Logits over
	// the whole sequence unless the position embedding depends on the
	// sequence's length (longrope or dynamic rope scaling: the model's Step
	// says how). Ids out of range, an empty ids or a
	// cache of another model are errors, and leave c unchanged.
	Step(c Cache, ids []int) (mat.Tensor, error)
}

// CheckStep returns the error a Decoder's Step gives for ids before it
// touches its cache: no tokens, or a token outside [0, vocab).
func CheckStep(ids []int, vocab int) error {
	if len(ids) == 0 {
		return fmt.Errorf("step: no tokens")
	}
	for i, id := range ids {
		if id < 0 || id >= vocab {
			return fmt.Errorf("step: token %d: id %d outside the vocabulary [0,%d)", i, id, vocab)
		}
	}
	return nil
}
