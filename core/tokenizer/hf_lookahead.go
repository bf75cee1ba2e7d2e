package tokenizer

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The whitespace alternatives that end the split patterns of GPT-4's
// family (Llama 3, Qwen, Mistral's tekken, GPT-4o...). Their `\s+(?!\S)`
// look-ahead is the only thing in those patterns Go's regexp cannot do.
const (
	wsTailNewlines = `|\s*[\r\n]+|\s+(?!\S)|\s+`
	wsTailPlain    = `|\s+(?!\S)|\s+`
)

// uniSpace is \s as the Oniguruma engine of Hugging Face tokenizers reads
// it (Unicode White_Space, unicode.IsSpace); Go's \s is ASCII only.
const uniSpace = `\t\n\v\f\r \x{85}\p{Z}`

// tailMatcher runs a split pattern `HEAD|\s*[\r\n]+|\s+(?!\S)|\s+` (or
// without the newline alternative) exactly as a backtracking engine does:
// at each position HEAD, which has no look-around, is tried first with Go's
// regexp (whose leftmost-first matching chooses as Perl's does), then the
// whitespace alternatives by hand, as the GPT-2 and Llama 3 scanners do.
// A character neither matches is left between matches.
type tailMatcher struct {
	head     *regexp.Regexp
	newlines bool
}

// newTailMatcher returns the matcher of pattern p when it is a head
// without look-around followed by one of the whitespace tails.
func newTailMatcher(p string) (tailMatcher, bool) {
	for _, tail := range []string{wsTailNewlines, wsTailPlain} {
		head, ok := strings.CutSuffix(p, tail)
		if !ok || head == "" {
			continue
		}
		re, err := regexp.Compile(`\A(?:` + UnicodeSpaces(head) + `)`)
		if err != nil {
			return tailMatcher{}, false
		}
		return tailMatcher{head: re, newlines: tail == wsTailNewlines}, true
	}
	return tailMatcher{}, false
}

// UnicodeSpaces spells \s in a pattern as Unicode White_Space for Go's
// regexp (whose \s is ASCII only), inside and outside character classes,
// as the Oniguruma engine of Hugging Face tokenizers reads it.
func UnicodeSpaces(p string) string {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p) && p[i+1] == 's':
			if inClass {
				b.WriteString(uniSpace)
			} else {
				b.WriteString("[" + uniSpace + "]")
			}
			i++
			continue
		case c == '\\' && i+1 < len(p):
			b.WriteByte(c)
			b.WriteByte(p[i+1])
			i++
			continue
		case c == '[':
			inClass = true
		case c == ']':
			inClass = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

func (m tailMatcher) find(dst [][2]int, s string) [][2]int {
	for i := 0; i < len(s); {
		if loc := m.head.FindStringIndex(s[i:]); loc != nil && loc[1] > 0 {
			dst = append(dst, [2]int{i, i + loc[1]})
			i += loc[1]
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsSpace(r) {
			i += w // matched by no alternative
			continue
		}
		e := i + w
		for e < len(s) {
			r2, w2 := utf8.DecodeRuneInString(s[e:])
			if !unicode.IsSpace(r2) {
				break
			}
			e += w2
		}
		n := e - i
		switch k := strings.LastIndexAny(s[i:e], "\r\n"); {
		case m.newlines && k >= 0:
			n = k + 1 // \s*[\r\n]+: up to the last newline of the run
		case e < len(s):
			// \s+(?!\S): all but the last character, which leads the next
			// match; a single character is \s+ alone.
			if _, lw := utf8.DecodeLastRuneInString(s[i:e]); n > lw {
				n -= lw
			}
		}
		dst = append(dst, [2]int{i, i + n})
		i += n
	}
	return dst
}
