package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// lineIndex turns byte offsets into 1-based line numbers.
type lineIndex []int

// newLineIndex records the offsets of the newlines in b.
func newLineIndex(b []byte) lineIndex {
	var nl lineIndex
	for i, c := range b {
		if c == '\n' {
			nl = append(nl, i)
		}
	}
	return nl
}

// line returns the line holding offset off.
func (nl lineIndex) line(off int64) int {
	return 1 + sort.Search(len(nl), func(i int) bool { return int64(nl[i]) >= off })
}

// objectReader turns decoded JSON objects into records and remembers
// whether the label field was ever seen, so that a misspelt field name is
// reported rather than silently skipping every record.
type objectReader struct {
	o         Options
	text      string
	sawLabel  bool
	firstKeys []string
	skipped   int
}

// read converts one object found at line. skip is true when the record has
// no label while one is required.
func (r *objectReader) read(m map[string]any, line int) (rec record, skip bool, err error) {
	if r.firstKeys == nil {
		r.firstKeys = keys(m)
	}
	v, ok := m[r.text]
	if !ok {
		return record{}, false, fmt.Errorf("line %d: no field %q (fields: %s)", line, r.text, strings.Join(keys(m), ", "))
	}
	s, ok := v.(string)
	if !ok {
		return record{}, false, fmt.Errorf("line %d: field %q is %s, want a string", line, r.text, jsonKind(v))
	}
	rec = record{text: s, line: line}
	if r.o.LabelField == "" {
		return rec, false, nil
	}
	v, ok = m[r.o.LabelField]
	if ok {
		r.sawLabel = true
	}
	if !ok || v == nil {
		r.skipped++
		return record{}, true, nil
	}
	switch v := v.(type) {
	case string:
		rec.label = strings.TrimSpace(v)
	case json.Number:
		f, err := v.Float64()
		if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return record{}, false, fmt.Errorf("line %d: label field %q is %s, want an integer or a name", line, r.o.LabelField, v)
		}
		rec.label = strconv.FormatInt(int64(f), 10)
	case bool:
		rec.label = strconv.FormatBool(v)
	default:
		return record{}, false, fmt.Errorf("line %d: label field %q is %s, want a string or an integer", line, r.o.LabelField, jsonKind(v))
	}
	if rec.label == "" {
		r.skipped++
		return record{}, true, nil
	}
	rec.hasLabel = true
	return rec, false, nil
}

// finish reports a label field that no object had.
func (r *objectReader) finish() error {
	if r.o.LabelField != "" && !r.sawLabel && r.firstKeys != nil {
		return fmt.Errorf("no label field %q in any record (fields: %s)", r.o.LabelField, strings.Join(r.firstKeys, ", "))
	}
	return nil
}

// parseJSONL reads one JSON object per line, skipping blank lines.
func parseJSONL(raw []byte, o Options) ([]record, int, error) {
	r := &objectReader{o: o, text: textField(o, false)}
	var recs []record
	for i, ln := range bytes.Split(raw, []byte("\n")) {
		line := i + 1
		ln = bytes.TrimSpace(ln)
		if len(ln) == 0 {
			continue
		}
		if line == 1 {
			ln = bytes.TrimPrefix(ln, []byte("\uFEFF"))
		}
		m, err := decodeObject(ln)
		if err != nil {
			return nil, 0, fmt.Errorf("line %d: %w", line, err)
		}
		rec, skip, err := r.read(m, line)
		if err != nil {
			return nil, 0, err
		}
		if skip {
			continue
		}
		recs = append(recs, rec)
		if o.MaxExamples > 0 && len(recs) == o.MaxExamples {
			break
		}
	}
	return recs, r.skipped, r.finish()
}

// decodeObject decodes exactly one JSON object.
func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("invalid JSON object: %w", err)
	}
	if m == nil {
		return nil, errors.New("invalid JSON object: null")
	}
	if dec.More() {
		return nil, errors.New("invalid JSON: more than one value on the line")
	}
	return m, nil
}

// parseJSON reads a top-level array of objects.
func parseJSON(raw []byte, o Options) ([]record, int, error) {
	raw = bytes.TrimPrefix(raw, []byte("\uFEFF"))
	nl := newLineIndex(raw)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	located := func(err error) error {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("line %d: invalid JSON: %w", nl.line(se.Offset), err)
		case errors.As(err, &te):
			return fmt.Errorf("line %d: invalid record: %w", nl.line(te.Offset), err)
		case errors.Is(err, errEOF):
			return fmt.Errorf("line %d: invalid JSON: unexpected end of file", nl.line(int64(len(raw))))
		}
		return fmt.Errorf("line %d: invalid JSON: %w", nl.line(dec.InputOffset()), err)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, 0, located(eofAsError(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, 0, fmt.Errorf("line %d: want a JSON array of objects, found %v", nl.line(dec.InputOffset()), tok)
	}
	r := &objectReader{o: o, text: textField(o, false)}
	var recs []record
	for dec.More() {
		start := dec.InputOffset()
		for start < int64(len(raw)) && strings.IndexByte(" \t\r\n,", raw[start]) >= 0 {
			start++
		}
		line := nl.line(start)
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return nil, 0, located(eofAsError(err))
		}
		if m == nil {
			return nil, 0, fmt.Errorf("line %d: null where a record was expected", line)
		}
		rec, skip, err := r.read(m, line)
		if err != nil {
			return nil, 0, err
		}
		if skip {
			continue
		}
		recs = append(recs, rec)
		if o.MaxExamples > 0 && len(recs) == o.MaxExamples {
			return recs, r.skipped, r.finish()
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, 0, located(eofAsError(err))
	}
	return recs, r.skipped, r.finish()
}

// errEOF marks JSON that ends too early.
var errEOF = errors.New("unexpected end of JSON")

// eofAsError turns io.EOF and io.ErrUnexpectedEOF into errEOF.
func eofAsError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errEOF
	}
	return err
}

// keys returns the sorted keys of m.
func keys(m map[string]any) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
