package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrNotByteLevelBPE reports a tokenizer that is not a byte-level BPE (a
// GPT-2 style vocabulary of byte characters with plain merges), so it
// cannot be taken apart as ByteLevelBPE parts.
var ErrNotByteLevelBPE = errors.New("not a byte-level BPE tokenizer")

// ByteLevelBPE is a byte-level BPE tokenizer (GPT-2, Llama 3, Qwen...)
// as its parts: what GGUF's tokenizer.ggml.* metadata stores and what
// NewByteLevelBPE assembles into an HF pipeline. The normalizer and
// pre-tokenizer are tokenizer.json components, so the pipeline is exactly
// the one a tokenizer.json of the same parts describes.
type ByteLevelBPE struct {
	// Tokens are the model's tokens by id, spelled with byte characters;
	// "" marks an id the model lacks.
	Tokens []string
	// Merges are the BPE merges, highest priority first.
	Merges [][2]string
	// IgnoreMerges encodes a piece that is itself a token as that token
	// without merging (Llama 3).
	IgnoreMerges bool
	// Added are the added tokens, matched in the text before anything else.
	Added []AddedToken
	// Normalizer and PreTokenizer are tokenizer.json components; nil
	// Normalizer is the identity, and PreTokenizer must end in a ByteLevel
	// step.
	Normalizer, PreTokenizer json.RawMessage
	// Prefix and Suffix are the ids the post-processor puts around a single
	// sequence (Encode with addSpecial).
	Prefix, Suffix []int
	// BOS, EOS and Pad are the special ids (-1: none).
	BOS, EOS, Pad int
}

// NewByteLevelBPE builds the pipeline of a byte-level BPE tokenizer from
// its parts: added tokens, the normalizer, the pre-tokenizer, the BPE model
// and the byte-level decoder. Merges of tokens the vocabulary lacks are an
// error, as in a tokenizer.json.
func NewByteLevelBPE(p ByteLevelBPE) (*HF, error) {
	v := &vocab{ids: make(map[string]int, len(p.Tokens))}
	for id, t := range p.Tokens {
		if t == "" {
			continue
		}
		if err := v.add(t, id, "tokens"); err != nil {
			return nil, err
		}
	}
	v.trim()
	c := &modelJSON{parsedVocab: v, IgnoreMerges: p.IgnoreMerges, rawMerges: make([][2][]byte, len(p.Merges))}
	for i, m := range p.Merges {
		c.rawMerges[i] = [2][]byte{[]byte(m[0]), []byte(m[1])}
	}
	model, err := newBPE(c, "model")
	if err != nil {
		return nil, err
	}
	h := &HF{cacheLimit: 1 << 16, model: model, bos: p.BOS, eos: p.EOS, pad: p.Pad, dec: byteLevelDec{}}
	if h.norm, err = parseNormalizer(p.Normalizer, "normalizer"); err != nil {
		return nil, err
	}
	if h.pre, err = parsePreTokenizer(p.PreTokenizer, "pre_tokenizer"); err != nil {
		return nil, err
	}
	h.normJSON, h.preJSON = p.Normalizer, p.PreTokenizer
	if err := h.setAdded(append([]AddedToken(nil), p.Added...)); err != nil {
		return nil, err
	}
	for _, id := range append(append([]int(nil), p.Prefix...), p.Suffix...) {
		if id < 0 || id >= h.vocabSize {
			return nil, fmt.Errorf("post-processor: id %d outside the vocabulary of %d", id, h.vocabSize)
		}
	}
	for _, id := range []int{p.BOS, p.EOS, p.Pad} {
		if id >= h.vocabSize {
			return nil, fmt.Errorf("special id %d outside the vocabulary of %d", id, h.vocabSize)
		}
	}
	h.prefix = append([]int(nil), p.Prefix...)
	h.suffix = append([]int(nil), p.Suffix...)
	h.post = fixedPost{h.prefix, h.suffix}
	return h, nil
}

// ByteLevelBPE takes a byte-level BPE tokenizer apart (for a GGUF file's
// tokenizer.ggml.* metadata, say). It fails with ErrNotByteLevelBPE when
// the model is not a BPE whose tokens are plain byte-character strings
// (an unknown token, byte fallback, subword prefixes or suffixes), or
// when the decoder is not byte-level.
func (h *HF) ByteLevelBPE() (ByteLevelBPE, error) {
	m, ok := h.model.(*bpe)
	if !ok {
		return ByteLevelBPE{}, fmt.Errorf("%w: the model is a %s", ErrNotByteLevelBPE, modelKind(h.model))
	}
	if m.unk >= 0 || m.byteFallback || m.prefix != "" || m.suffix != "" {
		return ByteLevelBPE{}, fmt.Errorf("%w: the BPE model has an unknown token, byte fallback or a subword prefix or suffix", ErrNotByteLevelBPE)
	}
	if _, ok := h.dec.(byteLevelDec); !ok {
		return ByteLevelBPE{}, fmt.Errorf("%w: the decoder is not ByteLevel", ErrNotByteLevelBPE)
	}
	p := ByteLevelBPE{
		Tokens:       make([]string, len(m.tokens)),
		IgnoreMerges: m.ignoreMerges,
		Added:        h.AddedTokens(),
		Normalizer:   h.normJSON,
		PreTokenizer: h.preJSON,
		BOS:          h.bos, EOS: h.eos, Pad: h.pad,
	}
	p.Prefix, p.Suffix = h.Template()
	for id, t := range m.tokens {
		if m.has[id] {
			p.Tokens[id] = t
		}
	}
	type ranked struct {
		rank int32
		a, b int32
	}
	rs := make([]ranked, 0, len(m.merges))
	for k, mv := range m.merges {
		rs = append(rs, ranked{mv.rank, int32(k >> 32), int32(uint32(k))})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].rank < rs[j].rank })
	p.Merges = make([][2]string, len(rs))
	for i, r := range rs {
		p.Merges[i] = [2]string{m.tokens[r.a], m.tokens[r.b]}
	}
	return p, nil
}

