package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// preTokenizer splits a normalized section into the pieces the model
// encodes one by one. first is set for the piece that starts the text
// (Metaspace's prepend_scheme "first").
type preTokenizer interface {
	preTokenize(dst []string, s string, first bool) []string
}

type preTokenizerJSON struct {
	PreTokenizers    []json.RawMessage `json:"pretokenizers"`
	Pattern          pattern           `json:"pattern"`
	Behavior         string            `json:"behavior"`
	Invert           bool              `json:"invert"`
	AddPrefixSpace   *bool             `json:"add_prefix_space"`
	UseRegex         *bool             `json:"use_regex"`
	Replacement      string            `json:"replacement"`
	PrependScheme    string            `json:"prepend_scheme"`
	Split            *bool             `json:"split"`
	IndividualDigits bool              `json:"individual_digits"`
	Delimiter        string            `json:"delimiter"`
}

func parsePreTokenizer(raw json.RawMessage, path string) (preTokenizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c preTokenizerJSON
	typ, err := componentType(raw, path, &c)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		var seq seqPreTokenizer
		for i, r := range c.PreTokenizers {
			p, err := parsePreTokenizer(r, fmt.Sprintf("%s.pretokenizers[%d]", path, i))
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	case "Split":
		m, err := newMatcher(c.Pattern, path+".pattern")
		if err != nil {
			return nil, err
		}
		b, err := parseBehavior(c.Behavior, path+".behavior")
		if err != nil {
			return nil, err
		}
		return splitPre{m: m, behavior: b, invert: c.Invert}, nil
	case "ByteLevel":
		b := byteLevelPre{prefixSpace: true, regex: true}
		if c.AddPrefixSpace != nil {
			b.prefixSpace = *c.AddPrefixSpace
		}
		if c.UseRegex != nil {
			b.regex = *c.UseRegex
		}
		return b, nil
	case "Metaspace":
		m := metaspacePre{replacement: "▁", scheme: "always", split: true}
		if c.Replacement != "" {
			m.replacement = c.Replacement
		}
		switch {
		case c.PrependScheme != "":
			m.scheme = c.PrependScheme
		case c.AddPrefixSpace != nil && !*c.AddPrefixSpace:
			m.scheme = "never"
		}
		switch m.scheme {
		case "always", "first", "never":
		default:
			return nil, fmt.Errorf("%s.prepend_scheme: unknown scheme %q", path, m.scheme)
		}
		if c.Split != nil {
			m.split = *c.Split
		}
		return m, nil
	case "Whitespace":
		return splitPre{m: wordsMatcher{}, behavior: removed, invert: true}, nil
	case "WhitespaceSplit":
		return splitPre{m: runePred(unicode.IsSpace), behavior: removed}, nil
	case "BertPreTokenizer":
		return seqPreTokenizer{
			splitPre{m: runePred(unicode.IsSpace), behavior: removed},
			splitPre{m: runePred(isPunct), behavior: isolated},
		}, nil
	case "Punctuation":
		b, err := parseBehavior(c.Behavior, path+".behavior")
		if err != nil {
			return nil, err
		}
		return splitPre{m: runePred(isPunct), behavior: b}, nil
	case "Digits":
		b := contiguous
		if c.IndividualDigits {
			b = isolated
		}
		return splitPre{m: runePred(unicode.IsNumber), behavior: b}, nil
	case "CharDelimiterSplit":
		r, n := utf8.DecodeRuneInString(c.Delimiter)
		if n == 0 || n != len(c.Delimiter) {
			return nil, fmt.Errorf("%s.delimiter: %q is not one character", path, c.Delimiter)
		}
		return splitPre{m: runePred(func(x rune) bool { return x == r }), behavior: removed}, nil
	}
	return nil, unknown(path, typ)
}

type seqPreTokenizer []preTokenizer

func (s seqPreTokenizer) preTokenize(dst []string, t string, first bool) []string {
	cur := []string{t}
	var nxt []string
	for _, p := range s {
		nxt = nxt[:0]
		for i, piece := range cur {
			nxt = p.preTokenize(nxt, piece, first && i == 0)
		}
		cur, nxt = nxt, cur
	}
	return append(dst, cur...)
}

// behavior is what Split does with the matches of its pattern.
type behavior int

const (
	removed behavior = iota
	isolated
	mergedWithPrevious
	mergedWithNext
	contiguous
)

func parseBehavior(s, path string) (behavior, error) {
	switch s {
	case "Removed":
		return removed, nil
	case "Isolated", "":
		return isolated, nil
	case "MergedWithPrevious":
		return mergedWithPrevious, nil
	case "MergedWithNext":
		return mergedWithNext, nil
	case "Contiguous":
		return contiguous, nil
	}
	return 0, fmt.Errorf("%s: %w %q", path, ErrUnknownComponent, s)
}

