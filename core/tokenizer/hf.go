package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// ErrUnknownComponent reports a tokenizer.json component (normalizer,
// pre-tokenizer, model, post-processor or decoder) of a type surgeon does
// not implement. The error that wraps it names the component and its JSON
// path, such as `pre_tokenizer.pretokenizers[1]: unknown type "Foo"`.
var ErrUnknownComponent = errors.New("unknown type")

// HF is a Hugging Face tokenizers pipeline read from a tokenizer.json:
// added tokens are split out of the text first, each remaining section is
// normalized, pre-tokenized into pieces and encoded by the model (BPE,
// WordPiece, Unigram or WordLevel); the post-processor adds the special
// tokens of its template. Decode runs the decoder. It encodes as the Rust
// tokenizers library does (and transformers.js, the reference its tests
// compare with) and is safe for concurrent use.
//
// What the post-processor adds is queryable: AddsBOS and AddsEOS report
// whether Encode(text, true) puts tokens before or after the text, and
// Template returns them, so data code can follow the tokenizer's own
// convention rather than assume one.
type HF struct {
	norm  normalizer   // nil: identity
	pre   preTokenizer // nil: the whole section is one piece
	model hfModel
	post  postProcessor // nil: nothing added
	dec   decoder       // nil: tokens joined with spaces

	// normJSON and preJSON are the normalizer and pre-tokenizer as
	// tokenizer.json spells them (ByteLevelBPE reports them).
	normJSON, preJSON json.RawMessage

	added      []AddedToken
	addedByID  map[int]*AddedToken
	rawTrie    *tokenTrie // added tokens matched in the raw text
	normTrie   *tokenTrie // added tokens matched in normalized text
	prefix     []int      // what the post-processor adds before a single sequence
	suffix     []int      // and after it
	vocabSize  int
	bos, eos   int
	pad        int
	cacheMu    sync.RWMutex
	cache      map[string][]int
	cacheLimit int
}

var _ Tokenizer = (*HF)(nil)

// AddedToken is an entry of tokenizer.json's added_tokens: a string
// matched in the text before normalization and pre-tokenization and
// encoded as one id.
type AddedToken struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
	// SingleWord matches the token only where it is not part of a word.
	SingleWord bool `json:"single_word"`
	// LStrip and RStrip absorb the whitespace before and after a match.
	LStrip bool `json:"lstrip"`
	RStrip bool `json:"rstrip"`
	// Normalized matches the token in the normalized text rather than the
	// raw text.
	Normalized bool `json:"normalized"`
	// Special tokens are left out by Decode.
	Special bool `json:"special"`
}

// hfModel turns one pre-tokenized piece into ids.
type hfModel interface {
	encode(dst []int, piece string) []int
	tokenToID(tok string) (int, bool)
	idToToken(id int) (string, bool)
	size() int
}

