package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites a section of text before pre-tokenization.
type normalizer interface {
	normalize(s string) string
}

// isNull reports whether a component is absent (missing or JSON null).
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// componentType decodes a component into v and returns its "type".
func componentType(raw json.RawMessage, path string, v any) (string, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			return "", fmt.Errorf("%s (%s): %w", path, head.Type, err)
		}
	}
	return head.Type, nil
}

func unknown(path, typ string) error {
	if typ == "" {
		return fmt.Errorf("%s: %w: no \"type\"", path, ErrUnknownComponent)
	}
	return fmt.Errorf("%s: %w %q", path, ErrUnknownComponent, typ)
}

// pattern is tokenizer.json's {"String": s} or {"Regex": r}.
type pattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

type normalizerJSON struct {
	Normalizers         []json.RawMessage `json:"normalizers"`
	Prepend             string            `json:"prepend"`
	Pattern             pattern           `json:"pattern"`
	Content             string            `json:"content"`
	CleanText           *bool             `json:"clean_text"`
	HandleChineseChars  *bool             `json:"handle_chinese_chars"`
	StripAccents        *bool             `json:"strip_accents"`
	Lowercase           *bool             `json:"lowercase"`
	StripLeft           bool              `json:"strip_left"`
	StripRight          bool              `json:"strip_right"`
	PrecompiledCharsmap []byte            `json:"precompiled_charsmap"`
}

func parseNormalizer(raw json.RawMessage, path string) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c normalizerJSON
	typ, err := componentType(raw, path, &c)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		var seq seqNormalizer
		for i, r := range c.Normalizers {
			n, err := parseNormalizer(r, fmt.Sprintf("%s.normalizers[%d]", path, i))
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	case "NFC":
		return unicodeNorm{norm.NFC}, nil
	case "NFD":
		return unicodeNorm{norm.NFD}, nil
	case "NFKC":
		return unicodeNorm{norm.NFKC}, nil
	case "NFKD":
		return unicodeNorm{norm.NFKD}, nil
	case "Lowercase":
		return lowercase{}, nil
	case "StripAccents":
		return stripMarks{}, nil
	case "Strip":
		return stripNorm{c.StripLeft, c.StripRight}, nil
	case "Prepend":
		return prepend(c.Prepend), nil
	case "Replace":
		m, err := newMatcher(c.Pattern, path+".pattern")
		if err != nil {
			return nil, err
		}
		return replaceNorm{m, c.Content}, nil
	case "BertNormalizer":
		b := bertNorm{clean: true, chinese: true, lower: true}
		if c.CleanText != nil {
			b.clean = *c.CleanText
		}
		if c.HandleChineseChars != nil {
			b.chinese = *c.HandleChineseChars
		}
		if c.Lowercase != nil {
			b.lower = *c.Lowercase
		}
		b.strip = b.lower // strip_accents null follows lowercase
		if c.StripAccents != nil {
			b.strip = *c.StripAccents
		}
		return b, nil
	case "Precompiled":
		p, err := newPrecompiled(c.PrecompiledCharsmap)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return p, nil
	}
	return nil, unknown(path, typ)
}

type seqNormalizer []normalizer

func (s seqNormalizer) normalize(t string) string {
	for _, n := range s {
		t = n.normalize(t)
	}
	return t
}

type unicodeNorm struct{ f norm.Form }

func (u unicodeNorm) normalize(s string) string {
	if isASCII(s) {
		return s
	}
	return u.f.String(s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lowercase is Unicode's full lowercase mapping, as Rust's to_lowercase.
type lowercase struct{}

func (lowercase) normalize(s string) string { return fullLower(s) }

// fullLower lowercases s with Unicode's full mapping: simple case mapping,
// final sigma, and U+0130 'İ' becoming "i\u0307".
func fullLower(s string) string {
	l := toLower(s)
	if strings.ContainsRune(s, 'İ') {
		var b strings.Builder
		for _, r := range s {
			if r == 'İ' {
				b.WriteString("i\u0307")
			} else {
				b.WriteRune(r)
			}
		}
		l = toLower(b.String())
	}
	return l
}

// stripMarks drops combining marks (categories Mn, Mc, Me), as the
// StripAccents normalizer does (without decomposing first).
type stripMarks struct{}

func (stripMarks) normalize(s string) string {
	if isASCII(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.M, r) {
			return -1
		}
		return r
	}, s)
}

type stripNorm struct{ left, right bool }

func (n stripNorm) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

type prepend string

func (p prepend) normalize(s string) string {
	if s == "" {
		return s
	}
	return string(p) + s
}

type replaceNorm struct {
	m       matcher
	content string
}

func (r replaceNorm) normalize(s string) string { return replaceAll(r.m, s, r.content) }

// replaceAll replaces every match of m in s with content.
func replaceAll(m matcher, s, content string) string {
	if lit, ok := m.(literal); ok {
		if lit == "" {
			return s
		}
		return strings.ReplaceAll(s, string(lit), content)
	}
	spans := m.find(nil, s)
	if len(spans) == 0 {
		return s
	}
	var b strings.Builder
	prev := 0
	for _, sp := range spans {
		b.WriteString(s[prev:sp[0]])
		b.WriteString(content)
		prev = sp[1]
	}
	b.WriteString(s[prev:])
	return b.String()
}

// bertNorm is BertNormalizer: control characters dropped and whitespace
// made spaces, spaces around CJK ideographs, lowercase and accents
// stripped (NFD, nonspacing marks dropped).
type bertNorm struct{ clean, chinese, lower, strip bool }

func (n bertNorm) normalize(s string) string {
	if n.clean || n.chinese {
		var b strings.Builder
		b.Grow(len(s))
		for _, r := range s {
			switch {
			case n.clean && (r == 0 || r == utf8.RuneError || isControl(r)):
			case n.clean && isWhitespace(r):
				b.WriteByte(' ')
			case n.chinese && isCJK(r):
				b.WriteByte(' ')
				b.WriteRune(r)
				b.WriteByte(' ')
			default:
				b.WriteRune(r)
			}
		}
		s = b.String()
	}
	if n.lower {
		s = fullLower(s)
	}
	if n.strip {
		s = stripAccents(s)
	}
	return s
}