func modelKind(m hfModel) string {
	switch m.(type) {
	case *wordPieceModel:
		return "WordPiece"
	case *wordLevel:
		return "WordLevel"
	case *bpe:
		return "BPE"
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", m), "*tokenizer.")
}

// MarshalByteLevelBPE writes the parts as a tokenizer.json that
// transformers (PreTrainedTokenizerFast) and ParseHF read back into the
// same pipeline: the added tokens, normalizer, pre-tokenizer, a
// TemplateProcessing post-processor for Prefix and Suffix (ByteLevel when
// both are empty), the BPE model and a ByteLevel decoder.
func MarshalByteLevelBPE(p ByteLevelBPE) ([]byte, error) {
	token := func(id int) (string, error) {
		for _, a := range p.Added {
			if a.ID == id {
				return a.Content, nil
			}
		}
		if id >= 0 && id < len(p.Tokens) && p.Tokens[id] != "" {
			return p.Tokens[id], nil
		}
		return "", fmt.Errorf("post-processor: id %d is not a token", id)
	}
	var post any = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
	if len(p.Prefix)+len(p.Suffix) > 0 {
		type piece map[string]map[string]any
		var single []piece
		specials := map[string]any{}
		add := func(id int) error {
			t, err := token(id)
			if err != nil {
				return err
			}
			single = append(single, piece{"SpecialToken": {"id": t, "type_id": 0}})
			specials[t] = map[string]any{"id": t, "ids": []int{id}, "tokens": []string{t}}
			return nil
		}
		for _, id := range p.Prefix {
			if err := add(id); err != nil {
				return nil, err
			}
		}
		single = append(single, piece{"Sequence": {"id": "A", "type_id": 0}})
		for _, id := range p.Suffix {
			if err := add(id); err != nil {
				return nil, err
			}
		}
		pair := append(append([]piece(nil), single...), piece{"Sequence": {"id": "B", "type_id": 1}})
		post = map[string]any{"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials}
	}
	null := json.RawMessage("null")
	orNull := func(r json.RawMessage) json.RawMessage {
		if len(r) == 0 {
			return null
		}
		return r
	}
	head := struct {
		Version       string          `json:"version"`
		Truncation    json.RawMessage `json:"truncation"`
		Padding       json.RawMessage `json:"padding"`
		AddedTokens   []AddedToken    `json:"added_tokens"`
		Normalizer    json.RawMessage `json:"normalizer"`
		PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
		PostProcessor any             `json:"post_processor"`
		Decoder       any             `json:"decoder"`
	}{"1.0", null, null, p.Added, orNull(p.Normalizer), orNull(p.PreTokenizer), post,
		map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}}
	if head.AddedTokens == nil {
		head.AddedTokens = []AddedToken{}
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(head); err != nil {
		return nil, err
	}
	out := []byte(strings.TrimRight(b.String(), "\n"))
	out = out[:len(out)-1] // reopen the object for the model
	out = append(out, `,"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":`...)
	out = strconv.AppendBool(out, p.IgnoreMerges)
	out = append(out, `,"vocab":{`...)
	first := true
	for id, t := range p.Tokens {
		if t == "" {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = appendJSONString(out, t)
		out = append(out, ':')
		out = strconv.AppendInt(out, int64(id), 10)
	}
	out = append(out, `},"merges":[`...)
	for i, m := range p.Merges {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '[')
		out = appendJSONString(out, m[0])
		out = append(out, ',')
		out = appendJSONString(out, m[1])
		out = append(out, ']')
	}
	return append(out, "]}}\n"...), nil
}

// appendJSONString appends s as a JSON string, HTML characters unescaped.
func appendJSONString(dst []byte, s string) []byte {
	plain := utf8.ValidString(s)
	for i := 0; plain && i < len(s); i++ {
		plain = s[i] >= 0x20 && s[i] != '"' && s[i] != '\\' && s[i] != 0x7f
	}
	if plain && !strings.ContainsAny(s, "\u2028\u2029") {
		return append(append(append(dst, '"'), s...), '"')
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(dst, strings.TrimRight(b.String(), "\n")...)
}
