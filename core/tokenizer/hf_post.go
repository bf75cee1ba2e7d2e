package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// postProcessor adds special tokens around an encoded sequence; template
// returns what it puts before and after a single one.
type postProcessor interface {
	template() (prefix, suffix []int)
}

type templatePiece struct {
	SpecialToken *struct {
		ID string `json:"id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID string `json:"id"`
	} `json:"Sequence"`
}

type postJSON struct {
	Single        json.RawMessage `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
	Sep        []json.RawMessage `json:"sep"`
	Cls        []json.RawMessage `json:"cls"`
	Processors []json.RawMessage `json:"processors"`
}

// fixedPost is a post-processor reduced to the ids it adds to a single
// sequence (TemplateProcessing, BertProcessing, RobertaProcessing; ByteLevel
// adds none).
type fixedPost struct{ prefix, suffix []int }

func (f fixedPost) template() ([]int, []int) { return f.prefix, f.suffix }

func parsePostProcessor(raw json.RawMessage, path string, h *HF) (postProcessor, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c postJSON
	typ, err := componentType(raw, path, &c)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "ByteLevel":
		return fixedPost{}, nil
	case "TemplateProcessing":
		return parseTemplate(&c, path)
	case "BertProcessing", "RobertaProcessing":
		cls, err := tokenPair(c.Cls, path+".cls")
		if err != nil {
			return nil, err
		}
		sep, err := tokenPair(c.Sep, path+".sep")
		if err != nil {
			return nil, err
		}
		return fixedPost{[]int{cls}, []int{sep}}, nil
	case "Sequence":
		var f fixedPost
		for i, r := range c.Processors {
			p, err := parsePostProcessor(r, fmt.Sprintf("%s.processors[%d]", path, i), h)
			if err != nil {
				return nil, err
			}
			if p == nil {
				continue
			}
			pre, suf := p.template()
			f.prefix = append(append([]int(nil), pre...), f.prefix...)
			f.suffix = append(f.suffix, suf...)
		}
		return f, nil
	}
	return nil, unknown(path, typ)
}

// tokenPair reads BertProcessing's ["[CLS]", 101].
func tokenPair(raw []json.RawMessage, path string) (int, error) {
	var id int
	if len(raw) != 2 {
		return 0, fmt.Errorf("%s: want [token, id]", path)
	}
	if err := json.Unmarshal(raw[1], &id); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

func parseTemplate(c *postJSON, path string) (postProcessor, error) {
	var items []templatePiece
	if isNull(c.Single) {
		return nil, fmt.Errorf("%s.single: missing", path)
	}
	if err := json.Unmarshal(c.Single, &items); err != nil {
		// The string form, "[CLS] $A [SEP]".
		var s string
		if json.Unmarshal(c.Single, &s) != nil {
			return nil, fmt.Errorf("%s.single: %w", path, err)
		}
		for _, f := range strings.Fields(s) {
			name, _, _ := strings.Cut(f, ":")
			var it templatePiece
			if strings.HasPrefix(name, "$") {
				it.Sequence = &struct {
					ID string `json:"id"`
				}{strings.TrimPrefix(name, "$")}
			} else {
				it.SpecialToken = &struct {
					ID string `json:"id"`
				}{name}
			}
			items = append(items, it)
		}
	}
	var f fixedPost
	seen := false
	for i, it := range items {
		switch {
		case it.Sequence != nil:
			if seen {
				return nil, fmt.Errorf("%s.single[%d]: a second sequence in a single template", path, i)
			}
			seen = true
		case it.SpecialToken != nil:
			st, ok := c.SpecialTokens[it.SpecialToken.ID]
			if !ok {
				return nil, fmt.Errorf("%s.single[%d]: special token %q not in special_tokens", path, i, it.SpecialToken.ID)
			}
			if seen {
				f.suffix = append(f.suffix, st.IDs...)
			} else {
				f.prefix = append(f.prefix, st.IDs...)
			}
		default:
			return nil, fmt.Errorf("%s.single[%d]: neither SpecialToken nor Sequence", path, i)
		}
	}
	return f, nil
}

// decoder turns tokens back into text pieces (joined by Decode).
type decoder interface {
	decode(toks []string) []string
}

type decoderJSON struct {
	Decoders       []json.RawMessage `json:"decoders"`
	Replacement    string            `json:"replacement"`
	PrependScheme  string            `json:"prepend_scheme"`
	AddPrefixSpace *bool             `json:"add_prefix_space"`
	Prefix         *string           `json:"prefix"`
	Cleanup        *bool             `json:"cleanup"`
	Suffix         *string           `json:"suffix"`
	Pattern        pattern           `json:"pattern"`
	Content        string            `json:"content"`
	Start          int               `json:"start"`
	Stop           int               `json:"stop"`
	PadToken       string            `json:"pad_token"`
	WordDelimiter  string            `json:"word_delimiter_token"`
}

func parseDecoder(raw json.RawMessage, path string) (decoder, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c decoderJSON
	typ, err := componentType(raw, path, &c)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		var seq seqDecoder
		for i, r := range c.Decoders {
			d, err := parseDecoder(r, fmt.Sprintf("%s.decoders[%d]", path, i))
			if err != nil {
				return nil, err
			}
			if d != nil {
				seq = append(seq, d)
			}
		}
		return seq, nil
	case "ByteLevel":
		return byteLevelDec{}, nil
	case "Metaspace":
		d := metaspaceDec{replacement: "▁", strip: true}
		if c.Replacement != "" {
			d.replacement = c.Replacement
		}
		if c.PrependScheme == "never" || c.PrependScheme == "" && c.AddPrefixSpace != nil && !*c.AddPrefixSpace {
			d.strip = false
		}
		return d, nil
	case "WordPiece":
		d := wordPieceDec{prefix: "##", cleanup: true}
		if c.Prefix != nil {
			d.prefix = *c.Prefix
		}
		if c.Cleanup != nil {
			d.cleanup = *c.Cleanup
		}
		return d, nil
	case "BPEDecoder":
		d := bpeDec{suffix: "</w>"}
		if c.Suffix != nil {
			d.suffix = *c.Suffix
		}
		return d, nil
	case "Replace":
		m, err := newMatcher(c.Pattern, path+".pattern")
		if err != nil {
			return nil, err
		}
		return replaceDec{m, c.Content}, nil
	case "ByteFallback":
		return byteFallbackDec{}, nil
	case "Fuse":
		return fuseDec{}, nil
	case "Strip":
		r, n := utf8.DecodeRuneInString(c.Content)
		if n == 0 || n != len(c.Content) {
			return nil, fmt.Errorf("%s.content: %q is not one character", path, c.Content)
		}
		return stripDec{r, c.Start, c.Stop}, nil
	case "CTC":
		d := ctcDec{pad: "<pad>", delim: "|", cleanup: true}
		if c.PadToken != "" {
			d.pad = c.PadToken
		}
		if c.WordDelimiter != "" {
			d.delim = c.WordDelimiter
		}
		if c.Cleanup != nil {
			d.cleanup = *c.Cleanup
		}
		return d, nil
	}
	return nil, unknown(path, typ)
}

