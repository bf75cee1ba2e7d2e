package target

import (
	"fmt"
	"regexp"
	"strings"
)

// glob is a compiled module-path glob.
type glob struct {
	src  string
	full *regexp.Regexp
	// bare globs (no '.') also match the last path segment, like PEFT's
	// target_modules suffix matching.
	bare bool
	toks []token // for distances in error messages
}

type tokKind int

const (
	tokLit   tokKind = iota
	tokAny           // ?
	tokStar          // *
	tokStars         // **
	tokClass         // [...]
)

type token struct {
	kind  tokKind
	r     rune
	class *regexp.Regexp // for tokClass: matches one rune
}

// compileGlob compiles a glob: '*' matches any run of characters except
// '.', '**' any run including '.', '?' one character except '.', [abc] and
// [!a-z] one character of (or not of) a class, and '\' quotes the next
// character.
func compileGlob(s string) (*glob, error) {
	if s == "" {
		return nil, fmt.Errorf("empty pattern")
	}
	var re strings.Builder
	g := &glob{src: s, bare: !strings.Contains(s, ".")}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '*':
			if i+1 < len(rs) && rs[i+1] == '*' {
				for i+1 < len(rs) && rs[i+1] == '*' {
					i++
				}
				re.WriteString(".*")
				g.toks = append(g.toks, token{kind: tokStars})
			} else {
				re.WriteString(`[^.]*`)
				g.toks = append(g.toks, token{kind: tokStar})
			}
		case '?':
			re.WriteString(`[^.]`)
			g.toks = append(g.toks, token{kind: tokAny})
		case '[':
			j := i + 1
			neg := j < len(rs) && (rs[j] == '!' || rs[j] == '^')
			if neg {
				j++
			}
			start := j
			if j < len(rs) && rs[j] == ']' {
				j++ // a leading ']' is literal
			}
			for j < len(rs) && rs[j] != ']' {
				if rs[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("pattern %q: unterminated character class", s)
			}
			var cls strings.Builder
			cls.WriteString("[")
			if neg {
				cls.WriteString("^.")
			}
			for k := start; k < j; k++ {
				switch r := rs[k]; {
				case r == '\\' && k+1 < j:
					k++
					cls.WriteString(regexp.QuoteMeta(string(rs[k])))
				case r == '-':
					cls.WriteRune('-')
				default:
					cls.WriteString(regexp.QuoteMeta(string(r)))
				}
			}
			cls.WriteString("]")
			one, err := regexp.Compile("^" + cls.String() + "$")
			if err != nil {
				return nil, fmt.Errorf("pattern %q: bad character class: %w", s, err)
			}
			re.WriteString(cls.String())
			g.toks = append(g.toks, token{kind: tokClass, class: one})
			i = j
		case '\\':
			if i+1 == len(rs) {
				return nil, fmt.Errorf("pattern %q: trailing backslash", s)
			}
			i++
			re.WriteString(regexp.QuoteMeta(string(rs[i])))
			g.toks = append(g.toks, token{kind: tokLit, r: rs[i]})
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
			g.toks = append(g.toks, token{kind: tokLit, r: c})
		}
	}
	full, err := regexp.Compile("^(?:" + re.String() + ")$")
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", s, err)
	}
	g.full = full
	return g, nil
}

// match reports whether the glob matches the module path.
func (g *glob) match(path string) bool {
	if g.full.MatchString(path) {
		return true
	}
	return g.bare && g.full.MatchString(path[strings.LastIndexByte(path, '.')+1:])
}

// Match reports whether the module path matches the glob pattern, with the
// semantics of TargetGroup.Modules: '*' matches within a path segment,
// '**' across segments, '?' one character other than '.', [a-z] a class,
// and a pattern without a dot also matches the last segment alone.
func Match(pattern, path string) (bool, error) {
	g, err := compileGlob(pattern)
	if err != nil {
		return false, err
	}
	return g.match(path), nil
}

// distance is the edit distance between the glob and the path, wildcards
// matching for free, taken over every suffix of the path that starts at a
// segment, so that "*.q_prj" is close to "model.layers.0.self_attn.q_proj".
func (g *glob) distance(path string) int {
	best := -1
	for start := 0; ; {
		if d := tokDistance(g.toks, []rune(path[start:])); best < 0 || d < best {
			best = d
		}
		i := strings.IndexByte(path[start:], '.')
		if i < 0 {
			return best
		}
		start += i + 1
	}
}

func tokDistance(toks []token, s []rune) int {
	prev := make([]int, len(s)+1)
	cur := make([]int, len(s)+1)
	for j := range prev {
		prev[j] = j
	}
	for _, t := range toks {
		switch t.kind {
		case tokStar, tokStars:
			cur[0] = prev[0]
			for j := 1; j <= len(s); j++ {
				cur[j] = prev[j] // matches nothing
				if t.kind == tokStars || s[j-1] != '.' {
					cur[j] = min(cur[j], cur[j-1]) // absorbs s[j-1]
				}
				cur[j] = min(cur[j], cur[j-1]+1)
			}
		default:
			cur[0] = prev[0] + 1
			for j := 1; j <= len(s); j++ {
				c := prev[j-1]
				if !t.matches(s[j-1]) {
					c++
				}
				cur[j] = min(c, prev[j]+1, cur[j-1]+1)
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(s)]
}

func (t token) matches(r rune) bool {
	switch t.kind {
	case tokAny:
		return r != '.'
	case tokClass:
		return t.class.MatchString(string(r))
	}
	return t.r == r
}

// regexGlob turns a regular expression into a glob close enough to rank
// paths by distance for an error message.
func regexGlob(re string) *glob {
	r := strings.NewReplacer(`^`, "", `$`, "", `\.`, ".", `.*`, "**", `.+`, "**", `[^.]*`, "*", `[^.]+`, "*",
		`\d+`, "*", `[0-9]+`, "*", `(`, "", `)`, "", `?:`, "", `\`, "")
	g, err := compileGlob(r.Replace(re))
	if err != nil {
		g, _ = compileGlob(regexp.QuoteMeta(re))
	}
	if g == nil {
		g = &glob{src: re}
	}
	return g
}
