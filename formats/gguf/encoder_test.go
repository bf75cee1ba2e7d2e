package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
)

// This file holds a tiny test-only GGUF encoder for building synthetic files.

// testKV is one metadata pair. The value's Go type picks the GGUF type:
// uint8 ... float64, bool, string, and slices (nested slices for nested
// arrays).
type testKV struct {
	key string
	val any
}

// testTensor is one tensor. Offset, when non-nil, overrides the computed
// offset.
type testTensor struct {
	name   string
	dims   []uint64
	typ    GGMLType
	data   []byte
	offset *uint64
}

// testFile describes a synthetic GGUF file.
type testFile struct {
	magic   string // default "GGUF"
	version uint32 // default 3
	align   uint64 // layout alignment; default 32 (set general.alignment too)
	kvs     []testKV
	tensors []testTensor
}

func (tf testFile) bytes() []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	magic, version, align := tf.magic, tf.version, tf.align
	if magic == "" {
		magic = Magic
	}
	if version == 0 {
		version = 3
	}
	if align == 0 {
		align = DefaultAlignment
	}
	b.WriteString(magic)
	_ = binary.Write(&b, le, version)
	_ = binary.Write(&b, le, uint64(len(tf.tensors)))
	_ = binary.Write(&b, le, uint64(len(tf.kvs)))
	for _, kv := range tf.kvs {
		writeString(&b, kv.key)
		rv := reflect.ValueOf(kv.val)
		_ = binary.Write(&b, le, uint32(goValueType(rv.Type())))
		writeValue(&b, rv)
	}
	var off uint64
	offsets := make([]uint64, len(tf.tensors))
	for i, t := range tf.tensors {
		off = alignUp(off, align)
		offsets[i] = off
		if t.offset != nil {
			offsets[i] = *t.offset
		}
		off += uint64(len(t.data))
		writeString(&b, t.name)
		_ = binary.Write(&b, le, uint32(len(t.dims)))
		for _, d := range t.dims {
			_ = binary.Write(&b, le, d)
		}
		_ = binary.Write(&b, le, uint32(t.typ))
		_ = binary.Write(&b, le, offsets[i])
	}
	if len(tf.tensors) == 0 {
		return b.Bytes()
	}
	for uint64(b.Len())%align != 0 {
		b.WriteByte(0)
	}
	start := uint64(b.Len())
	var pos uint64
	for _, t := range tf.tensors {
		pos = alignUp(pos, align)
		for uint64(b.Len()) < start+pos {
			b.WriteByte(0)
		}
		b.Write(t.data)
		pos += uint64(len(t.data))
	}
	return b.Bytes()
}

func writeString(b *bytes.Buffer, s string) {
	_ = binary.Write(b, binary.LittleEndian, uint64(len(s)))
	b.WriteString(s)
}

func goValueType(t reflect.Type) ValueType {
	switch t.Kind() {
	case reflect.Uint8:
		return Uint8
	case reflect.Int8:
		return Int8
	case reflect.Uint16:
		return Uint16
	case reflect.Int16:
		return Int16
	case reflect.Uint32:
		return Uint32
	case reflect.Int32:
		return Int32
	case reflect.Float32:
		return Float32
	case reflect.Bool:
		return Bool
	case reflect.String:
		return String
	case reflect.Slice:
		return Array
	case reflect.Uint64:
		return Uint64
	case reflect.Int64:
		return Int64
	case reflect.Float64:
		return Float64
	}
	panic(fmt.Sprintf("no GGUF type for %v", t))
}

func writeValue(b *bytes.Buffer, rv reflect.Value) {
	le := binary.LittleEndian
	switch rv.Kind() {
	case reflect.String:
		writeString(b, rv.String())
	case reflect.Bool:
		if rv.Bool() {
			b.WriteByte(1)
		} else {
			b.WriteByte(0)
		}
	case reflect.Slice:
		_ = binary.Write(b, le, uint32(goValueType(rv.Type().Elem())))
		_ = binary.Write(b, le, uint64(rv.Len()))
		for i := range rv.Len() {
			writeValue(b, rv.Index(i))
		}
	default:
		_ = binary.Write(b, le, rv.Interface())
	}
}

// f32Bytes encodes float32 values little-endian.
func f32Bytes(v ...float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

// header builds the fixed header with explicit counts, for malformed files.
func header(version uint32, nTensors, nKV uint64) []byte {
	var b bytes.Buffer
	b.WriteString(Magic)
	_ = binary.Write(&b, binary.LittleEndian, version)
	_ = binary.Write(&b, binary.LittleEndian, nTensors)
	_ = binary.Write(&b, binary.LittleEndian, nKV)
	return b.Bytes()
}

// cat concatenates byte slices and little-endian encodings of fixed-size
// values.
func cat(parts ...any) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		switch v := p.(type) {
		case []byte:
			b.Write(v)
		case string:
			writeString(&b, v)
		default:
			_ = binary.Write(&b, binary.LittleEndian, v)
		}
	}
	return b.Bytes()
}

func u64p(v uint64) *uint64 { return &v }
