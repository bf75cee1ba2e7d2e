package recipe

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pos is a 1-based line and column (in characters).
type pos struct{ Line, Col int }

// place is where a key of the document is written: its name, and its value
// (for a table, its header).
type place struct{ key, val pos }

// positions maps every concrete dotted path of a TOML document ("train.lr",
// "targets.0.config.r", "model.labels.1") to where it appears. Elements of
// arrays and of arrays of tables are numbered from 0. The first place a
// key appears wins.
//
// BurntSushi/toml's metadata knows the line of the last value decoded, but
// not the column of a key, nor which element of an array of tables a key
// belongs to, so the document is scanned again here. The scan assumes the
// text already parsed as TOML.
type positions map[string]place

func (p positions) key(path string) pos { return p[path].key }

func (p positions) val(path string) pos {
	if pl := p[path]; pl.val.Line > 0 {
		return pl.val
	}
	return p[path].key
}

type scanner struct {
	src        string
	i          int
	lineStarts []int
	out        positions
	arrays     map[string]int // array-of-tables path -> elements so far
}

// scanPositions indexes the keys of the TOML document src.
func scanPositions(src string) positions {
	s := &scanner{src: src, out: positions{}, arrays: map[string]int{}, lineStarts: []int{0}}
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			s.lineStarts = append(s.lineStarts, i+1)
		}
	}
	if strings.HasPrefix(src, "\ufeff") {
		s.i = len("\ufeff")
	}
	s.document()
	return s.out
}

func (s *scanner) at(off int) pos {
	line := sort.Search(len(s.lineStarts), func(i int) bool { return s.lineStarts[i] > off }) - 1
	return pos{Line: line + 1, Col: utf8.RuneCountInString(s.src[s.lineStarts[line]:off]) + 1}
}

func (s *scanner) peek(prefix string) bool { return strings.HasPrefix(s.src[s.i:], prefix) }

// skip passes over spaces and tabs, and also newlines and comments when
// lines is set.
func (s *scanner) skip(lines bool) {
	for s.i < len(s.src) {
		switch c := s.src[s.i]; {
		case c == ' ' || c == '\t':
			s.i++
		case lines && (c == '\n' || c == '\r'):
			s.i++
		case lines && c == '#':
			for s.i < len(s.src) && s.src[s.i] != '\n' {
				s.i++
			}
		default:
			return
		}
	}
}

func (s *scanner) record(path string, key pos) {
	if _, ok := s.out[path]; !ok {
		s.out[path] = place{key: key}
	}
}

