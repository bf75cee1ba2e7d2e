package gguf

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// ValueType is the type tag of a GGUF metadata value.
type ValueType uint32

// The GGUF metadata value types, numbered as in the specification.
const (
	Uint8   ValueType = 0
	Int8    ValueType = 1
	Uint16  ValueType = 2
	Int16   ValueType = 3
	Uint32  ValueType = 4
	Int32   ValueType = 5
	Float32 ValueType = 6
	Bool    ValueType = 7
	String  ValueType = 8
	Array   ValueType = 9
	Uint64  ValueType = 10
	Int64   ValueType = 11
	Float64 ValueType = 12
)

var valueTypeNames = [...]string{
	"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64",
}

// String returns the specification's name of the type, such as "uint32".
func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return "ValueType(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// valid reports whether t is a type defined by the specification.
func (t ValueType) valid() bool { return int(t) < len(valueTypeNames) }

// fixedSize returns the encoded size of a scalar of type t, or 0 for strings
// and arrays, whose size depends on their contents.
func (t ValueType) fixedSize() int {
	switch t {
	case Uint8, Int8, Bool:
		return 1
	case Uint16, Int16:
		return 2
	case Uint32, Int32, Float32:
		return 4
	case Uint64, Int64, Float64:
		return 8
	}
	return 0
}

// minSize returns the smallest number of bytes a value of type t can occupy,
// used to bound counts before allocating.
func (t ValueType) minSize() int {
	switch t {
	case String:
		return 8 // length prefix
	case Array:
		return 12 // element type and length
	}
	return t.fixedSize()
}

// Errors returned by the metadata getters, for use with errors.Is.
var (
	// ErrMissingKey means the metadata has no value under the key.
	ErrMissingKey = errors.New("metadata key not found")
	// ErrWrongType means the value exists but has another type than asked for.
	ErrWrongType = errors.New("metadata value has the wrong type")
)

// Value is one GGUF metadata value: a scalar, a string, or an array (arrays
// may nest). The zero Value is invalid.
type Value struct {
	typ  ValueType
	elem ValueType // element type, for arrays
	// v holds uint8, int8, uint16, int16, uint32, int32, float32, bool,
	// string, uint64, int64 or float64 for scalars, and for arrays a slice
	// of those ([]uint8, ..., []string) or []Value for nested arrays.
	v any
}

// Type returns the value's type tag.
func (v Value) Type() ValueType { return v.typ }

// ElemType returns the element type of an array value (meaningless for
// scalars).
func (v Value) ElemType() ValueType { return v.elem }

// Interface returns the Go value: a scalar of the matching Go type (uint8 ...
// float64, bool, string), a typed slice for arrays of scalars or strings
// ([]uint32, []string, ...) and []Value for arrays of arrays. Slices are
// shared with the File; do not modify them.
func (v Value) Interface() any { return v.v }

// Len returns the number of elements of an array value, or 0 for scalars.
func (v Value) Len() int {
	if v.typ != Array {
		return 0
	}
	switch s := v.v.(type) {
	case []uint8:
		return len(s)
	case []int8:
		return len(s)
	case []uint16:
		return len(s)
	case []int16:
		return len(s)
	case []uint32:
		return len(s)
	case []int32:
		return len(s)
	case []float32:
		return len(s)
	case []bool:
		return len(s)
	case []string:
		return len(s)
	case []uint64:
		return len(s)
	case []int64:
		return len(s)
	case []float64:
		return len(s)
	case []Value:
		return len(s)
	}
	return 0
}

// AsUint returns an integer value of any signedness as uint64, provided it
// is not negative.
func (v Value) AsUint() (uint64, bool) {
	switch x := v.v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	case int8, int16, int32, int64:
		i, _ := v.AsInt()
		if i >= 0 {
			return uint64(i), true
		}
	}
	return 0, false
}

// AsInt returns an integer value of any signedness as int64, provided it
// fits.
func (v Value) AsInt() (int64, bool) {
	switch x := v.v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8, uint16, uint32:
		u, _ := v.AsUint()
		return int64(u), true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	}
	return 0, false
}

// AsFloat returns a float32 or float64 value as float64.
func (v Value) AsFloat() (float64, bool) {
	switch x := v.v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// AsBool returns a bool value.
func (v Value) AsBool() (bool, bool) {
	b, ok := v.v.(bool)
	return b, ok
}

// AsString returns a string value.
func (v Value) AsString() (string, bool) {
	s, ok := v.v.(string)
	return s, ok
}

// String formats the value for display; long arrays are abbreviated.
func (v Value) String() string {
	const maxShown = 8
	if v.typ != Array {
		if s, ok := v.v.(string); ok {
			return strconv.Quote(s)
		}
		return fmt.Sprint(v.v)
	}
	n := v.Len()
	var b strings.Builder
	fmt.Fprintf(&b, "[%d]%s{", n, v.elem)
	for i := 0; i < n && i < maxShown; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(v.index(i).String())
	}
	if n > maxShown {
		b.WriteString(", ...")
	}
	b.WriteString("}")
	return b.String()
}

// index returns element i of an array value as a Value.
func (v Value) index(i int) Value {
	e := Value{typ: v.elem}
	switch s := v.v.(type) {
	case []uint8:
		e.v = s[i]
	case []int8:
		e.v = s[i]
	case []uint16:
		e.v = s[i]
	case []int16:
		e.v = s[i]
	case []uint32:
		e.v = s[i]
	case []int32:
		e.v = s[i]
	case []float32:
		e.v = s[i]
	case []bool:
		e.v = s[i]
	case []string:
		e.v = s[i]
	case []uint64:
		e.v = s[i]
	case []int64:
		e.v = s[i]
	case []float64:
		e.v = s[i]
	case []Value:
		return s[i]
	}
	return e
}

