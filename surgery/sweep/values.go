package sweep

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// maxRange bounds the values a single range string can produce.
const maxRange = 10000

// parseRange expands a range string: comma-separated items, each a number
// ("8", "1e-4"), an integer range "a-b" (every integer from a to b) or
// "a-b:s" (step s), or a doubling range "a..b" (a, 2a, 4a, ... up to b) or
// "a..b:f" (factor f). "1,2,4..32" is 1, 2, 4, 8, 16, 32.
func parseRange(s string) ([]any, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty range")
	}
	var out []any
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		vs, err := rangeItem(item)
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
		if len(out) > maxRange {
			return nil, fmt.Errorf("range %q has more than %d values", s, maxRange)
		}
	}
	return out, nil
}

func rangeItem(item string) ([]any, error) {
	if item == "" {
		return nil, fmt.Errorf("empty item")
	}
	if n, ok := parseNumber(item); ok {
		return []any{n.value()}, nil
	}
	body, stepText, hasStep := strings.Cut(item, ":")
	if lo, hi, ok := strings.Cut(body, ".."); ok {
		a, okA := parseNumber(strings.TrimSpace(lo))
		b, okB := parseNumber(strings.TrimSpace(hi))
		f := number{2, true}
		okF := true
		if hasStep {
			f, okF = parseNumber(strings.TrimSpace(stepText))
		}
		switch {
		case !okA || !okB || !okF:
			return nil, fmt.Errorf("bad range %q: want a..b or a..b:factor with numbers", item)
		case a.f <= 0 || b.f < a.f:
			return nil, fmt.Errorf("bad range %q: want 0 < a <= b", item)
		case f.f <= 1:
			return nil, fmt.Errorf("bad range %q: the factor must be > 1", item)
		}
		isInt := a.isInt && f.isInt
		var out []any
		for k := 0; ; k++ {
			v := a.f * math.Pow(f.f, float64(k))
			if !isInt {
				v, _ = strconv.ParseFloat(strconv.FormatFloat(v, 'g', 12, 64), 64)
			}
			if v > b.f*(1+1e-12) {
				break
			}
			out = append(out, number{v, isInt}.value())
			if len(out) > maxRange {
				return nil, fmt.Errorf("range %q has more than %d values", item, maxRange)
			}
		}
		return out, nil
	}
	if lo, hi, ok := strings.Cut(body, "-"); ok {
		a, errA := strconv.ParseInt(strings.TrimSpace(lo), 10, 64)
		b, errB := strconv.ParseInt(strings.TrimSpace(hi), 10, 64)
		step := int64(1)
		var errS error
		if hasStep {
			step, errS = strconv.ParseInt(strings.TrimSpace(stepText), 10, 64)
		}
		switch {
		case errA != nil || errB != nil || errS != nil:
			return nil, fmt.Errorf("bad range %q: want a-b or a-b:step with integers", item)
		case b < a:
			return nil, fmt.Errorf("bad range %q: %d > %d", item, a, b)
		case step < 1:
			return nil, fmt.Errorf("bad range %q: the step must be >= 1", item)
		case (b-a)/step >= maxRange:
			return nil, fmt.Errorf("range %q has more than %d values", item, maxRange)
		}
		var out []any
		for v := a; v <= b; v += step {
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("bad range item %q: want a number, a-b or a..b", item)
}

// parseNumber parses an integer or a float.
func parseNumber(s string) (number, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return number{float64(i), true}, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return number{f, false}, true
	}
	return number{}, false
}

// tomlValue formats v as a TOML value for a --set override.
func tomlValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return tomlString(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", fmt.Errorf("non-finite number %v", x)
		}
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0"
		}
		return s, nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			p, err := tomlValue(e)
			if err != nil {
				return "", err
			}
			parts[i] = p
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	}
	return "", fmt.Errorf("unsupported value %v (%T): use numbers, strings, booleans or arrays of them", v, v)
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// display formats v for a point name: numbers compactly, strings as they
// are, arrays joined with '+'.
func display(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = display(e)
		}
		return strings.Join(parts, "+")
	}
	return fmt.Sprint(v)
}

// safeName replaces characters that do not belong in a folder name.
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("._,=+-", r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
