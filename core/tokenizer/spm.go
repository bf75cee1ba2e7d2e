// Package tokenizer turns text into token ids and back for the model families
// surgeon supports. SPM is the SentencePiece-style BPE tokenizer of Llama
// models, built from a vocabulary of pieces, scores and token types as GGUF
// metadata or a tokenizer.json carries them.
package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Token types, numbered as SentencePiece and GGUF's tokenizer.ggml.token_type
// number them.
const (
	TypeNormal      = 1
	TypeUnknown     = 2
	TypeControl     = 3
	TypeUserDefined = 4
	TypeUnused      = 5
	TypeByte        = 6
)

// spaceMark is SentencePiece's visible space, U+2581.
const spaceMark = "\u2581"

// unkSurface is how SentencePiece decodes the unknown token.
const unkSurface = " \u2047 "

// SPM is a SentencePiece BPE tokenizer with byte fallback, encoding as
// llama.cpp's SPM tokenizer does. It is immutable and safe for concurrent
// use.
type SPM struct {
	pieces      []string
	scores      []float32
	types       []int32
	index       map[string]int // pieces that BPE may produce
	byteTok     [256]int       // id of <0xXX>, or -1
	bos, eos    int
	unk         int
	dummyPrefix bool
}

// Option configures an SPM.
type Option func(*SPM)

// WithDummyPrefix sets whether Encode prepends a space to the text and
// Decode removes it (SentencePiece's add_dummy_prefix, GGUF's
// tokenizer.ggml.add_space_prefix). It is on by default, as for Llama.
func WithDummyPrefix(on bool) Option { return func(s *SPM) { s.dummyPrefix = on } }

