// Package tensor holds the neutral host tensor record shared by the checkpoint
// formats, the models and the plugin protocol: a name, a dtype, a shape and the
// raw little-endian bytes, plus conversions between float encodings.
package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// DType is an element type as named by the safetensors specification.
type DType string

// The element types surgeon knows about. Names follow safetensors.
const (
	F64     DType = "F64"
	F32     DType = "F32"
	F16     DType = "F16"
	BF16    DType = "BF16"
	I64     DType = "I64"
	I32     DType = "I32"
	I16     DType = "I16"
	I8      DType = "I8"
	U64     DType = "U64"
	U32     DType = "U32"
	U16     DType = "U16"
	U8      DType = "U8"
	Bool    DType = "BOOL"
	F8E4M3  DType = "F8_E4M3"
	F8E5M2  DType = "F8_E5M2"
	F8E8M0  DType = "F8_E8M0"
	F4      DType = "F4"
	F6E2M3  DType = "F6_E2M3"
	F6E3M2  DType = "F6_E3M2"
	Unknown DType = ""
)

var dtypeSizes = map[DType]int{
	F64: 8, F32: 4, F16: 2, BF16: 2,
	I64: 8, I32: 4, I16: 2, I8: 1,
	U64: 8, U32: 4, U16: 2, U8: 1,
	Bool: 1, F8E4M3: 1, F8E5M2: 1, F8E8M0: 1,
}

// ParseDType returns the dtype with the given safetensors name.
func ParseDType(s string) (DType, error) {
	d := DType(strings.ToUpper(s))
	if _, ok := dtypeSizes[d]; ok {
		return d, nil
	}
	switch d {
	case F4, F6E2M3, F6E3M2:
		return d, nil
	}
	return Unknown, fmt.Errorf("unknown dtype %q", s)
}

// Size returns the number of bytes of one element, or 0 for sub-byte and
// unknown types.
func (d DType) Size() int { return dtypeSizes[d] }

// IsFloat reports whether the dtype is a floating-point type that can be
// converted to float32 by this package.
func (d DType) IsFloat() bool { return d == F64 || d == F32 || d == F16 || d == BF16 }

// NumElements returns the product of the dimensions (1 for a scalar). It
// returns -1 if the product overflows or a dimension is negative.
func NumElements(shape []int) int {
	n := 1
	for _, s := range shape {
		if s < 0 {
			return -1
		}
		if s != 0 && n > math.MaxInt64/s {
			return -1
		}
		n *= s
	}
	return n
}

// Tensor is a named, typed, shaped block of little-endian bytes. Data may
// alias a memory-mapped file; treat it as read-only unless you own it.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// NumElements returns the number of elements of t.
func (t *Tensor) NumElements() int { return NumElements(t.Shape) }

// Float32 converts the tensor to a new float32 slice. Floating and integer
// dtypes are supported; F8 and sub-byte types return an error.
func (t *Tensor) Float32() ([]float32, error) {
	n := t.NumElements()
	if n < 0 {
		return nil, fmt.Errorf("tensor %q: invalid shape %v", t.Name, t.Shape)
	}
	if sz := t.DType.Size(); sz == 0 || len(t.Data) != n*sz {
		if sz == 0 {
			return nil, fmt.Errorf("tensor %q: dtype %s cannot be converted to float32", t.Name, t.DType)
		}
		return nil, fmt.Errorf("tensor %q: %d bytes for %d elements of %s", t.Name, len(t.Data), n, t.DType)
	}
	out := make([]float32, n)
	if err := ToFloat32(out, t.DType, t.Data); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	return out, nil
}

// ToFloat32 decodes len(dst) elements of dtype d from src into dst.
func ToFloat32(dst []float32, d DType, src []byte) error {
	n := len(dst)
	if d.Size() == 0 || len(src) < n*d.Size() {
		return fmt.Errorf("cannot decode %d elements of %s from %d bytes", n, d, len(src))
	}
	le := binary.LittleEndian
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = HalfToFloat32(le.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le.Uint16(src[2*i:])) << 16)
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	case I64:
		for i := range dst {
			dst[i] = float32(int64(le.Uint64(src[8*i:])))
		}
	case I32:
		for i := range dst {
			dst[i] = float32(int32(le.Uint32(src[4*i:])))
		}
	case I16:
		for i := range dst {
			dst[i] = float32(int16(le.Uint16(src[2*i:])))
		}
	case I8:
		for i := range dst {
			dst[i] = float32(int8(src[i]))
		}
	case U64:
		for i := range dst {
			dst[i] = float32(le.Uint64(src[8*i:]))
		}
	case U32:
		for i := range dst {
			dst[i] = float32(le.Uint32(src[4*i:]))
		}
	case U16:
		for i := range dst {
			dst[i] = float32(le.Uint16(src[2*i:]))
		}
	case U8, Bool:
		for i := range dst {
			dst[i] = float32(src[i])
		}
	default:
		return fmt.Errorf("dtype %s cannot be converted to float32", d)
	}
	return nil
}

// FromFloat32 encodes src as dtype d (F32, F16 or BF16) into a new byte slice.
// F16 and BF16 round to nearest even.
func FromFloat32(d DType, src []float32) ([]byte, error) {
	le := binary.LittleEndian
	switch d {
	case F32:
		out := make([]byte, 4*len(src))
		for i, v := range src {
			le.PutUint32(out[4*i:], math.Float32bits(v))
		}
		return out, nil
	case F16:
		out := make([]byte, 2*len(src))
		for i, v := range src {
			le.PutUint16(out[2*i:], Float32ToHalf(v))
		}
		return out, nil
	case BF16:
		out := make([]byte, 2*len(src))
		for i, v := range src {
			le.PutUint16(out[2*i:], Float32ToBF16(v))
		}
		return out, nil
	}
	return nil, fmt.Errorf("cannot encode float32 as %s", d)
}

// HalfToFloat32 converts IEEE 754 binary16 bits to float32.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// subnormal: value = mant * 2^-24
		f := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// Float32ToHalf converts a float32 to IEEE 754 binary16 bits with
// round-to-nearest-even, saturating to infinity.
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		r := mant >> shift
		rem := mant & ((1 << shift) - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++ // may carry into the exponent, which is correct (up to inf)
	}
	return sign | uint16(r)
}

// Float32ToBF16 converts a float32 to bfloat16 bits with round-to-nearest-even.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep it quiet
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
