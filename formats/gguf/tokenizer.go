package gguf

import (
	"fmt"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

// Tokenizer builds the SentencePiece BPE tokenizer described by a GGUF file's
// tokenizer.ggml.* metadata. The model must be "llama" (llama.cpp's name for
// SentencePiece BPE). Missing scores count as zero, missing token types as
// normal, and missing special ids take llama.cpp's defaults (bos 1, eos 2,
// unknown 0) when those ids exist; -1 or 0xFFFFFFFF mean "no such token".
func Tokenizer(f *File) (*tokenizer.SPM, error) {
	model, err := f.String("tokenizer.ggml.model")
	if err != nil {
		return nil, err
	}
	if model != "llama" {
		return nil, fmt.Errorf("%s: tokenizer.ggml.model is %q; only \"llama\" (SentencePiece BPE) is supported", f.name, model)
	}
	tokens, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil {
		return nil, err
	}
	var scores []float32
	if f.Has("tokenizer.ggml.scores") {
		if scores, err = f.Float32s("tokenizer.ggml.scores"); err != nil {
			return nil, err
		}
	}
	var types []int32
	if f.Has("tokenizer.ggml.token_type") {
		if types, err = f.Int32s("tokenizer.ggml.token_type"); err != nil {
			return nil, err
		}
	}
	ids := []struct {
		key string
		def int
		dst *int
	}{
		{"tokenizer.ggml.bos_token_id", 1, new(int)},
		{"tokenizer.ggml.eos_token_id", 2, new(int)},
		{"tokenizer.ggml.unknown_token_id", 0, new(int)},
	}
	for _, id := range ids {
		*id.dst = -1
		if !f.Has(id.key) {
			if id.def < len(tokens) {
				*id.dst = id.def
			}
			continue
		}
		v, ok, err := f.tokenID(id.key)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // explicitly none
		}
		if v >= len(tokens) {
			return nil, fmt.Errorf("%s: %s is %d, outside the vocabulary of %d tokens", f.name, id.key, v, len(tokens))
		}
		*id.dst = v
	}
	var opts []tokenizer.Option
	if f.Has("tokenizer.ggml.add_space_prefix") {
		on, err := f.Bool("tokenizer.ggml.add_space_prefix")
		if err != nil {
			return nil, err
		}
		opts = append(opts, tokenizer.WithDummyPrefix(on))
	}
	spm, err := tokenizer.NewSPM(tokens, scores, types, *ids[0].dst, *ids[1].dst, *ids[2].dst, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	return spm, nil
}
