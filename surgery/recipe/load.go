package recipe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/surgeon-ml/surgeon/internal/textdist"
)

// Load reads the recipe at path, applies the --set overrides in sets
// ("train.lr=1e-4", "targets.0.config.r=4"), applies defaults and checks
// every value. Problems are *Error values (joined when there are several):
// unknown keys and wrong types carry the line and column where they appear
// in the file.
func Load(path string, sets []string) (*Recipe, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("recipe %s: %w", path, err)
	}
	return parse(path, string(src), sets)
}

func parse(path, src string, sets []string) (*Recipe, error) {
	doc := map[string]any{}
	if _, err := toml.Decode(src, &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: path, Line: pe.Position.Line, Col: max(1, pe.Position.Col), Msg: pe.Message, Err: err}
		}
		return nil, &Error{File: path, Msg: err.Error(), Err: err}
	}
	d := &decoder{file: path, pos: scanPositions(src), sets: map[string]string{}}
	for _, s := range sets {
		if err := d.apply(doc, s); err != nil {
			return nil, err
		}
	}
	r := defaults()
	r.Path = path
	if abs, err := filepath.Abs(path); err == nil {
		r.Dir = filepath.Dir(abs)
	} else {
		r.Dir = filepath.Dir(path)
	}
	d.decode("", doc, reflect.ValueOf(r).Elem())
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	defined := map[string]bool{}
	collect(defined, "", doc)
	r.derive()
	if err := r.validate(defined); err != nil {
		return nil, err
	}
	return r, nil
}

// collect records every concrete path of the document.
func collect(into map[string]bool, prefix string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			p := join(prefix, k)
			into[p] = true
			collect(into, p, e)
		}
	case []map[string]any:
		for i, e := range v {
			p := join(prefix, strconv.Itoa(i))
			into[p] = true
			collect(into, p, e)
		}
	case []any:
		for i, e := range v {
			p := join(prefix, strconv.Itoa(i))
			into[p] = true
			collect(into, p, e)
		}
	}
}

type decoder struct {
	file string
	pos  positions
	sets map[string]string // path set on the command line -> its --set argument
	errs errorList
}

// setOf returns the --set argument that provided path (or an enclosing
// table), or "".
func (d *decoder) setOf(path string) string {
	for p := path; ; {
		if s, ok := d.sets[p]; ok {
			return s
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			return ""
		}
		p = p[:i]
	}
}

func (d *decoder) fail(path string, at pos, msg string) {
	// Not found (the scanner is a fallback, not a parser): use the nearest
	// enclosing table's place.
	for p := path; at.Line == 0 && p != ""; {
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
		at = d.pos.val(p)
	}
	e := &Error{File: d.file, Key: path, Msg: msg}
	if s := d.setOf(path); s != "" {
		e.Set = s
	} else {
		e.Line, e.Col = at.Line, at.Col
	}
	d.errs.add(e)
}

// apply applies one --set argument to the document.
func (d *decoder) apply(doc map[string]any, arg string) error {
	fail := func(format string, args ...any) error {
		return &Error{File: d.file, Set: arg, Msg: fmt.Sprintf(format, args...)}
	}
	key, raw, ok := strings.Cut(arg, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return fail("expected key=value")
	}
	segs := strings.Split(key, ".")
	t, err := schemaType(reflect.TypeOf(Recipe{}), segs)
	if err != nil {
		return fail("%v", err)
	}
	val := setValue(raw, t)
	var cur any = doc
	for i, seg := range segs {
		here := strings.Join(segs[:i+1], ".")
		last := i == len(segs)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[seg] = val
				break
			}
			next, ok := c[seg]
			if !ok {
				if st, _ := schemaType(reflect.TypeOf(Recipe{}), segs[:i+1]); st != nil && st.Kind() == reflect.Slice {
					return fail("no element %s.%s: %s is not set", here, segs[i+1], here)
				}
				next = map[string]any{}
				c[seg] = next
			}
			cur = next
		case []map[string]any, []any:
			rv := reflect.ValueOf(c)
			n, err := strconv.Atoi(seg)
			if err != nil || n < 0 || n >= rv.Len() {
				return fail("no element %s: %s has %d", here, strings.Join(segs[:i], "."), rv.Len())
			}
			if last {
				if _, ok := c.([]map[string]any); ok {
					m, ok := val.(map[string]any)
					if !ok {
						return fail("%s: expected a table, got %s", key, typeName(val))
					}
					rv.Index(n).Set(reflect.ValueOf(m))
				} else {
					rv.Index(n).Set(reflect.ValueOf(&val).Elem())
				}
				break
			}
			cur = rv.Index(n).Interface()
		default:
			return fail("%s is a %s, not a table or array", strings.Join(segs[:i], "."), typeName(cur))
		}
	}
	d.sets[key] = arg
	return nil
}