// hfFile is the top level of a tokenizer.json.
type hfFile struct {
	AddedTokens   []AddedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Model         json.RawMessage `json:"model"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
}

// HFConfig is what tokenizer_config.json adds to a tokenizer.json: the
// names of the special tokens a model uses. Empty names are unset.
type HFConfig struct {
	BOS, EOS, Pad string
}

// LoadHF reads a tokenizer.json file. cfg names the special tokens
// (tokenizer_config.json's bos_token, eos_token, pad_token); it may be nil.
// Errors name the file and, for a bad component, its JSON path.
func LoadHF(path string, cfg *HFConfig) (*HF, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	h, err := ParseHF(data, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// ParseHF builds the pipeline a tokenizer.json describes. cfg may be nil;
// a special token it names that the vocabulary lacks is ignored.
func ParseHF(data []byte, cfg *HFConfig) (*HF, error) {
	// The top level is read by hand, the model in place: encoding/json
	// would scan the 30 MB of a large vocabulary several times.
	var f hfFile
	var model hfModel
	var modelErr error
	j := &jsonScan{data: data}
	err := j.object(func(k string) error {
		if k == "model" && j.peek() == '{' {
			model, modelErr = parseModelScan(j, "model")
			return modelErr
		}
		v, err := j.skip()
		if err != nil {
			return err
		}
		switch k {
		case "normalizer":
			f.Normalizer = v
		case "pre_tokenizer":
			f.PreTokenizer = v
		case "model":
			f.Model = v
		case "post_processor":
			f.PostProcessor = v
		case "decoder":
			f.Decoder = v
		case "added_tokens":
			if !isNull(v) {
				if err := json.Unmarshal(v, &f.AddedTokens); err != nil {
					return fmt.Errorf("added_tokens: %w", err)
				}
			}
		}
		return nil
	})
	if modelErr != nil {
		return nil, modelErr
	}
	if err == nil && j.peek() != 0 {
		err = fmt.Errorf("%w: data after the object at byte %d", errJSON, j.pos)
	}
	if err != nil {
		return nil, fmt.Errorf("not a tokenizer.json: %w", err)
	}
	h := &HF{cacheLimit: 1 << 16, bos: -1, eos: -1, pad: -1}
	if h.model = model; model == nil {
		if h.model, err = parseModel(f.Model, "model"); err != nil {
			return nil, err
		}
	}
	if h.norm, err = parseNormalizer(f.Normalizer, "normalizer"); err != nil {
		return nil, err
	}
	if h.pre, err = parsePreTokenizer(f.PreTokenizer, "pre_tokenizer"); err != nil {
		return nil, err
	}
	if h.post, err = parsePostProcessor(f.PostProcessor, "post_processor", h); err != nil {
		return nil, err
	}
	if h.dec, err = parseDecoder(f.Decoder, "decoder"); err != nil {
		return nil, err
	}
	h.normJSON, h.preJSON = f.Normalizer, f.PreTokenizer
	if err := h.setAdded(f.AddedTokens); err != nil {
		return nil, err
	}
	if h.post != nil {
		h.prefix, h.suffix = h.post.template()
	}
	if len(h.prefix) > 0 {
		h.bos = h.prefix[0]
	}
	if len(h.suffix) > 0 {
		h.eos = h.suffix[len(h.suffix)-1]
	}
	if cfg != nil {
		for _, c := range []struct {
			name string
			dst  *int
		}{{cfg.BOS, &h.bos}, {cfg.EOS, &h.eos}, {cfg.Pad, &h.pad}} {
			if c.name == "" {
				continue
			}
			if id, ok := h.TokenID(c.name); ok {
				*c.dst = id
			}
		}
	}
	return h, nil
}

// setAdded installs the added tokens: the vocabulary size grows to cover
// their ids, and they are matched in the raw text, or in the normalized
// text for normalized tokens that are not special.
func (h *HF) setAdded(added []AddedToken) error {
	h.vocabSize = h.model.size()
	h.added = added
	h.addedByID = make(map[int]*AddedToken, len(h.added))
	var raw, normed []int
	for i := range h.added {
		a := &h.added[i]
		if a.ID < 0 {
			return fmt.Errorf("added_tokens[%d]: negative id %d", i, a.ID)
		}
		if a.Content == "" {
			return fmt.Errorf("added_tokens[%d]: empty content", i)
		}
		h.addedByID[a.ID] = a
		h.vocabSize = max(h.vocabSize, a.ID+1)
		if a.Normalized && !a.Special && h.norm != nil {
			normed = append(normed, i)
		} else {
			raw = append(raw, i)
		}
	}
	h.rawTrie = newTokenTrie(h.added, raw)
	h.normTrie = newTokenTrie(h.added, normed)
	return nil
}

// VocabSize returns the number of ids: the model's vocabulary and the added
// tokens.
func (h *HF) VocabSize() int { return h.vocabSize }

// BOS returns the id that starts a sequence: tokenizer_config.json's
// bos_token when given, else the first token the post-processor adds
// before the text, else -1. Whether Encode adds it is AddsBOS.
func (h *HF) BOS() int { return h.bos }

// EOS returns the id that ends a sequence (and generation):
// tokenizer_config.json's eos_token when given, else the last token the
// post-processor adds after the text, else -1. Whether Encode adds it is
// AddsEOS.
func (h *HF) EOS() int { return h.eos }

// Pad returns tokenizer_config.json's pad_token id, or -1.
func (h *HF) Pad() int { return h.pad }

// AddsBOS reports whether Encode(text, true) puts special tokens before the
// text (the post-processor's template for a single sequence).
func (h *HF) AddsBOS() bool { return len(h.prefix) > 0 }

// AddsEOS reports whether Encode(text, true) puts special tokens after the
// text.
func (h *HF) AddsEOS() bool { return len(h.suffix) > 0 }

// Template returns the ids the post-processor puts before and after a
// single sequence; both are empty when it adds none.
func (h *HF) Template() (prefix, suffix []int) {
	return append([]int(nil), h.prefix...), append([]int(nil), h.suffix...)
}

// AddedTokens returns a copy of the added tokens.
func (h *HF) AddedTokens() []AddedToken { return append([]AddedToken(nil), h.added...) }

// TokenID returns the id of a token: an added token or a model token.
func (h *HF) TokenID(tok string) (int, bool) {
	for i := range h.added {
		if h.added[i].Content == tok {
			return h.added[i].ID, true
		}
	}
	return h.model.tokenToID(tok)
}

// Token returns the token of id as the vocabulary spells it (for a
// byte-level BPE, bytes mapped to printable characters), or "" when id is
// unknown.
func (h *HF) Token(id int) string {
	if a, ok := h.addedByID[id]; ok {
		return a.Content
	}
	t, _ := h.model.idToToken(id)
	return t
}

// section is a part of the text: an added token (id >= 0) or text to
// encode with the pipeline.
type section struct {
	text string
	id   int
}

// Encode returns the ids of text; with addSpecial, the post-processor's
// special tokens too (Tokenizer's addBOS).
func (h *HF) Encode(text string, addSpecial bool) []int {
	ids := make([]int, 0, len(text)/3+4)
	if addSpecial {
		ids = append(ids, h.prefix...)
	}
	var sections []section
	sections = h.rawTrie.split(sections[:0], text)
	var pieces []string
	for i, s := range sections {
		if s.id >= 0 {
			ids = append(ids, s.id)
			continue
		}
		t := s.text
		if h.norm != nil {
			t = h.norm.normalize(t)
		}
		var sub []section
		if h.normTrie != nil {
			sub = h.normTrie.split(nil, t)
		} else {
			sub = []section{{t, -1}}
		}
		for j, ss := range sub {
			if ss.id >= 0 {
				ids = append(ids, ss.id)
				continue
			}
			if ss.text == "" {
				continue
			}
			first := i == 0 && j == 0
			if h.pre == nil {
				pieces = append(pieces[:0], ss.text)
			} else {
				pieces = h.pre.preTokenize(pieces[:0], ss.text, first)
			}
			for _, p := range pieces {
				ids = h.encodePiece(ids, p)
			}
		}
	}
	if addSpecial {
		ids = append(ids, h.suffix...)
	}
	return ids
}

// encodePiece appends the model's ids of one piece, through a cache of
// short pieces.
func (h *HF) encodePiece(dst []int, p string) []int {
	if len(p) > 64 {
		return h.model.encode(dst, p)
	}
	h.cacheMu.RLock()
	c, ok := h.cache[p]
	h.cacheMu.RUnlock()
	if ok {
		return append(dst, c...)
	}
	n := len(dst)
	dst = h.model.encode(dst, p)
	c = append([]int(nil), dst[n:]...)
	h.cacheMu.Lock()
	if h.cache == nil || len(h.cache) >= h.cacheLimit {
		h.cache = make(map[string][]int, 1024)
	}
	h.cache[strings.Clone(p)] = c
	h.cacheMu.Unlock()
	return dst
}

// Tokens returns the tokens of ids as the vocabulary spells them.
func (h *HF) Tokens(ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = h.Token(id)
	}
	return out
}

// Decode turns ids back into text with the tokenizer's decoder, leaving
// out special tokens (the post-processor's markers among them). Unknown
// ids are skipped.
func (h *HF) Decode(ids []int) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if a, ok := h.addedByID[id]; ok {
			if a.Special {
				continue
			}
			toks = append(toks, a.Content)
			continue
		}
		if t, ok := h.model.idToToken(id); ok {
			toks = append(toks, t)
		}
	}
	if h.dec == nil {
		return strings.Join(toks, " ")
	}
	return strings.Join(h.dec.decode(toks), "")
}

// tokenTrie finds added tokens in text, longest match first, as the
// tokenizers library's leftmost-longest Aho-Corasick does.
type tokenTrie struct {
	nodes []trieNode
	first [256]bool
	toks  []AddedToken
}

type trieNode struct {
	next map[byte]int32
	tok  int32 // index into toks + 1, or 0
}

func newTokenTrie(all []AddedToken, idx []int) *tokenTrie {
	if len(idx) == 0 {
		return nil
	}
	t := &tokenTrie{nodes: []trieNode{{}}}
	for _, i := range idx {
		a := all[i]
		t.toks = append(t.toks, a)
		n := int32(0)
		for k := 0; k < len(a.Content); k++ {
			b := a.Content[k]
			if k == 0 {
				t.first[b] = true
			}
			nx, ok := t.nodes[n].next[b]
			if !ok {
				if t.nodes[n].next == nil {
					t.nodes[n].next = map[byte]int32{}
				}
				nx = int32(len(t.nodes))
				t.nodes[n].next[b] = nx
				t.nodes = append(t.nodes, trieNode{})
			}
			n = nx
		}
		t.nodes[n].tok = int32(len(t.toks))
	}
	return t
}

// longest returns the index in toks and the length of the longest token
// starting at text[i], or -1.
func (t *tokenTrie) longest(text string, i int) (int, int) {
	best, bestLen := -1, 0
	n := int32(0)
	for k := i; k < len(text); k++ {
		nx, ok := t.nodes[n].next[text[k]]
		if !ok {
			break
		}
		n = nx
		if tk := t.nodes[n].tok; tk > 0 {
			best, bestLen = int(tk-1), k+1-i
		}
	}
	return best, bestLen
}

// split appends the sections of text to dst: added tokens and the text
// between them, with lstrip/rstrip whitespace absorbed and single_word
// tokens matched only outside words.
func (t *tokenTrie) split(dst []section, text string) []section {
	if t == nil {
		return append(dst, section{text, -1})
	}
	start := 0 // of the pending text
	for i := 0; i < len(text); {
		if !t.first[text[i]] {
			i++
			continue
		}
		k, n := t.longest(text, i)
		if k < 0 {
			i++
			continue
		}
		a := &t.toks[k]
		ms, me := i, i+n
		if a.SingleWord {
			before, _ := utf8.DecodeLastRuneInString(text[:ms])
			after, _ := utf8.DecodeRuneInString(text[me:])
			if ms > 0 && isWordChar(before) || me < len(text) && isWordChar(after) {
				i = me
				continue
			}
		}
		if a.LStrip {
			for ms > start {
				r, w := utf8.DecodeLastRuneInString(text[start:ms])
				if !unicode.IsSpace(r) {
					break
				}
				ms -= w
			}
		}
		if a.RStrip {
			for me < len(text) {
				r, w := utf8.DecodeRuneInString(text[me:])
				if !unicode.IsSpace(r) {
					break
				}
				me += w
			}
		}
		if ms > start {
			dst = append(dst, section{text[start:ms], -1})
		}
		dst = append(dst, section{a.Content, a.ID})
		start, i = me, me
	}
	if start < len(text) {
		dst = append(dst, section{text[start:], -1})
	}
	return dst
}

func isWordChar(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}
