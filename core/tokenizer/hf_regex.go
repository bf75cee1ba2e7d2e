package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// matcher finds the non-overlapping matches of a tokenizer.json pattern,
// as [start, end) byte offsets, left to right.
type matcher interface {
	find(dst [][2]int, s string) [][2]int
}

// literal matches a fixed string.
type literal string

func (l literal) find(dst [][2]int, s string) [][2]int {
	if l == "" {
		return dst
	}
	for off := 0; ; {
		i := strings.Index(s[off:], string(l))
		if i < 0 {
			return dst
		}
		dst = append(dst, [2]int{off + i, off + i + len(l)})
		off += i + len(l)
	}
}

// runePred matches every single character for which the function holds.
type runePred func(rune) bool

func (p runePred) find(dst [][2]int, s string) [][2]int {
	for i, r := range s {
		if p(r) {
			dst = append(dst, [2]int{i, i + utf8.RuneLen(r)})
		}
	}
	return dst
}

// goRegexp is a pattern Go's regexp (RE2) can express.
type goRegexp struct{ re *regexp.Regexp }

func (g goRegexp) find(dst [][2]int, s string) [][2]int {
	for _, m := range g.re.FindAllStringIndex(s, -1) {
		dst = append(dst, [2]int{m[0], m[1]})
	}
	return dst
}