// NewSPM builds a tokenizer from parallel vocabulary slices: the pieces, their
// scores (higher merges first; nil means all zero) and their types (TypeNormal
// ... TypeByte; nil means all normal). bos, eos and unk are token ids, or -1
// when the vocabulary has no such token.
func NewSPM(tokens []string, scores []float32, types []int32, bos, eos, unk int, opts ...Option) (*SPM, error) {
	n := len(tokens)
	if n == 0 {
		return nil, fmt.Errorf("spm: empty vocabulary")
	}
	if scores != nil && len(scores) != n {
		return nil, fmt.Errorf("spm: %d scores for %d tokens", len(scores), n)
	}
	if types != nil && len(types) != n {
		return nil, fmt.Errorf("spm: %d token types for %d tokens", len(types), n)
	}
	for _, id := range []struct {
		name string
		v    int
	}{{"bos", bos}, {"eos", eos}, {"unk", unk}} {
		if id.v < -1 || id.v >= n {
			return nil, fmt.Errorf("spm: %s id %d outside the vocabulary of %d tokens", id.name, id.v, n)
		}
	}
	s := &SPM{
		pieces:      append([]string(nil), tokens...),
		scores:      make([]float32, n),
		types:       make([]int32, n),
		index:       make(map[string]int, n),
		bos:         bos,
		eos:         eos,
		unk:         unk,
		dummyPrefix: true,
	}
	copy(s.scores, scores)
	for i := range s.types {
		s.types[i] = TypeNormal
	}
	if types != nil {
		copy(s.types, types)
	}
	for i := range s.byteTok {
		s.byteTok[i] = -1
	}
	for i, p := range s.pieces {
		switch s.types[i] {
		case TypeByte:
			b, ok := parseByteToken(p)
			if !ok {
				return nil, fmt.Errorf("spm: byte token %d is %q, want <0xXX>", i, p)
			}
			if s.byteTok[b] < 0 {
				s.byteTok[b] = i
			}
		case TypeControl, TypeUnknown, TypeUnused:
			// Never produced by BPE merges of user text.
		default: // normal, user-defined, and GGUF's 0 (undefined)
			if p != "" {
				s.index[p] = i // as llama.cpp, a later duplicate wins
			}
		}
	}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// parseByteToken parses a "<0xXX>" piece.
func parseByteToken(p string) (byte, bool) {
	if len(p) != 6 || p[:3] != "<0x" || p[5] != '>' {
		return 0, false
	}
	var b byte
	for _, c := range []byte(p[3:5]) {
		b <<= 4
		switch {
		case '0' <= c && c <= '9':
			b |= c - '0'
		case 'A' <= c && c <= 'F':
			b |= c - 'A' + 10
		case 'a' <= c && c <= 'f':
			b |= c - 'a' + 10
		default:
			return 0, false
		}
	}
	return b, true
}

// VocabSize returns the number of tokens.
func (s *SPM) VocabSize() int { return len(s.pieces) }

// BOS returns the beginning-of-sequence id, or -1.
func (s *SPM) BOS() int { return s.bos }

// EOS returns the end-of-sequence id, or -1.
func (s *SPM) EOS() int { return s.eos }

// UNK returns the unknown-token id, or -1.
func (s *SPM) UNK() int { return s.unk }

// Piece returns the vocabulary piece of id (with '▁' for spaces), or "" when
// id is out of range.
func (s *SPM) Piece(id int) string {
	if id < 0 || id >= len(s.pieces) {
		return ""
	}
	return s.pieces[id]
}

// Score returns the merge score of id, or 0 when id is out of range.
func (s *SPM) Score(id int) float32 {
	if id < 0 || id >= len(s.scores) {
		return 0
	}
	return s.scores[id]
}

// Type returns the token type of id (TypeNormal ... TypeByte), or 0 when id
// is out of range.
func (s *SPM) Type(id int) int {
	if id < 0 || id >= len(s.types) {
		return 0
	}
	return int(s.types[id])
}

// ID returns the id of a piece that BPE can produce (normal and user-defined
// pieces).
func (s *SPM) ID(piece string) (int, bool) {
	id, ok := s.index[piece]
	return id, ok
}

// symbol is one node of the doubly linked list of text pieces being merged.
type symbol struct {
	start, end int // byte range in the text; end == start once merged away
	prev, next int // neighbour indices, -1 at the ends
}

// bigram is a candidate merge of the symbols left and right.
type bigram struct {
	left, right int
	score       float32
	size        int // byte length of the merged piece, to detect stale entries
}

// bigramQueue is a binary max-heap of merge candidates: highest score first,
// leftmost on ties. It is typed to avoid container/heap's boxing.
type bigramQueue []bigram

func (q bigramQueue) less(i, j int) bool {
	if q[i].score != q[j].score {
		return q[i].score > q[j].score
	}
	return q[i].left < q[j].left
}

func (q *bigramQueue) push(b bigram) {
	*q = append(*q, b)
	h := *q
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *bigramQueue) pop() bigram {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h.less(l, m) {
			m = l
		}
		if r < n && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}

// Encode tokenizes text: spaces become '▁', a '▁' is prepended (unless the
// dummy prefix is off), the text is split into UTF-8 characters and the
// adjacent pair whose concatenation is a vocabulary piece with the highest
// score is merged repeatedly (leftmost first on ties). Pieces not in the
// vocabulary fall back to byte tokens <0xXX>, or to the unknown token when
// those are missing. With addBOS the BOS id is prepended if there is one.
// Special-token text such as "<s>" is not recognised; it is encoded as
// ordinary characters. Merging costs O(n log n) in the text length.
func (s *SPM) Encode(text string, addBOS bool) []int {
	var out []int
	if addBOS && s.bos >= 0 {
		out = append(out, s.bos)
	}
	if text == "" {
		return out
	}
	if s.dummyPrefix {
		text = " " + text
	}
	text = strings.ReplaceAll(text, " ", spaceMark)

	syms := make([]symbol, 0, len(text))
	for pos := 0; pos < len(text); {
		_, n := utf8.DecodeRuneInString(text[pos:])
		syms = append(syms, symbol{start: pos, end: pos + n, prev: len(syms) - 1, next: len(syms) + 1})
		pos += n
	}
	syms[len(syms)-1].next = -1

	q := make(bigramQueue, 0, len(syms))
	try := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		piece := text[syms[l].start:syms[r].end]
		id, ok := s.index[piece]
		if !ok {
			return
		}
		q.push(bigram{left: l, right: r, score: s.scores[id], size: len(piece)})
	}
	for i := 1; i < len(syms); i++ {
		try(i-1, i)
	}
	for len(q) > 0 {
		b := q.pop()
		l, r := &syms[b.left], &syms[b.right]
		// Skip entries made stale by earlier merges.
		if l.end == l.start || r.end == r.start || l.next != b.right || r.end-l.start != b.size {
			continue
		}
		l.end = r.end
		r.start = r.end
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		try(l.prev, b.left)
		try(b.left, l.next)
	}

	for i := 0; i >= 0; i = syms[i].next {
		piece := text[syms[i].start:syms[i].end]
		if id, ok := s.index[piece]; ok {
			out = append(out, id)
			continue
		}
		for k := 0; k < len(piece); k++ {
			if id := s.byteTok[piece[k]]; id >= 0 {
				out = append(out, id)
			} else if s.unk >= 0 {
				out = append(out, s.unk)
			}
		}
	}
	return out
}

// Decode turns ids back into text: byte tokens are reassembled into UTF-8
// (invalid sequences become U+FFFD), '▁' becomes a space, control tokens
// (BOS, EOS, ...) are skipped, the unknown token reads " ⁇ ", and the space
// the dummy prefix put before the first piece is removed. Ids out of range
// are skipped.
func (s *SPM) Decode(ids []int) string {
	var b strings.Builder
	var pending []byte // consecutive byte tokens
	first := true
	flush := func() {
		for len(pending) > 0 {
			r, n := utf8.DecodeRune(pending)
			if r == utf8.RuneError && n <= 1 {
				b.WriteRune(utf8.RuneError)
				n = 1
			} else {
				b.Write(pending[:n])
			}
			pending = pending[n:]
		}
		pending = pending[:0]
	}
	for _, id := range ids {
		if id < 0 || id >= len(s.pieces) {
			continue
		}
		switch s.types[id] {
		case TypeControl:
			continue
		case TypeByte:
			if v, ok := parseByteToken(s.pieces[id]); ok {
				pending = append(pending, v)
				first = false
				continue
			}
		}
		flush()
		if s.types[id] == TypeUnknown {
			b.WriteString(unkSurface)
			first = false
			continue
		}
		piece := s.pieces[id]
		if first && s.dummyPrefix {
			piece = strings.TrimPrefix(piece, spaceMark)
		}
		first = false
		b.WriteString(strings.ReplaceAll(piece, spaceMark, " "))
	}
	flush()
	return b.String()
}
