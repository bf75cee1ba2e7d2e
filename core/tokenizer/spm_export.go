package tokenizer

import (
	"errors"
	"fmt"
	"sort"

	"golang.org/x/text/unicode/norm"
)

// ErrNotSentencePieceBPE reports a tokenizer that is not a BPE with byte
// fallback (the kind converted from a SentencePiece model), so it cannot
// be taken apart as SentencePieceBPE parts.
var ErrNotSentencePieceBPE = errors.New("not a SentencePiece-style BPE tokenizer")

// SentencePieceBPE is a tokenizer.json of the kind converted from a
// SentencePiece BPE model (Llama 2, Mistral, TinyLlama) as its parts: a
// BPE model whose tokens spell spaces "▁" and which falls back to the
// byte tokens <0x00>..<0xFF> for characters it lacks, behind a normalizer
// that turns spaces into "▁" (and may prepend one to each stretch of text
// between added tokens), with no pre-tokenizer. Such a pipeline encodes
// as SentencePiece's BPE over the whole normalized text, which is what
// GGUF's "llama" vocabulary describes; the merge ranks still have to be
// mapped onto piece scores (gguf.SentencePieceMetadata does, and checks
// it can).
type SentencePieceBPE struct {
	// Tokens are the model's tokens by id; "" marks an id the model lacks.
	Tokens []string
	// Merges are the BPE merges, highest priority (lowest rank) first.
	Merges [][2]string
	// Unk is the model's unknown token id, or -1.
	Unk int
	// Bytes are the ids of the byte tokens <0x00>..<0xFF>, by byte.
	Bytes [256]int
	// Added are the added tokens, matched in the text before anything
	// else. None strips whitespace or matches single words only, and the
	// non-special ones are matched in the raw text.
	Added []AddedToken
	// AddSpacePrefix reports whether the normalizer prepends "▁" to each
	// stretch of text (SentencePiece's add_dummy_prefix, GGUF's
	// tokenizer.ggml.add_space_prefix).
	AddSpacePrefix bool
	// Prefix and Suffix are the ids the post-processor puts around a single
	// sequence (Encode with addSpecial).
	Prefix, Suffix []int
	// BOS and EOS are the special ids (-1: none).
	BOS, EOS int
}

// SentencePieceBPE takes a SentencePiece-style BPE tokenizer apart (for
// a GGUF file's "llama" vocabulary, say). It fails with
// ErrNotSentencePieceBPE when the model is not a BPE with byte fallback
// and every byte token, and with a plain error naming the component when
// it is one but a part encodes otherwise than SentencePiece does: a
// pre-tokenizer, a normalizer other than spaces to "▁" (with or without a
// "▁" prepended), a continuing-subword prefix or end-of-word suffix,
// ignore_merges, a decoder other than SentencePiece's, or added tokens
// that strip whitespace, match single words only or are matched in the
// normalized text.
func (h *HF) SentencePieceBPE() (SentencePieceBPE, error) {
	m, ok := h.model.(*bpe)
	if !ok {
		return SentencePieceBPE{}, fmt.Errorf("%w: the model is a %s", ErrNotSentencePieceBPE, modelKind(h.model))
	}
	if !m.byteFallback {
		return SentencePieceBPE{}, fmt.Errorf("%w: the BPE model has no byte fallback", ErrNotSentencePieceBPE)
	}
	p := SentencePieceBPE{Unk: m.unk, BOS: h.bos, EOS: h.eos}
	for b, id := range m.byteIDs {
		if id < 0 {
			return SentencePieceBPE{}, fmt.Errorf("%w: the byte fallback has no token %s", ErrNotSentencePieceBPE, byteToken(byte(b)))
		}
		p.Bytes[b] = int(id)
	}
	const kind = "SentencePiece-style BPE"
	switch {
	case m.prefix != "":
		return SentencePieceBPE{}, fmt.Errorf("%s: model: continuing_subword_prefix %q has no SentencePiece equivalent", kind, m.prefix)
	case m.suffix != "":
		return SentencePieceBPE{}, fmt.Errorf("%s: model: end_of_word_suffix %q has no SentencePiece equivalent", kind, m.suffix)
	case m.ignoreMerges:
		return SentencePieceBPE{}, fmt.Errorf("%s: model: ignore_merges has no SentencePiece equivalent", kind)
	}
	if s, ok := h.pre.(seqPreTokenizer); h.pre != nil && !(ok && len(s) == 0) {
		typ, _ := componentType(h.preJSON, "pre_tokenizer", nil)
		return SentencePieceBPE{}, fmt.Errorf("%s: pre_tokenizer %s: SentencePiece encodes the normalized text whole, without splitting or prefixing it", kind, typ)
	}
	var err error
	if p.AddSpacePrefix, err = spaceNormalizer(h.norm); err != nil {
		return SentencePieceBPE{}, fmt.Errorf("%s: normalizer: %w", kind, err)
	}
	if err := spaceDecoder(h.dec); err != nil {
		return SentencePieceBPE{}, fmt.Errorf("%s: decoder: %w", kind, err)
	}
	for _, a := range h.added {
		switch {
		case a.LStrip || a.RStrip || a.SingleWord:
			return SentencePieceBPE{}, fmt.Errorf("%s: added token %q (id %d) strips whitespace or matches single words; GGUF's vocabulary cannot say so", kind, a.Content, a.ID)
		case a.Normalized && !a.Special:
			return SentencePieceBPE{}, fmt.Errorf("%s: added token %q (id %d) is matched in the normalized text; GGUF's tokenizers match added tokens in the raw text", kind, a.Content, a.ID)
		}
	}
	p.Added = h.AddedTokens()
	p.Prefix, p.Suffix = h.Template()
	p.Tokens = make([]string, len(m.tokens))
	for id, t := range m.tokens {
		if m.has[id] {
			p.Tokens[id] = t
		}
	}
	p.Merges = rankedMerges(m)
	return p, nil
}

