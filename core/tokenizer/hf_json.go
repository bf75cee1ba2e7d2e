package tokenizer

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonScan is a small reader for the large, regular parts of a
// tokenizer.json (the vocabulary and the merges), several times faster than
// encoding/json's reflection for a 33 MB file. The input has already been
// validated by encoding/json.
type jsonScan struct {
	data []byte
	pos  int
}

var errJSON = errors.New("malformed JSON")

func (j *jsonScan) ws() {
	for j.pos < len(j.data) {
		switch j.data[j.pos] {
		case ' ', '\t', '\n', '\r':
			j.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (j *jsonScan) peek() byte {
	j.ws()
	if j.pos >= len(j.data) {
		return 0
	}
	return j.data[j.pos]
}

func (j *jsonScan) expect(c byte) error {
	if j.peek() != c {
		return fmt.Errorf("%w: want %q at byte %d", errJSON, c, j.pos)
	}
	j.pos++
	return nil
}

// str reads a JSON string.
func (j *jsonScan) str() (string, error) {
	if err := j.expect('"'); err != nil {
		return "", err
	}
	start := j.pos
	for j.pos < len(j.data) {
		c := j.data[j.pos]
		if c == '"' {
			s := string(j.data[start:j.pos])
			j.pos++
			return s, nil
		}
		if c == '\\' {
			return j.strSlow(start)
		}
		j.pos++
	}
	return "", fmt.Errorf("%w: unterminated string", errJSON)
}

func (j *jsonScan) strSlow(start int) (string, error) {
	buf := append([]byte(nil), j.data[start:j.pos]...)
	for j.pos < len(j.data) {
		c := j.data[j.pos]
		switch {
		case c == '"':
			j.pos++
			return string(buf), nil
		case c != '\\':
			buf = append(buf, c)
			j.pos++
			continue
		}
		if j.pos+1 >= len(j.data) {
			break
		}
		e := j.data[j.pos+1]
		j.pos += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := j.hex4()
			if !ok {
				return "", fmt.Errorf("%w: bad \\u escape", errJSON)
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if j.pos+1 < len(j.data) && j.data[j.pos] == '\\' && j.data[j.pos+1] == 'u' {
					save := j.pos
					j.pos += 2
					if x, ok := j.hex4(); ok {
						r2 = x
					} else {
						j.pos = save
					}
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
				} else {
					r = utf8.RuneError
					if r2 >= 0 {
						j.pos -= 6 // not a pair: read the second escape again
					}
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", fmt.Errorf("%w: bad escape", errJSON)
		}
	}
	return "", fmt.Errorf("%w: unterminated string", errJSON)
}

func (j *jsonScan) hex4() (rune, bool) {
	if j.pos+4 > len(j.data) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(j.data[j.pos:j.pos+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	j.pos += 4
	return rune(v), true
}

// number reads a JSON number's text.
func (j *jsonScan) number() (string, error) {
	j.ws()
	start := j.pos
	for j.pos < len(j.data) {
		c := j.data[j.pos]
		if c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' || '0' <= c && c <= '9' {
			j.pos++
			continue
		}
		break
	}
	if j.pos == start {
		return "", fmt.Errorf("%w: want a number at byte %d", errJSON, start)
	}
	return string(j.data[start:j.pos]), nil
}

func (j *jsonScan) int() (int, error) {
	j.ws()
	v, neg, start := 0, false, j.pos
	if j.pos < len(j.data) && j.data[j.pos] == '-' {
		neg = true
		j.pos++
	}
	for j.pos < len(j.data) && '0' <= j.data[j.pos] && j.data[j.pos] <= '9' {
		v = v*10 + int(j.data[j.pos]-'0')
		if v > 1<<40 {
			return 0, fmt.Errorf("%w: integer out of range at byte %d", errJSON, start)
		}
		j.pos++
	}
	if j.pos == start || neg && j.pos == start+1 {
		return 0, fmt.Errorf("%w: want an integer at byte %d", errJSON, start)
	}
	if j.pos < len(j.data) && (j.data[j.pos] == '.' || j.data[j.pos] == 'e' || j.data[j.pos] == 'E') {
		return 0, fmt.Errorf("%w: want an integer at byte %d", errJSON, start)
	}
	if neg {
		v = -v
	}
	return v, nil
}

// list calls item for each element of a JSON array.
func (j *jsonScan) list(item func(i int) error) error {
	if err := j.expect('['); err != nil {
		return err
	}
	if j.peek() == ']' {
		j.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := item(i); err != nil {
			return err
		}
		switch j.peek() {
		case ',':
			j.pos++
		case ']':
			j.pos++
			return nil
		default:
			return fmt.Errorf("%w: want , or ] at byte %d", errJSON, j.pos)
		}
	}
}

// object calls item for each key of a JSON object, the scanner positioned
// at its value.
func (j *jsonScan) object(item func(key string) error) error {
	if err := j.expect('{'); err != nil {
		return err
	}
	if j.peek() == '}' {
		j.pos++
		return nil
	}
	for {
		k, err := j.str()
		if err != nil {
			return err
		}
		if err := j.expect(':'); err != nil {
			return err
		}
		if err := item(k); err != nil {
			return err
		}
		switch j.peek() {
		case ',':
			j.pos++
		case '}':
			j.pos++
			return nil
		default:
			return fmt.Errorf("%w: want , or } at byte %d", errJSON, j.pos)
		}
	}
}

// strBytes reads a JSON string, returning the raw bytes without a copy
// when it holds no escapes.
func (j *jsonScan) strBytes() ([]byte, error) {
	if err := j.expect('"'); err != nil {
		return nil, err
	}
	start := j.pos
	for j.pos < len(j.data) {
		c := j.data[j.pos]
		if c == '"' {
			j.pos++
			return j.data[start : j.pos-1], nil
		}
		if c == '\\' {
			s, err := j.strSlow(start)
			return []byte(s), err
		}
		j.pos++
	}
	return nil, fmt.Errorf("%w: unterminated string", errJSON)
}

// skip passes over one JSON value and returns its bytes.
func (j *jsonScan) skip() ([]byte, error) {
	j.ws()
	start := j.pos
	depth := 0
	for j.pos < len(j.data) {
		c := j.data[j.pos]
		switch c {
		case '"':
			j.pos++
			for j.pos < len(j.data) && j.data[j.pos] != '"' {
				if j.data[j.pos] == '\\' {
					j.pos++
				}
				j.pos++
			}
			if j.pos >= len(j.data) {
				return nil, fmt.Errorf("%w: unterminated string", errJSON)
			}
			j.pos++
		case '{', '[':
			depth++
			j.pos++
		case '}', ']':
			if depth == 0 {
				return j.value(start)
			}
			depth--
			j.pos++
		case ',':
			if depth == 0 {
				return j.value(start)
			}
			j.pos++
		default:
			j.pos++
		}
		if depth == 0 && (c == '"' || c == '}' || c == ']') {
			return j.value(start)
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%w: unterminated value", errJSON)
	}
	return j.value(start)
}

func (j *jsonScan) value(start int) ([]byte, error) {
	v := j.data[start:j.pos]
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\n' || v[len(v)-1] == '\t' || v[len(v)-1] == '\r') {
		v = v[:len(v)-1]
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: missing value at byte %d", errJSON, start)
	}
	return v, nil
}

// jsonFields splits a JSON object into its raw values by key.
func jsonFields(data []byte) (map[string][]byte, error) {
	j := &jsonScan{data: data}
	out := map[string][]byte{}
	err := j.object(func(k string) error {
		v, err := j.skip()
		out[k] = v
		return err
	})
	if err != nil {
		return nil, err
	}
	if j.peek() != 0 {
		return nil, fmt.Errorf("%w: data after the object at byte %d", errJSON, j.pos)
	}
	return out, nil
}