// The split patterns of GPT-2 (and the ByteLevel pre-tokenizer), Llama 3,
// Qwen 2/3 and Qwen 3.5. Their `\s+(?!\S)` look-ahead is beyond RE2, so they run as
// exact hand-written scanners.
const (
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwenPattern   = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen35Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// knownPatterns maps the split regexes with look-ahead to their scanners.
var knownPatterns = map[string]matcher{
	gpt2Pattern:   splitScanner{},
	llama3Pattern: splitScanner{llama: true, digits: 3},
	qwenPattern:   splitScanner{llama: true, digits: 1},
	qwen35Pattern: splitScanner{llama: true, digits: 1, marks: true},
	// GPT-4's cl100k pattern written with the case-insensitive flag per
	// alternative, as some conversions do.
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+(?!\S)|\s+`: splitScanner{llama: true, digits: 3},
}

// newMatcher compiles a tokenizer.json pattern.
func newMatcher(p pattern, path string) (matcher, error) {
	switch {
	case p.String != nil:
		return literal(*p.String), nil
	case p.Regex != nil:
		if m, ok := knownPatterns[*p.Regex]; ok {
			return m, nil
		}
		if m, ok := newTailMatcher(*p.Regex); ok {
			return m, nil
		}
		re, err := regexp.Compile(*p.Regex)
		if err != nil {
			return nil, fmt.Errorf("%s: regex %q: %w (Go's regexp has no look-around; split patterns with one are read when they end in GPT-4's whitespace alternatives, |\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+)", path, *p.Regex, err)
		}
		return goRegexp{re}, nil
	}
	return nil, fmt.Errorf("%s: neither String nor Regex", path)
}

// Character classes of ASCII bytes, for the scanners' fast path.
const (
	classOther = iota
	classLetter
	classNumber
	classSpace
)

var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for i := range t {
		r := rune(i)
		switch {
		case unicode.IsLetter(r):
			t[i] = classLetter
		case unicode.IsNumber(r):
			t[i] = classNumber
		case unicode.IsSpace(r):
			t[i] = classSpace
		}
	}
	return t
}()

// class returns the class of r: \p{L}, \p{N}, \s or anything else.
func class(r rune) uint8 {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsSpace(r):
		return classSpace
	}
	return classOther
}

// next decodes the rune at s[i:] and its class; at the end it returns
// width 0 and class -1.
func next(s string, i int) (rune, int, int) {
	if i >= len(s) {
		return 0, 0, -1
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1, int(asciiClass[c])
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return r, w, int(class(r))
}

// splitScanner matches the GPT-2 pattern (llama false) or the Llama 3 /
// Qwen pattern (llama true, at most digits numbers in a match) exactly as a
// backtracking regex engine does: at each position the first alternative
// that matches wins. Every character is matched by some alternative, so the
// matches tile the text.
type splitScanner struct {
	llama  bool
	digits int
	// marks counts combining marks (\p{M}) as letters, as Qwen 3.5's
	// pattern does with [\p{L}\p{M}]+ and [^\s\p{L}\p{M}\p{N}].
	marks bool
}

// next is the package's next with combining marks as letters when the
// pattern says so.
func (sc splitScanner) next(s string, i int) (rune, int, int) {
	r, w, c := next(s, i)
	if sc.marks && c == classOther && r >= utf8.RuneSelf && unicode.Is(unicode.M, r) {
		c = classLetter
	}
	return r, w, c
}

// run returns the end of the run of characters of class c from i.
func (sc splitScanner) run(s string, i, c int) int {
	for {
		_, w, k := sc.next(s, i)
		if k != c {
			return i
		}
		i += w
	}
}

func (sc splitScanner) find(dst [][2]int, s string) [][2]int {
	for i := 0; i < len(s); {
		n := sc.matchAt(s, i)
		dst = append(dst, [2]int{i, i + n})
		i += n
	}
	return dst
}

// contraction returns the length of 's 't 're 've 'm 'll 'd after the
// apostrophe at s[i], or 0.
func contraction(s string, i int, fold bool) int {
	rest := s[i+1:]
	lower := func(k int) byte {
		if k >= len(rest) {
			return 0
		}
		c := rest[k]
		if fold && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		return c
	}
	switch lower(0) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if lower(1) == 'e' {
			return 3
		}
	case 'l':
		if lower(1) == 'l' {
			return 3
		}
	}
	return 0
}

func (sc splitScanner) matchAt(s string, i int) int {
	r, w, c := sc.next(s, i)
	if r == '\'' {
		if n := contraction(s, i, sc.llama); n > 0 {
			return n
		}
	}
	// Letters, with one leading character: a space (GPT-2) or anything but
	// a newline, letter or number (Llama 3).
	if c == classLetter {
		return sc.run(s, i+w, classLetter) - i
	}
	if sc.llama && c != classNumber && r != '\r' && r != '\n' || !sc.llama && r == ' ' {
		if _, w2, c2 := sc.next(s, i+w); c2 == classLetter {
			return sc.run(s, i+w+w2, classLetter) - i
		}
	}
	// Numbers.
	if sc.llama {
		if c == classNumber {
			j := i + w
			for k := 1; k < sc.digits; k++ {
				_, w2, c2 := sc.next(s, j)
				if c2 != classNumber {
					break
				}
				j += w2
			}
			return j - i
		}
	} else {
		if c == classNumber {
			return sc.run(s, i+w, classNumber) - i
		}
		if r == ' ' {
			if _, w2, c2 := sc.next(s, i+w); c2 == classNumber {
				return sc.run(s, i+w+w2, classNumber) - i
			}
		}
	}
	// Other characters, with an optional leading space (and, for Llama 3,
	// the newlines after them).
	j := -1
	if c == classOther {
		j = i
	} else if r == ' ' {
		if _, _, c2 := sc.next(s, i+1); c2 == classOther {
			j = i + 1
		}
	}
	if j >= 0 {
		j = sc.run(s, j, classOther)
		if sc.llama {
			for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
				j++
			}
		}
		return j - i
	}
	// Whitespace.
	e := sc.run(s, i, classSpace)
	if sc.llama {
		// \s*[\r\n]+: up to the last newline of the run.
		if k := strings.LastIndexAny(s[i:e], "\r\n"); k >= 0 {
			return k + 1
		}
	}
	if e == len(s) {
		return e - i
	}
	// \s+(?!\S): the run but its last character, which must stay to
	// lead the next word.
	_, lw := utf8.DecodeLastRuneInString(s[i:e])
	if e-lw > i {
		return e - lw - i
	}
	if e > i {
		return e - i
	}
	return max(w, 1)
}
