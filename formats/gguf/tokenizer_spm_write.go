package gguf

import (
	"fmt"
	"unicode/utf8"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

// SentencePieceMetadata returns the tokenizer.ggml.* metadata of a
// SentencePiece-style BPE tokenizer.json (Llama 2, Mistral, TinyLlama) as
// a "llama" vocabulary, the kind llama.cpp's convert_hf_to_gguf.py writes
// from a tokenizer.model: the tokens (padded to vocabSize, the model's
// vocabulary when known, with "[PAD<id>]" tokens of type unused; more
// ids than vocabSize is an error), their scores and types, the BOS, EOS
// and unknown ids, whether BOS and EOS are added (the post-processor's
// template, at most one token on each side) and whether a space is
// prepended (tokenizer.ggml.add_space_prefix).
//
// SentencePiece merges the adjacent pair whose concatenation is the
// vocabulary piece of highest score, where Hugging Face's BPE merges the
// pair of lowest merge rank. So a piece some merge makes scores
// -(the lowest rank of a merge making it). Scores of other pieces never
// decide a merge: normal pieces no merge makes (single characters) score
// -len(merges), below every merged piece as in a SentencePiece model, and
// byte, control, unknown, user-defined and padding tokens score 0, as
// SentencePiece gives them.
//
// Types: the model's unknown token is unknown, its byte tokens
// <0x00>..<0xFF> byte, special added tokens control, other added tokens
// user-defined, the rest normal.
//
// It fails, naming the merge or token, where SentencePiece's scores
// cannot reproduce the merges: a merge of byte, control or unknown
// tokens; a merge whose piece is missing from the vocabulary; the merges
// making one piece not consecutive in rank (the merges of another piece
// between them); a token SentencePiece could build from two adjacent
// tokens (or characters) that no merge joins; an added token whose
// content differs from the model's token of the same id; or two ids
// with the same token. One difference remains possible: of two
// overlapping merges making the same piece ("-" + "---" and "---" + "-"
// on "----"), SentencePiece takes the leftmost and Hugging Face the one
// of lower rank; tokenizer.json files converted from SentencePiece order
// such merges by token id, so they can differ on runs of repeated
// characters.
func SentencePieceMetadata(p tokenizer.SentencePieceBPE, vocabSize int) ([]KV, error) {
	n := len(p.Tokens)
	for _, a := range p.Added {
		n = max(n, a.ID+1)
	}
	if vocabSize > 0 && n > vocabSize {
		return nil, fmt.Errorf("the tokenizer has %d ids and the model's vocabulary only %d rows", n, vocabSize)
	}
	if len(p.Merges) > 1<<24 {
		return nil, fmt.Errorf("%d merges: a float32 score tells ranks apart only up to %d", len(p.Merges), 1<<24)
	}
	n = max(n, vocabSize)
	tokens := make([]string, n)
	types := make([]int32, n)
	for id, t := range p.Tokens {
		if t != "" {
			tokens[id], types[id] = t, TokenNormal
		}
	}
	for _, id := range p.Bytes {
		if id < 0 || id >= len(p.Tokens) || p.Tokens[id] == "" {
			return nil, fmt.Errorf("byte token id %d is not a token of the model", id)
		}
		types[id] = TokenByte
	}
	if p.Unk >= 0 {
		if p.Unk >= len(p.Tokens) || p.Tokens[p.Unk] == "" {
			return nil, fmt.Errorf("unknown token id %d is not a token of the model", p.Unk)
		}
		types[p.Unk] = TokenUnknown
	}
	for _, a := range p.Added {
		if t := tokens[a.ID]; t != "" && t != a.Content {
			return nil, fmt.Errorf("added token %q has id %d, which the model's vocabulary gives to %q", a.Content, a.ID, t)
		}
		tokens[a.ID] = a.Content
		switch {
		case a.ID == p.Unk:
		case a.Special:
			types[a.ID] = TokenControl
		default:
			types[a.ID] = TokenUserDefined
		}
	}
	ids := make(map[string]int, n)
	for id, t := range tokens {
		if t == "" {
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), TokenUnused
			continue
		}
		if prev, dup := ids[t]; dup {
			return nil, fmt.Errorf("token %q has ids %d and %d", t, prev, id)
		}
		ids[t] = id
	}

	// The lowest rank making each piece, and which pairs are merges.
	const none = -1
	rank := make([]int, n)
	for i := range rank {
		rank[i] = none
	}
	pairs := make(map[[2]int32]struct{}, len(p.Merges))
	last := none
	for r, m := range p.Merges {
		a, oka := ids[m[0]]
		b, okb := ids[m[1]]
		c, okc := ids[m[0]+m[1]]
		if !oka || !okb || !okc {
			return nil, fmt.Errorf("merge %d: %q + %q: a token not in the vocabulary", r, m[0], m[1])
		}
		for _, id := range []int{a, b, c} {
			if types[id] != TokenNormal && types[id] != TokenUserDefined {
				return nil, fmt.Errorf("merge %d: %q + %q: %q is a %s token, which SentencePiece never merges", r, m[0], m[1], tokens[id], typeName(types[id]))
			}
		}
		pairs[[2]int32{int32(a), int32(b)}] = struct{}{}
		if c != last && rank[c] != none {
			return nil, fmt.Errorf("merge %d: %q + %q makes %q, as merge %d does, with other merges between: one SentencePiece score per piece cannot order them", r, m[0], m[1], tokens[c], rank[c])
		}
		if rank[c] == none {
			rank[c] = r
		}
		last = c
	}

	// SentencePiece (and llama.cpp, whatever the token's type) joins two
	// adjacent symbols, tokens or single characters, whenever their
	// concatenation is a token: every such split must be a merge.
	symbol := func(s string) (int, bool) {
		if id, ok := ids[s]; ok {
			return id, true
		}
		return -1, utf8.RuneCountInString(s) == 1
	}
	for id, t := range tokens {
		if types[id] == TokenUnused {
			continue
		}
		_, w := utf8.DecodeRuneInString(t)
		for k := w; k < len(t); {
			l, okl := symbol(t[:k])
			r, okr := symbol(t[k:])
			if okl && okr {
				if _, ok := pairs[[2]int32{int32(l), int32(r)}]; !ok {
					return nil, fmt.Errorf("token %d %q: SentencePiece would join %q and %q into it, and no merge does", id, t, t[:k], t[k:])
				}
			}
			_, w := utf8.DecodeRuneInString(t[k:])
			k += w
		}
	}

	scores := make([]float32, n)
	for id := range scores {
		switch {
		case rank[id] != none:
			scores[id] = float32(-rank[id])
		case types[id] == TokenNormal:
			scores[id] = float32(-len(p.Merges))
		}
	}

	kvs := []KV{
		{Key: "tokenizer.ggml.model", Value: "llama"},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
		{Key: "tokenizer.ggml.scores", Value: scores},
		{Key: "tokenizer.ggml.token_type", Value: types},
	}
	kvs, err := specialKVs(kvs, p.Prefix, p.Suffix, n, p.BOS, p.EOS, "tokenizer.ggml.unknown_token_id", p.Unk)
	if err != nil {
		return nil, err
	}
	return append(kvs, KV{Key: "tokenizer.ggml.add_space_prefix", Value: p.AddSpacePrefix}), nil
}

// typeName names a token type for errors.
func typeName(t int32) string {
	switch t {
	case TokenNormal:
		return "normal"
	case TokenUnknown:
		return "unknown"
	case TokenControl:
		return "control"
	case TokenUserDefined:
		return "user-defined"
	case TokenUnused:
		return "unused"
	case TokenByte:
		return "byte"
	}
	return fmt.Sprintf("type-%d", t)
}
