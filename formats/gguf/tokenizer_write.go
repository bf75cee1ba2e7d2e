package gguf

import (
	"fmt"
	"strings"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

// BPEMetadata returns the tokenizer.ggml.* metadata of a byte-level BPE
// tokenizer, as llama.cpp's convert_hf_to_gguf.py writes it: model
// "gpt2", the pre-tokenizer's llama.cpp name (PreTokenizerName), the
// tokens (padded to vocabSize, the model's vocabulary when known, with
// "[PAD<id>]" tokens of type unused; more ids than vocabSize is an error),
// their types (added tokens that are special or look special, "<|...|>",
// as control tokens, other added tokens as user-defined), the merges,
// the special ids and whether BOS and EOS are added (the
// post-processor's template, which must add at most one token on each
// side).
func BPEMetadata(p tokenizer.ByteLevelBPE, vocabSize int) ([]KV, error) {
	pre, err := PreTokenizerName(p.Normalizer, p.PreTokenizer, p.IgnoreMerges)
	if err != nil {
		return nil, err
	}
	n := len(p.Tokens)
	for _, a := range p.Added {
		n = max(n, a.ID+1)
	}
	if vocabSize > 0 && n > vocabSize {
		return nil, fmt.Errorf("the tokenizer has %d ids and the model's vocabulary only %d rows", n, vocabSize)
	}
	n = max(n, vocabSize)
	tokens := make([]string, n)
	types := make([]int32, n)
	for id, t := range p.Tokens {
		tokens[id], types[id] = t, TokenNormal
	}
	for _, a := range p.Added {
		tokens[a.ID] = a.Content
		types[a.ID] = TokenUserDefined
		if a.Special || looksSpecial(a.Content) {
			types[a.ID] = TokenControl
		}
	}
	for id, t := range tokens {
		if t == "" {
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), TokenUnused
		}
	}
	merges := make([]string, len(p.Merges))
	for i, m := range p.Merges {
		if m[0] == "" || strings.Contains(m[0], " ") {
			return nil, fmt.Errorf("merge %d: %q + %q: GGUF merges are two tokens separated by a space, and the first has one", i, m[0], m[1])
		}
		merges[i] = m[0] + " " + m[1]
	}
	kvs := []KV{
		{Key: "tokenizer.ggml.model", Value: "gpt2"},
		{Key: "tokenizer.ggml.pre", Value: pre},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
		{Key: "tokenizer.ggml.token_type", Value: types},
		{Key: "tokenizer.ggml.merges", Value: merges},
	}
	return specialKVs(kvs, p.Prefix, p.Suffix, len(tokens), p.BOS, p.EOS, "tokenizer.ggml.padding_token_id", p.Pad)
}

// specialKVs appends to kvs the special-token metadata of a vocabulary
// of n tokens: the bos and eos ids (the post-processor's added token, a
// prefix or suffix of at most one, when it has one), the other id under
// otherKey when it is not negative, and add_bos_token/add_eos_token.
func specialKVs(kvs []KV, prefix, suffix []int, n, bos, eos int, otherKey string, other int) ([]KV, error) {
	if len(prefix) > 1 || len(suffix) > 1 {
		return nil, fmt.Errorf("the post-processor adds %v before and %v after a text; GGUF can say only whether BOS and EOS are added", prefix, suffix)
	}
	if len(prefix) == 1 {
		bos = prefix[0]
	}
	if len(suffix) == 1 {
		eos = suffix[0]
	}
	for _, id := range []struct {
		key string
		id  int
	}{{"tokenizer.ggml.bos_token_id", bos}, {"tokenizer.ggml.eos_token_id", eos}, {otherKey, other}} {
		if id.id >= n {
			return nil, fmt.Errorf("%s %d is outside the vocabulary of %d tokens", id.key, id.id, n)
		}
		if id.id >= 0 {
			kvs = append(kvs, KV{Key: id.key, Value: uint32(id.id)})
		}
	}
	return append(kvs,
		KV{Key: "tokenizer.ggml.add_bos_token", Value: len(prefix) == 1},
		KV{Key: "tokenizer.ggml.add_eos_token", Value: len(suffix) == 1}), nil
}

// looksSpecial is convert_hf_to_gguf.py's test for added tokens that
// ought to be control tokens although not marked special.
func looksSpecial(t string) bool {
	switch t {
	case "<pad>", "<mask>", "<2mass>", "[@BOS@]":
		return true
	}
	return strings.HasPrefix(t, "<|") && strings.HasSuffix(t, "|>") ||
		strings.HasPrefix(t, "<｜") && strings.HasSuffix(t, "｜>") ||
		strings.HasPrefix(t, "<unused") && strings.HasSuffix(t, ">")
}