// setValue parses the value of a --set argument as TOML, falling back to
// the bare text. A string field always gets the text unless it is quoted.
func setValue(raw string, t reflect.Type) any {
	raw = strings.TrimSpace(raw)
	var m map[string]any
	if _, err := toml.Decode("v = "+raw, &m); err == nil && len(m) == 1 {
		v := m["v"]
		if _, isString := v.(string); t != nil && t.Kind() == reflect.String && !isString {
			return raw
		}
		return v
	}
	return raw
}

// schemaType returns the Go type a dotted key leads to in t (nil inside a
// free-form table), or an error naming the first unknown part.
func schemaType(t reflect.Type, segs []string) (reflect.Type, error) {
	for i, seg := range segs {
		here := strings.Join(segs[:i+1], ".")
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case t == nil || t.Kind() == reflect.Interface:
			return nil, nil // free-form: anything goes
		case t.Kind() == reflect.Struct:
			f, ok := fieldByTag(t, seg)
			if !ok {
				return nil, fmt.Errorf("unknown key %q", here)
			}
			t = f.Type
		case t.Kind() == reflect.Map:
			t = t.Elem()
		case t.Kind() == reflect.Slice:
			if n, err := strconv.Atoi(seg); err != nil || n < 0 {
				return nil, fmt.Errorf("%s: expected an element index, got %q", strings.Join(segs[:i], "."), seg)
			}
			t = t.Elem()
		default:
			return nil, fmt.Errorf("unknown key %q: %s is a %s", here, strings.Join(segs[:i], "."), kindName(t))
		}
	}
	return t, nil
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("toml"), ","); tag == name && tag != "-" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tomlKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); tag != "" && tag != "-" {
			keys = append(keys, tag)
		}
	}
	return keys
}

// decode stores the document value v found at path into rv, reporting
// unknown keys and type mismatches.
func (d *decoder) decode(path string, v any, rv reflect.Value) {
	badType := func(want string) {
		d.fail(path, d.pos.val(path), fmt.Sprintf("%s: expected %s, got %s", path, want, describe(v)))
	}
	switch rv.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			badType("a table")
			return
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := join(path, k)
			f, ok := fieldByTag(rv.Type(), k)
			if !ok {
				msg := fmt.Sprintf("unknown key %q", join(path, toml.Key{k}.String()))
				if s := nearestKey(k, tomlKeys(rv.Type())); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", join(path, s))
				}
				d.fail(p, d.pos.key(p), msg)
				continue
			}
			d.decode(p, m[k], rv.FieldByIndex(f.Index))
		}
	case reflect.Pointer:
		n := reflect.New(rv.Type().Elem())
		d.decode(path, v, n.Elem())
		rv.Set(n)
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			badType("a string")
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			badType("a boolean (true or false)")
			return
		}
		rv.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, ok := v.(int64)
		if !ok || rv.OverflowInt(n) {
			badType("an integer")
			return
		}
		rv.SetInt(n)
	case reflect.Float64:
		switch n := v.(type) {
		case float64:
			rv.SetFloat(n)
		case int64:
			rv.SetFloat(float64(n))
		default:
			badType("a number")
		}
	case reflect.Slice:
		elems := reflect.ValueOf(v)
		switch v.(type) {
		case []any, []map[string]any:
		default:
			badType("an array")
			return
		}
		out := reflect.MakeSlice(rv.Type(), elems.Len(), elems.Len())
		for i := 0; i < elems.Len(); i++ {
			d.decode(join(path, strconv.Itoa(i)), elems.Index(i).Interface(), out.Index(i))
		}
		rv.Set(out)
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			badType("a table")
			return
		}
		rv.Set(reflect.ValueOf(m))
	default:
		panic(fmt.Sprintf("recipe: field %s of unsupported type %s", path, rv.Type()))
	}
}

// typeName names the TOML type of a decoded value.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case time.Time:
		return "datetime"
	case []any, []map[string]any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

// describe names a value's type and, for scalars, the value.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64, float64, bool:
		return fmt.Sprintf("%s %v", typeName(v), v)
	}
	return typeName(v)
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64:
		return "integer"
	case reflect.Float64:
		return "number"
	}
	return t.Kind().String()
}

// nearestKey returns the known key closest to k if it is close enough to
// be a typo.
func nearestKey(k string, known []string) string {
	near := textdist.Nearest(k, known, 1)
	if len(near) == 0 || textdist.Distance(k, near[0]) > max(2, len(k)/3) {
		return ""
	}
	return near[0]
}