type seqDecoder []decoder

func (s seqDecoder) decode(t []string) []string {
	for _, d := range s {
		t = d.decode(t)
	}
	return t
}

// byteLevelDec maps byte-level characters back to bytes; invalid UTF-8
// becomes U+FFFD.
type byteLevelDec struct{}

func (byteLevelDec) decode(toks []string) []string {
	var b []byte
	for _, t := range toks {
		for _, r := range t {
			if c, ok := runeBytes[r]; ok {
				b = append(b, c)
			} else {
				b = utf8.AppendRune(b, r)
			}
		}
	}
	return []string{strings.ToValidUTF8(string(b), "\uFFFD")}
}

type metaspaceDec struct {
	replacement string
	strip       bool
}

func (d metaspaceDec) decode(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		t = strings.ReplaceAll(t, d.replacement, " ")
		if i == 0 && d.strip {
			t = strings.TrimPrefix(t, " ")
		}
		out[i] = t
	}
	return out
}

type wordPieceDec struct {
	prefix  string
	cleanup bool
}

func (d wordPieceDec) decode(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		if i > 0 {
			if rest, ok := strings.CutPrefix(t, d.prefix); ok {
				t = rest
			} else {
				t = " " + t
			}
		}
		if d.cleanup {
			t = strings.ReplaceAll(cleanUpTokenization(t), " do not", " don't")
		}
		out[i] = t
	}
	return out
}

type bpeDec struct{ suffix string }

func (d bpeDec) decode(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		rep := " "
		if i == len(toks)-1 {
			rep = ""
		}
		out[i] = strings.ReplaceAll(t, d.suffix, rep)
	}
	return out
}

type replaceDec struct {
	m       matcher
	content string
}

func (d replaceDec) decode(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = replaceAll(d.m, t, d.content)
	}
	return out
}

// byteFallbackDec turns runs of <0xXX> tokens into their UTF-8 text, each
// byte of an invalid run becoming U+FFFD.
type byteFallbackDec struct{}

func (byteFallbackDec) decode(toks []string) []string {
	var out []string
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, t := range toks {
		if b, ok := parseByteToken(t); ok && len(t) == 6 {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

type fuseDec struct{}

func (fuseDec) decode(toks []string) []string { return []string{strings.Join(toks, "")} }

type stripDec struct {
	r           rune
	start, stop int
}

func (d stripDec) decode(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		for k := 0; k < d.start; k++ {
			r, w := utf8.DecodeRuneInString(t)
			if w == 0 || r != d.r {
				break
			}
			t = t[w:]
		}
		for k := 0; k < d.stop; k++ {
			r, w := utf8.DecodeLastRuneInString(t)
			if w == 0 || r != d.r {
				break
			}
			t = t[:len(t)-w]
		}
		out[i] = t
	}
	return out
}

type ctcDec struct {
	pad, delim string
	cleanup    bool
}

func (d ctcDec) decode(toks []string) []string {
	var out []string
	for i, t := range toks {
		if i > 0 && t == toks[i-1] || t == d.pad {
			continue
		}
		if d.cleanup {
			t = strings.ReplaceAll(cleanUpTokenization(t), d.delim, " ")
		}
		out = append(out, t)
	}
	return out
}