func (s *scanner) recordVal(path string, val pos) {
	p := s.out[path]
	if p.val.Line == 0 {
		p.val = val
		if p.key.Line == 0 {
			p.key = val
		}
		s.out[path] = p
	}
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

type keyPart struct {
	name string
	at   pos
}

// key reads a possibly dotted key.
func (s *scanner) key() []keyPart {
	var parts []keyPart
	for s.i < len(s.src) {
		s.skip(false)
		start := s.i
		var name string
		switch {
		case s.peek(`"`):
			end := s.stringEnd(`"`, true)
			raw := s.src[start:end]
			if u, err := strconv.Unquote(raw); err == nil {
				name = u
			} else {
				name = raw[1 : len(raw)-1]
			}
			s.i = end
		case s.peek(`'`):
			end := s.stringEnd(`'`, false)
			name = s.src[start+1 : end-1]
			s.i = end
		default:
			for s.i < len(s.src) && isBare(s.src[s.i]) {
				s.i++
			}
			name = s.src[start:s.i]
		}
		if s.i == start {
			return parts // not a key: stop rather than loop
		}
		parts = append(parts, keyPart{name, s.at(start)})
		s.skip(false)
		if !s.peek(".") {
			break
		}
		s.i++
	}
	return parts
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// stringEnd returns the offset just past the string starting at s.i with
// delimiter q (single-line).
func (s *scanner) stringEnd(q string, escapes bool) int {
	j := s.i + len(q)
	for j < len(s.src) {
		switch {
		case escapes && s.src[j] == '\\':
			j += 2
		case strings.HasPrefix(s.src[j:], q):
			return j + len(q)
		case len(q) == 1 && s.src[j] == '\n':
			return j // unterminated; the parser has complained already
		default:
			j++
		}
	}
	return len(s.src)
}

func (s *scanner) document() {
	table := ""
	for {
		s.skip(true)
		if s.i >= len(s.src) {
			return
		}
		switch {
		case s.peek("[["):
			start := s.at(s.i)
			s.i += 2
			parts := s.key()
			s.skipPast("]]")
			table = s.header(parts[:max(0, len(parts)-1)])
			if len(parts) > 0 {
				last := parts[len(parts)-1]
				full := join(table, last.name)
				s.record(full, last.at)
				n := s.arrays[full]
				s.arrays[full] = n + 1
				table = join(full, strconv.Itoa(n))
				s.record(table, last.at)
				s.recordVal(table, start)
			}
		case s.peek("["):
			start := s.at(s.i)
			s.i++
			parts := s.key()
			s.skipPast("]")
			table = s.header(parts)
			s.recordVal(table, start)
		default:
			if !s.keyValue(table) {
				s.skipLine()
			}
		}
	}
}

// header resolves the parts of a table header to a concrete path: a part
// naming an array of tables refers to its last element.
func (s *scanner) header(parts []keyPart) string {
	cur := ""
	for _, p := range parts {
		cur = join(cur, p.name)
		s.record(cur, p.at)
		if n := s.arrays[cur]; n > 0 {
			cur = join(cur, strconv.Itoa(n-1))
		}
	}
	return cur
}

func (s *scanner) skipPast(tok string) {
	if j := strings.Index(s.src[s.i:], tok); j >= 0 && !strings.Contains(s.src[s.i:s.i+j], "\n") {
		s.i += j + len(tok)
	}
}

func (s *scanner) skipLine() {
	for s.i < len(s.src) && s.src[s.i] != '\n' {
		s.i++
	}
}

// keyValue reads `key = value` under table; false if there is no key.
func (s *scanner) keyValue(table string) bool {
	parts := s.key()
	if len(parts) == 0 {
		return false
	}
	cur := table
	for _, p := range parts {
		cur = join(cur, p.name)
		s.record(cur, p.at)
	}
	s.skip(false)
	if !s.peek("=") {
		return false
	}
	s.i++
	s.skip(false)
	s.value(cur)
	return true
}

// value reads the value at s.i, recording it and its contents under path.
func (s *scanner) value(path string) {
	s.recordVal(path, s.at(s.i))
	switch {
	case s.peek(`"""`):
		s.i = s.multiEnd(`"""`, true)
	case s.peek(`'''`):
		s.i = s.multiEnd(`'''`, false)
	case s.peek(`"`):
		s.i = s.stringEnd(`"`, true)
	case s.peek(`'`):
		s.i = s.stringEnd(`'`, false)
	case s.peek("["):
		s.i++
		for n := 0; ; n++ {
			s.skip(true)
			if s.i >= len(s.src) || s.peek("]") {
				break
			}
			before := s.i
			s.value(join(path, strconv.Itoa(n)))
			s.skip(true)
			if s.peek(",") {
				s.i++
			} else if s.i == before {
				break
			}
		}
		if s.peek("]") {
			s.i++
		}
	case s.peek("{"):
		s.i++
		for {
			s.skip(true)
			if s.i >= len(s.src) || s.peek("}") {
				break
			}
			if !s.keyValue(path) {
				break
			}
			s.skip(true)
			if s.peek(",") {
				s.i++
			}
		}
		if s.peek("}") {
			s.i++
		}
	default:
		for s.i < len(s.src) && !strings.ContainsRune(",]}\n#", rune(s.src[s.i])) {
			s.i++
		}
	}
}

// multiEnd returns the offset past a multi-line string; up to two extra
// quotes before the closing delimiter belong to the string.
func (s *scanner) multiEnd(q string, escapes bool) int {
	j := s.i + 3
	for j < len(s.src) {
		switch {
		case escapes && s.src[j] == '\\':
			j += 2
		case strings.HasPrefix(s.src[j:], q):
			j += 3
			for k := 0; k < 2 && j < len(s.src) && s.src[j] == q[0]; k++ {
				j++
			}
			return j
		default:
			j++
		}
	}
	return len(s.src)
}