// rankedMerges lists a BPE model's merges, lowest rank first.
func rankedMerges(m *bpe) [][2]string {
	type ranked struct{ rank, a, b int32 }
	rs := make([]ranked, 0, len(m.merges))
	for k, mv := range m.merges {
		rs = append(rs, ranked{mv.rank, int32(k >> 32), int32(uint32(k))})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].rank < rs[j].rank })
	out := make([][2]string, len(rs))
	for i, r := range rs {
		out[i] = [2]string{m.tokens[r.a], m.tokens[r.b]}
	}
	return out
}

// spaceNormalizer checks that n turns every space into "▁", possibly
// prepending a "▁" too (in either order, which comes to the same), and
// does nothing else; it reports whether "▁" is prepended.
func spaceNormalizer(n normalizer) (prefix bool, err error) {
	var steps []normalizer
	var flatten func(normalizer)
	flatten = func(n normalizer) {
		if s, ok := n.(seqNormalizer); ok {
			for _, x := range s {
				flatten(x)
			}
			return
		}
		steps = append(steps, n)
	}
	if n != nil {
		flatten(n)
	}
	replaced := false
	for _, s := range steps {
		switch s := s.(type) {
		case prepend:
			if string(s) != spaceMark || prefix {
				return false, fmt.Errorf("Prepend %q: SentencePiece prepends at most one %q", string(s), spaceMark)
			}
			prefix = true
		case replaceNorm:
			if lit, ok := s.m.(literal); !ok || lit != " " || s.content != spaceMark || replaced {
				return false, fmt.Errorf("a Replace other than one of \" \" by %q", spaceMark)
			}
			replaced = true
		default:
			return false, fmt.Errorf("%s: SentencePiece's normalization here is only spaces to %q", componentName(s), spaceMark)
		}
	}
	if !replaced {
		return false, fmt.Errorf("spaces are not replaced by %q", spaceMark)
	}
	return prefix, nil
}

// spaceDecoder checks that d decodes as SentencePiece does: "▁" back to a
// space, byte tokens fused into text, and at most the first leading space
// removed (a Sequence of Replace, ByteFallback, Fuse and Strip steps, or
// Metaspace).
func spaceDecoder(d decoder) error {
	var steps []decoder
	if s, ok := d.(seqDecoder); ok {
		steps = s
	} else if d != nil {
		steps = []decoder{d}
	}
	for _, s := range steps {
		switch s := s.(type) {
		case byteFallbackDec, fuseDec:
		case metaspaceDec:
			if s.replacement != spaceMark {
				return fmt.Errorf("Metaspace with replacement %q", s.replacement)
			}
		case replaceDec:
			if lit, ok := s.m.(literal); !ok || lit != spaceMark || s.content != " " {
				return fmt.Errorf("a Replace other than %q by \" \"", spaceMark)
			}
		case stripDec:
			if s.r != ' ' || s.start > 1 || s.stop != 0 {
				return fmt.Errorf("a Strip other than of the first space")
			}
		default:
			return fmt.Errorf("%s: SentencePiece decodes %q as spaces and fuses byte tokens, nothing else", componentName(s), spaceMark)
		}
	}
	return nil
}

// componentName is the tokenizer.json type of a parsed normalizer or
// decoder, for errors.
func componentName(c any) string {
	switch c := c.(type) {
	case unicodeNorm:
		switch c.f {
		case norm.NFC:
			return "NFC"
		case norm.NFD:
			return "NFD"
		case norm.NFKC:
			return "NFKC"
		}
		return "NFKD"
	case lowercase:
		return "Lowercase"
	case stripMarks:
		return "StripAccents"
	case stripNorm:
		return "Strip"
	case bertNorm:
		return "BertNormalizer"
	case *precompiled:
		return "Precompiled"
	case byteLevelDec:
		return "ByteLevel"
	case wordPieceDec:
		return "WordPiece"
	case bpeDec:
		return "BPEDecoder"
	case ctcDec:
		return "CTC"
	}
	return fmt.Sprintf("%T", c)
}