// splitPre is the Split pre-tokenizer (and those built on it): the text is
// cut at the matches of m (the non-matches with invert), which are kept
// or merged as the behaviour says; empty pieces are dropped.
type splitPre struct {
	m        matcher
	behavior behavior
	invert   bool
}

type span struct {
	start, end int
	match      bool
}

func (p splitPre) preTokenize(dst []string, s string, _ bool) []string {
	var buf [64][2]int
	ms := p.m.find(buf[:0], s)
	spans := make([]span, 0, 2*len(ms)+1)
	prev := 0
	for _, m := range ms {
		if m[0] > prev {
			spans = append(spans, span{prev, m[0], p.invert})
		}
		spans = append(spans, span{m[0], m[1], !p.invert})
		prev = m[1]
	}
	if prev < len(s) {
		spans = append(spans, span{prev, len(s), p.invert})
	}
	out := spans[:0]
	switch p.behavior {
	case removed:
		for _, sp := range spans {
			if !sp.match {
				out = append(out, sp)
			}
		}
	case isolated:
		out = spans
	case mergedWithPrevious:
		prevMatch := false
		for _, sp := range spans {
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, sp)
			}
			prevMatch = sp.match
		}
	case mergedWithNext:
		// Walk backwards, merging each match into the piece after it.
		rev := make([]span, 0, len(spans))
		prevMatch := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prevMatch && len(rev) > 0 {
				rev[len(rev)-1].start = sp.start
			} else {
				rev = append(rev, sp)
			}
			prevMatch = sp.match
		}
		for i := len(rev) - 1; i >= 0; i-- {
			out = append(out, rev[i])
		}
	case contiguous:
		prevMatch := false
		for i, sp := range spans {
			if i > 0 && sp.match == prevMatch {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, sp)
			}
			prevMatch = sp.match
		}
	}
	for _, sp := range out {
		if sp.end > sp.start {
			dst = append(dst, s[sp.start:sp.end])
		}
	}
	return dst
}

// wordsMatcher matches `\w+|[^\w\s]+` (the Whitespace pre-tokenizer).
type wordsMatcher struct{}

func isW(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.M, r) ||
		unicode.Is(unicode.Pc, r) || r == 0x200C || r == 0x200D
}

func (wordsMatcher) find(dst [][2]int, s string) [][2]int {
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			i += w
			continue
		}
		word := isW(r)
		j := i + w
		for j < len(s) {
			r2, w2 := utf8.DecodeRuneInString(s[j:])
			if unicode.IsSpace(r2) || isW(r2) != word {
				break
			}
			j += w2
		}
		dst = append(dst, [2]int{i, j})
		i = j
	}
	return dst
}

// bytesToUnicode maps each byte to the printable character byte-level BPE
// vocabularies spell it with (GPT-2's bytes_to_unicode), and back.
var byteRunes, runeBytes = func() ([256]rune, map[rune]byte) {
	var t [256]rune
	back := make(map[rune]byte, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if '!' <= b && b <= '~' || 0xA1 <= b && b <= 0xAC || 0xAE <= b && b <= 0xFF {
			t[b] = rune(b)
		} else {
			t[b] = rune(256 + n)
			n++
		}
		back[t[b]] = byte(b)
	}
	return t, back
}()

// byteStrings holds each byte's character as a string.
var byteStrings = func() (t [256]string) {
	for b := range t {
		t[b] = string(byteRunes[b])
	}
	return t
}()

// byteLevelPre is the ByteLevel pre-tokenizer: an optional leading space,
// the GPT-2 split pattern, then every byte written as its character.
type byteLevelPre struct{ prefixSpace, regex bool }

var gpt2Scanner = splitScanner{}

func (b byteLevelPre) preTokenize(dst []string, s string, _ bool) []string {
	if b.prefixSpace && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	if !b.regex {
		return append(dst, byteLevel(s))
	}
	var buf [64][2]int
	for _, m := range gpt2Scanner.find(buf[:0], s) {
		dst = append(dst, byteLevel(s[m[0]:m[1]]))
	}
	return dst
}

// byteLevel writes every byte of s as its byte-level character.
func byteLevel(s string) string {
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteString(byteStrings[s[i]])
	}
	return b.String()
}

// metaspacePre is the Metaspace pre-tokenizer: spaces become the
// replacement character, one is prepended (always, for the first piece
// only, or never) and the text is split before each replacement.
type metaspacePre struct {
	replacement string
	scheme      string
	split       bool
}

func (m metaspacePre) preTokenize(dst []string, s string, first bool) []string {
	s = strings.ReplaceAll(s, " ", m.replacement)
	if !strings.HasPrefix(s, m.replacement) && (m.scheme == "always" || m.scheme == "first" && first) {
		s = m.replacement + s
	}
	if !m.split {
		return append(dst, s)
	}
	return splitPre{m: literal(m.replacement), behavior: mergedWithNext}.preTokenize(dst, s, first)
}
