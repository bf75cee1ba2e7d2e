package gguf

import (
	"errors"
	"fmt"
	"strings"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

// ErrNoVocab reports a GGUF file whose tokenizer.ggml.model says it
// carries no vocabulary ("none" or "no_vocab"): a model converted without
// its tokenizer.
var ErrNoVocab = errors.New("the file carries no vocabulary")

// Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type).
const (
	TokenNormal      = 1
	TokenUnknown     = 2
	TokenControl     = 3
	TokenUserDefined = 4
	TokenUnused      = 5
	TokenByte        = 6
)

// tokenizerModels are the tokenizer.ggml.model values Tokenizer reads.
var tokenizerModels = []string{`"llama" (SentencePiece BPE)`, `"gpt2" (byte-level BPE)`, `"bert" (WordPiece)`}

// Tokenizer builds the tokenizer a GGUF file's tokenizer.ggml.* metadata
// describes, by tokenizer.ggml.model:
//
//   - "llama": SentencePiece BPE (*tokenizer.SPM);
//   - "gpt2": byte-level BPE (*tokenizer.HF), split as llama.cpp's
//     tokenizer.ggml.pre names (PreTokenizerNames), with control and
//     user-defined tokens as added tokens;
//   - "bert": WordPiece (*tokenizer.WordPiece), lowercasing as llama.cpp
//     does.
//
// "none" and "no_vocab" fail with ErrNoVocab.
func Tokenizer(f *File) (tokenizer.Tokenizer, error) {
	model, err := f.String("tokenizer.ggml.model")
	if err != nil {
		return nil, err
	}
	switch model {
	case "llama":
		t, err := spmTokenizer(f)
		if err != nil {
			return nil, err
		}
		return t, nil
	case "gpt2":
		t, err := BPETokenizer(f)
		if err != nil {
			return nil, err
		}
		return t, nil
	case "bert":
		t, err := wordPieceTokenizer(f)
		if err != nil {
			return nil, err
		}
		return t, nil
	case "none", "no_vocab":
		return nil, fmt.Errorf("%s: tokenizer.ggml.model is %q: %w", f.name, model, ErrNoVocab)
	}
	return nil, fmt.Errorf("%s: tokenizer.ggml.model is %q; supported: %s", f.name, model, strings.Join(tokenizerModels, ", "))
}

// specialID reads a special token id key: def when the key is missing (and
// def is inside the vocabulary of n tokens), -1 for none.
func (f *File) specialID(key string, def, n int) (int, error) {
	if !f.Has(key) {
		if def < n {
			return def, nil
		}
		return -1, nil
	}
	v, ok, err := f.tokenID(key)
	if err != nil {
		return -1, err
	}
	if !ok {
		return -1, nil // explicitly none
	}
	if v >= n {
		return -1, fmt.Errorf("%s: %s is %d, outside the vocabulary of %d tokens", f.name, key, v, n)
	}
	return v, nil
}

// optBool reads a bool key, def when it is missing.
func (f *File) optBool(key string, def bool) (bool, error) {
	if !f.Has(key) {
		return def, nil
	}
	return f.Bool(key)
}

// tokenTypes reads tokenizer.ggml.token_type, checking it covers the n
// tokens; nil when missing.
func (f *File) tokenTypes(n int) ([]int32, error) {
	if !f.Has("tokenizer.ggml.token_type") {
		return nil, nil
	}
	types, err := f.Int32s("tokenizer.ggml.token_type")
	if err != nil {
		return nil, err
	}
	if len(types) < n {
		return nil, fmt.Errorf("%s: tokenizer.ggml.token_type has %d entries for %d tokens", f.name, len(types), n)
	}
	return types, nil
}

// spmTokenizer builds the SentencePiece BPE tokenizer of a "llama" model.
// Missing scores count as zero, missing token types as normal, and missing
// special ids take llama.cpp's defaults (bos 1, eos 2, unknown 0) when
// those ids exist; -1 or 0xFFFFFFFF mean "no such token".
func spmTokenizer(f *File) (*tokenizer.SPM, error) {
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
	n := len(tokens)
	bos, err := f.specialID("tokenizer.ggml.bos_token_id", 1, n)
	if err != nil {
		return nil, err
	}
	eos, err := f.specialID("tokenizer.ggml.eos_token_id", 2, n)
	if err != nil {
		return nil, err
	}
	unk, err := f.specialID("tokenizer.ggml.unknown_token_id", 0, n)
	if err != nil {
		return nil, err
	}
	var opts []tokenizer.Option
	if f.Has("tokenizer.ggml.add_space_prefix") {
		on, err := f.Bool("tokenizer.ggml.add_space_prefix")
		if err != nil {
			return nil, err
		}
		opts = append(opts, tokenizer.WithDummyPrefix(on))
	}
	spm, err := tokenizer.NewSPM(tokens, scores, types, bos, eos, unk, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	return spm, nil
}

// BPETokenizer builds the byte-level BPE tokenizer of a "gpt2" model:
// tokenizer.ggml.tokens, merges, token_type and pre (llama.cpp's name for
// how the text is split; an unknown name is an error listing the known
// ones), with control, unknown and user-defined tokens as added tokens
// matched in the text first (the first two special), and the special ids
// and add_bos_token / add_eos_token as the post-processor. Missing
// special ids are none; add_bos_token defaults as in llama.cpp (on for the
// Llama 3 group), add_eos_token to off.
func BPETokenizer(f *File) (*tokenizer.HF, error) {
	tokens, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil {
		return nil, err
	}
	n := len(tokens)
	preName := ""
	if f.Has("tokenizer.ggml.pre") {
		if preName, err = f.String("tokenizer.ggml.pre"); err != nil {
			return nil, err
		}
	}
	if preName == "" {
		preName = "default" // llama.cpp's fallback
	}
	pre, ok := findPre(preName)
	if !ok {
		return nil, fmt.Errorf("%s: tokenizer.ggml.pre %q: %w to surgeon (it reads %s)", f.name, preName, ErrUnknownPreTokenizer, strings.Join(PreTokenizerNames(), ", "))
	}
	var merges [][2]string
	if f.Has("tokenizer.ggml.merges") {
		raw, err := f.Strings("tokenizer.ggml.merges")
		if err != nil {
			return nil, err
		}
		merges = make([][2]string, len(raw))
		for i, m := range raw {
			// llama.cpp splits at the first space after the first byte.
			k := -1
			if len(m) > 1 {
				k = strings.IndexByte(m[1:], ' ')
			}
			if k < 0 {
				return nil, fmt.Errorf("%s: tokenizer.ggml.merges[%d] %q is not two tokens separated by a space", f.name, i, m)
			}
			merges[i] = [2]string{m[:k+1], m[k+2:]}
		}
	} else {
		return nil, fmt.Errorf("%s: tokenizer.ggml.merges is missing (a \"gpt2\" tokenizer needs its merges)", f.name)
	}
	types, err := f.tokenTypes(n)
	if err != nil {
		return nil, err
	}
	p := tokenizer.ByteLevelBPE{Tokens: make([]string, n), Merges: merges, IgnoreMerges: pre.ignoreMerges}
	for id, t := range tokens {
		if t == "" {
			return nil, fmt.Errorf("%s: tokenizer.ggml.tokens[%d] is empty", f.name, id)
		}
		p.Tokens[id] = t
		if types == nil {
			continue
		}
		switch types[id] {
		case TokenControl, TokenUnknown:
			p.Added = append(p.Added, tokenizer.AddedToken{ID: id, Content: t, Special: true})
		case TokenUserDefined:
			p.Added = append(p.Added, tokenizer.AddedToken{ID: id, Content: t})
		}
	}
	p.PreTokenizer, p.Normalizer = pre.preJSON()
	if p.BOS, err = f.specialID("tokenizer.ggml.bos_token_id", n, n); err != nil {
		return nil, err
	}
	if p.EOS, err = f.specialID("tokenizer.ggml.eos_token_id", n, n); err != nil {
		return nil, err
	}
	if p.Pad, err = f.specialID("tokenizer.ggml.padding_token_id", n, n); err != nil {
		return nil, err
	}
	addBOS, err := f.optBool("tokenizer.ggml.add_bos_token", pre.addBOS)
	if err != nil {
		return nil, err
	}
	addEOS, err := f.optBool("tokenizer.ggml.add_eos_token", false)
	if err != nil {
		return nil, err
	}
	if addBOS && p.BOS >= 0 {
		p.Prefix = []int{p.BOS}
	}
	if addEOS && p.EOS >= 0 {
		p.Suffix = []int{p.EOS}
	}
	h, err := tokenizer.NewByteLevelBPE(p)
	if err != nil {
		return nil, fmt.Errorf("%s: tokenizer: %w", f.name, err)
	}
	return h, nil
}

// wordPieceTokenizer builds the WordPiece tokenizer of a "bert" model.
// llama.cpp's converter writes a word-initial token with a leading "▁"
// and a continuation without the "##" of Hugging Face; bracketed tokens
// ([CLS]) stay as they are. Text is lowercased, as llama.cpp does.
func wordPieceTokenizer(f *File) (*tokenizer.WordPiece, error) {
	tokens, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil {
		return nil, err
	}
	vocab := make([]string, len(tokens))
	for i, t := range tokens {
		switch {
		case strings.HasPrefix(t, "▁"):
			vocab[i] = strings.TrimPrefix(t, "▁")
		case strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]"):
			vocab[i] = t
		default:
			vocab[i] = "##" + t
		}
	}
	wp, err := tokenizer.NewWordPiece(vocab, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	return wp, nil
}
