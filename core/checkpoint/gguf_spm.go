package checkpoint

import (
	"errors"
	"fmt"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
	"github.com/surgeon-ml/surgeon/formats/gguf"
)

// sentencePieceGGUF returns the tokenizer.ggml.* metadata of a
// tokenizer.json of the kind converted from a SentencePiece model (Llama
// 2, Mistral, TinyLlama: BPE with byte fallback, "▁" for spaces) as a
// "llama" vocabulary (gguf.SentencePieceMetadata), padded to the config's
// vocab_size. ok is false when the tokenizer is not of that kind, so the
// caller reports why it is not a byte-level BPE either; a tokenizer of
// that kind GGUF cannot reproduce is an error.
func sentencePieceGGUF(l *Loaded, h *tokenizer.HF) (kvs []gguf.KV, ok bool, err error) {
	p, err := h.SentencePieceBPE()
	if errors.Is(err, tokenizer.ErrNotSentencePieceBPE) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("writing GGUF: %s: %w", TokenizerJSONFile, err)
	}
	vocab, _ := cfgVocabSize(l)
	kvs, err = gguf.SentencePieceMetadata(p, vocab)
	if err != nil {
		return nil, true, fmt.Errorf("writing GGUF: %s: SentencePiece-style BPE: %w", TokenizerJSONFile, err)
	}
	return kvs, true, nil
}