// Metadata returns a copy of the metadata map. The values share array
// storage with the File.
func (f *File) Metadata() map[string]Value {
	m := make(map[string]Value, len(f.kv))
	for k, v := range f.kv {
		m[k] = v
	}
	return m
}

// Keys returns the metadata keys in file order.
func (f *File) Keys() []string { return append([]string(nil), f.keys...) }

// SortedKeys returns the metadata keys in lexical order.
func (f *File) SortedKeys() []string {
	k := f.Keys()
	sort.Strings(k)
	return k
}

// Has reports whether the metadata holds key.
func (f *File) Has(key string) bool { _, ok := f.kv[key]; return ok }

// Value returns the metadata value under key.
func (f *File) Value(key string) (Value, error) {
	v, ok := f.kv[key]
	if !ok {
		return Value{}, fmt.Errorf("%s: metadata key %q: %w", f.name, key, ErrMissingKey)
	}
	return v, nil
}

func (f *File) wrongType(key string, v Value, want string) error {
	got := v.typ.String()
	if v.typ == Array {
		got = "array of " + v.elem.String()
	}
	return fmt.Errorf("%s: metadata key %q is %s, want %s: %w", f.name, key, got, want, ErrWrongType)
}

// String returns the string value under key.
func (f *File) String(key string) (string, error) {
	v, err := f.Value(key)
	if err != nil {
		return "", err
	}
	s, ok := v.AsString()
	if !ok {
		return "", f.wrongType(key, v, "string")
	}
	return s, nil
}

// Uint returns the integer value under key as uint64. Any integer type is
// accepted as long as the value is not negative.
func (f *File) Uint(key string) (uint64, error) {
	v, err := f.Value(key)
	if err != nil {
		return 0, err
	}
	u, ok := v.AsUint()
	if !ok {
		return 0, f.wrongType(key, v, "a non-negative integer")
	}
	return u, nil
}

// Int returns the integer value under key as int64. Any integer type is
// accepted as long as the value fits.
func (f *File) Int(key string) (int64, error) {
	v, err := f.Value(key)
	if err != nil {
		return 0, err
	}
	i, ok := v.AsInt()
	if !ok {
		return 0, f.wrongType(key, v, "an integer that fits int64")
	}
	return i, nil
}

// Float returns the float32 or float64 value under key as float64.
func (f *File) Float(key string) (float64, error) {
	v, err := f.Value(key)
	if err != nil {
		return 0, err
	}
	x, ok := v.AsFloat()
	if !ok {
		return 0, f.wrongType(key, v, "float32 or float64")
	}
	return x, nil
}

// Bool returns the bool value under key.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.Value(key)
	if err != nil {
		return false, err
	}
	b, ok := v.AsBool()
	if !ok {
		return false, f.wrongType(key, v, "bool")
	}
	return b, nil
}

// Strings returns the array of strings under key. The slice is shared with
// the File; do not modify it.
func (f *File) Strings(key string) ([]string, error) {
	v, err := f.Value(key)
	if err != nil {
		return nil, err
	}
	s, ok := v.v.([]string)
	if !ok {
		return nil, f.wrongType(key, v, "array of string")
	}
	return s, nil
}

// Float32s returns the array of floats under key as a new []float32;
// float64 arrays are narrowed.
func (f *File) Float32s(key string) ([]float32, error) {
	v, err := f.Value(key)
	if err != nil {
		return nil, err
	}
	switch s := v.v.(type) {
	case []float32:
		return append([]float32(nil), s...), nil
	case []float64:
		out := make([]float32, len(s))
		for i, x := range s {
			out[i] = float32(x)
		}
		return out, nil
	}
	return nil, f.wrongType(key, v, "array of float32")
}

// Int32s returns the array of integers under key as a new []int32. Arrays of
// any integer type are accepted when every element fits int32.
func (f *File) Int32s(key string) ([]int32, error) {
	v, err := f.Value(key)
	if err != nil {
		return nil, err
	}
	if v.typ != Array || !isInteger(v.elem) {
		return nil, f.wrongType(key, v, "array of int32")
	}
	n := v.Len()
	out := make([]int32, n)
	for i := range n {
		x, ok := v.index(i).AsInt()
		if !ok || x < math.MinInt32 || x > math.MaxInt32 {
			return nil, fmt.Errorf("%s: metadata key %q: element %d does not fit int32: %w", f.name, key, i, ErrWrongType)
		}
		out[i] = int32(x)
	}
	return out, nil
}

// Uint64s returns the array of non-negative integers under key as a new
// []uint64. Arrays of any integer type are accepted.
func (f *File) Uint64s(key string) ([]uint64, error) {
	v, err := f.Value(key)
	if err != nil {
		return nil, err
	}
	if v.typ != Array || !isInteger(v.elem) {
		return nil, f.wrongType(key, v, "array of integers")
	}
	n := v.Len()
	out := make([]uint64, n)
	for i := range n {
		x, ok := v.index(i).AsUint()
		if !ok {
			return nil, fmt.Errorf("%s: metadata key %q: element %d is negative: %w", f.name, key, i, ErrWrongType)
		}
		out[i] = x
	}
	return out, nil
}

// Array returns the array value under key, for arrays of any element type.
func (f *File) Array(key string) (Value, error) {
	v, err := f.Value(key)
	if err != nil {
		return Value{}, err
	}
	if v.typ != Array {
		return Value{}, f.wrongType(key, v, "array")
	}
	return v, nil
}

func isInteger(t ValueType) bool {
	switch t {
	case Uint8, Int8, Uint16, Int16, Uint32, Int32, Uint64, Int64:
		return true
	}
	return false
}
