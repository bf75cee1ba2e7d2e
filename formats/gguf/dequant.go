package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// This file decodes ggml tensor data to float32 exactly as ggml's reference
// dequantize_row_* functions (ggml-quants.c) do, block by block: the same
// bit layouts, the same float32 operations in the same order. Products that
// feed a sum are converted to float32 explicitly, which keeps the Go
// compiler from fusing them into FMAs on the architectures where it may, so
// results are bit-identical to ggml compiled without FMA contraction.

// dequantizer decodes one block of a type: len(dst) == block elements,
// len(src) == block bytes.
type dequantizer func(dst []float32, src []byte)

var dequantizers = map[GGMLType]dequantizer{
	TypeF32:    dequantF32,
	TypeF16:    dequantF16,
	TypeBF16:   dequantBF16,
	TypeQ4_0:   dequantQ4_0,
	TypeQ4_1:   dequantQ4_1,
	TypeQ5_0:   dequantQ5_0,
	TypeQ5_1:   dequantQ5_1,
	TypeQ8_0:   dequantQ8_0,
	TypeQ2_K:   dequantQ2K,
	TypeQ3_K:   dequantQ3K,
	TypeQ4_K:   dequantQ4K,
	TypeQ5_K:   dequantQ5K,
	TypeQ6_K:   dequantQ6K,
	TypeIQ4_NL: dequantIQ4NL,
	TypeIQ4_XS: dequantIQ4XS,
}

// dequantOrder lists the dequantizable types in the order error messages
// name them.
var dequantOrder = []GGMLType{
	TypeF32, TypeF16, TypeBF16, TypeQ4_0, TypeQ4_1, TypeQ5_0, TypeQ5_1, TypeQ8_0,
	TypeQ2_K, TypeQ3_K, TypeQ4_K, TypeQ5_K, TypeQ6_K, TypeIQ4_NL, TypeIQ4_XS,
}

// DequantizableTypes returns the ggml types that Dequantize decodes, in
// the order ggml documents them (plain types first).
func DequantizableTypes() []GGMLType { return append([]GGMLType(nil), dequantOrder...) }

// Dequantizable reports whether Dequantize decodes tensors of this type.
func (t GGMLType) Dequantizable() bool { _, ok := dequantizers[t]; return ok }

// CheckDecodable refuses, before any weight is read, a file with tensors
// of a ggml type Dequantize cannot decode (IQ2_XXS, say), naming the first
// such tensor, how many there are and their size, and the types it reads.
// The error wraps ErrUnsupportedType.
func (f *File) CheckDecodable() error {
	var first *TensorInfo
	var n int
	var bytes uint64
	for _, ti := range f.Tensors() {
		if !ti.Type.Dequantizable() {
			if first == nil {
				first = &ti
			}
			n++
			bytes += ti.Size
		}
	}
	if first == nil {
		return nil
	}
	return fmt.Errorf("%s: tensor %s is %s, a ggml type surgeon has no kernel or decoder for yet (%d of %d tensors, %d MiB, have such types; it reads %s): %w",
		f.Name(), first.Name, first.Type, n, len(f.Tensors()), bytes>>20, supportedList(), ErrUnsupportedType)
}

// supportedList names the dequantizable types for error messages.
func supportedList() string {
	names := make([]string, len(dequantOrder))
	for i, t := range dequantOrder {
		names[i] = t.String()
	}
	return strings.Join(names, ", ")
}

// Dequantize decodes len(dst) elements of type t from src into dst, as
// ggml's dequantize_row_* does. len(dst) must be a whole number of blocks
// and src exactly their bytes, so any block-aligned range of a tensor (a
// row, a slice of rows) can be decoded on its own. The error wraps
// ErrUnsupportedType for types it cannot decode.
func Dequantize(t GGMLType, dst []float32, src []byte) error {
	dq, ok := dequantizers[t]
	if !ok {
		return fmt.Errorf("ggml type %s cannot be dequantized (supported: %s): %w", t, supportedList(), ErrUnsupportedType)
	}
	bs, bb := t.BlockSize(), t.BlockBytes()
	if len(dst)%bs != 0 {
		return fmt.Errorf("%d %s elements are not a whole number of %d-element blocks", len(dst), t, bs)
	}
	nb := len(dst) / bs
	if len(src) != nb*bb {
		return fmt.Errorf("%d %s elements need %d bytes, got %d", len(dst), t, nb*bb, len(src))
	}
	if bs == 1 {
		// Plain types: one call over the whole range.
		dq(dst, src)
		return nil
	}
	for i := range nb {
		dq(dst[i*bs:(i+1)*bs], src[i*bb:(i+1)*bb])
	}
	return nil
}

// fp16 converts IEEE binary16 bits to float32 as ggml's
// GGML_FP16_TO_FP32 does: exactly, with NaNs made quiet.
func fp16(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		if mant != 0 {
			return math.Float32frombits(sign | 0x7fc00000 | mant<<13)
		}
		return math.Float32frombits(sign | 0x7f800000)
	case exp == 0:
		f := float32(mant) * (1.0 / (1 << 24)) // exact
		if sign != 0 {
			return -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

func le16(b []byte, i int) uint16 { return binary.LittleEndian.Uint16(b[i:]) }

func half(b []byte, i int) float32 { return fp16(le16(b, i)) }

func dequantF32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func dequantF16(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = half(src, 2*i)
	}
}

func dequantBF16(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(le16(src, 2*i)) << 16)
	}
}

// Q4_0: d (f16), qs[16]; x = (q - 8) * d, low nibbles first.
func dequantQ4_0(y []float32, b []byte) {
	d := half(b, 0)
	qs := b[2:18]
	for j := range 16 {
		y[j] = float32(int32(qs[j]&0x0f)-8) * d
		y[j+16] = float32(int32(qs[j]>>4)-8) * d
	}
}

// Q4_1: d, m (f16), qs[16]; x = q*d + m.
func dequantQ4_1(y []float32, b []byte) {
	d, m := half(b, 0), half(b, 2)
	qs := b[4:20]
	for j := range 16 {
		y[j] = float32(float32(qs[j]&0x0f)*d) + m
		y[j+16] = float32(float32(qs[j]>>4)*d) + m
	}
}

// Q5_0: d (f16), qh (u32 fifth bits), qs[16]; x = (q - 16) * d.
func dequantQ5_0(y []float32, b []byte) {
	d := half(b, 0)
	qh := binary.LittleEndian.Uint32(b[2:])
	qs := b[6:22]
	for j := range 16 {
		xh0 := uint8((qh>>j)<<4) & 0x10
		xh1 := uint8(qh>>(j+12)) & 0x10
		y[j] = float32(int32(qs[j]&0x0f|xh0)-16) * d
		y[j+16] = float32(int32(qs[j]>>4|xh1)-16) * d
	}
}

// Q5_1: d, m (f16), qh (u32), qs[16]; x = q*d + m.
func dequantQ5_1(y []float32, b []byte) {
	d, m := half(b, 0), half(b, 2)
	qh := binary.LittleEndian.Uint32(b[4:])
	qs := b[8:24]
	for j := range 16 {
		xh0 := uint8((qh>>j)<<4) & 0x10
		xh1 := uint8(qh>>(j+12)) & 0x10
		y[j] = float32(float32(qs[j]&0x0f|xh0)*d) + m
		y[j+16] = float32(float32(qs[j]>>4|xh1)*d) + m
	}
}

// Q8_0: d (f16), qs[32] int8; x = q * d.
func dequantQ8_0(y []float32, b []byte) {
	d := half(b, 0)
	for j := range 32 {
		y[j] = float32(int8(b[2+j])) * d
	}
}

// Q2_K: scales[16] (4-bit scale | 4-bit min), qs[64], d, dmin (f16);
// x = d*sc*q - dmin*m over 16 sub-blocks of 16.
func dequantQ2K(y []float32, b []byte) {
	scales, q := b[0:16], b[16:80]
	d, dmin := half(b, 80), half(b, 82)
	is := 0
	for n := 0; n < 256; n += 128 {
		shift := 0
		for range 4 {
			sc := scales[is]
			is++
			dl, ml := d*float32(sc&0xf), dmin*float32(sc>>4)
			for l := range 16 {
				y[l] = float32(dl*float32((q[l]>>shift)&3)) - ml
			}
			sc = scales[is]
			is++
			dl, ml = d*float32(sc&0xf), dmin*float32(sc>>4)
			for l := range 16 {
				y[16+l] = float32(dl*float32((q[l+16]>>shift)&3)) - ml
			}
			y = y[32:]
			shift += 2
		}
		q = q[32:]
	}
}

// q3KScales unpacks the sixteen 6-bit Q3_K scales (12 bytes) as ggml does,
// through four little-endian words.
func q3KScales(s []byte) [16]int8 {
	const kmask1, kmask2 = 0x03030303, 0x0f0f0f0f
	a0 := binary.LittleEndian.Uint32(s[0:])
	a1 := binary.LittleEndian.Uint32(s[4:])
	tmp := binary.LittleEndian.Uint32(s[8:])
	aux := [4]uint32{
		a0&kmask2 | ((tmp>>0)&kmask1)<<4,
		a1&kmask2 | ((tmp>>2)&kmask1)<<4,
		(a0>>4)&kmask2 | ((tmp>>4)&kmask1)<<4,
		(a1>>4)&kmask2 | ((tmp>>6)&kmask1)<<4,
	}
	var out [16]int8
	for i := range out {
		out[i] = int8(aux[i/4] >> (8 * (i % 4)))
	}
	return out
}

// Q3_K: hmask[32], qs[64], scales[12] (6-bit), d (f16);
// x = d*(sc-32)*(q - (high bit ? 0 : 4)).
func dequantQ3K(y []float32, b []byte) {
	hm, q := b[0:32], b[32:96]
	scales := q3KScales(b[96:108])
	dAll := half(b, 108)
	is := 0
	m := uint8(1)
	for n := 0; n < 256; n += 128 {
		shift := 0
		for range 4 {
			dl := dAll * float32(int32(scales[is])-32)
			is++
			for l := range 16 {
				v := int32((q[l]>>shift)&3) - hsub(hm[l], m)
				y[l] = dl * float32(v)
			}
			dl = dAll * float32(int32(scales[is])-32)
			is++
			for l := range 16 {
				v := int32((q[l+16]>>shift)&3) - hsub(hm[l+16], m)
				y[16+l] = dl * float32(v)
			}
			y = y[32:]
			shift += 2
			m <<= 1
		}
		q = q[32:]
	}
}

func hsub(h, m uint8) int32 {
	if h&m != 0 {
		return 0
	}
	return 4
}

// scaleMinK4 unpacks the j-th 6-bit scale and min of a Q4_K/Q5_K block
// (ggml's get_scale_min_k4).
func scaleMinK4(j int, q []byte) (d, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// Q4_K: d, dmin (f16), scales[12], qs[128]; x = d*sc*q - dmin*m over 8
// sub-blocks of 32.
func dequantQ4K(y []float32, b []byte) {
	d, dmin := half(b, 0), half(b, 2)
	scales, q := b[4:16], b[16:144]
	is := 0
	for j := 0; j < 256; j += 64 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		for l := range 32 {
			y[l] = float32(d1*float32(q[l]&0xf)) - m1
		}
		for l := range 32 {
			y[32+l] = float32(d2*float32(q[l]>>4)) - m2
		}
		y = y[64:]
		q = q[32:]
		is += 2
	}
}

// Q5_K: d, dmin (f16), scales[12], qh[32], qs[128].
func dequantQ5K(y []float32, b []byte) {
	d, dmin := half(b, 0), half(b, 2)
	scales, qh, ql := b[4:16], b[16:48], b[48:176]
	is := 0
	u1, u2 := uint8(1), uint8(2)
	for j := 0; j < 256; j += 64 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		for l := range 32 {
			v := int32(ql[l] & 0xf)
			if qh[l]&u1 != 0 {
				v += 16
			}
			y[l] = float32(d1*float32(v)) - m1
		}
		for l := range 32 {
			v := int32(ql[l] >> 4)
			if qh[l]&u2 != 0 {
				v += 16
			}
			y[32+l] = float32(d2*float32(v)) - m2
		}
		y = y[64:]
		ql = ql[32:]
		is += 2
		u1 <<= 2
		u2 <<= 2
	}
}

// Q6_K: ql[128], qh[64], scales[16] int8, d (f16); x = d*sc*(q - 32).
func dequantQ6K(y []float32, b []byte) {
	ql, qh, sc := b[0:128], b[128:192], b[192:208]
	d := half(b, 208)
	for n := 0; n < 256; n += 128 {
		for l := range 32 {
			is := l / 16
			q1 := int32(ql[l]&0xf|((qh[l]>>0)&3)<<4) - 32
			q2 := int32(ql[l+32]&0xf|((qh[l]>>2)&3)<<4) - 32
			q3 := int32(ql[l]>>4|((qh[l]>>4)&3)<<4) - 32
			q4 := int32(ql[l+32]>>4|((qh[l]>>6)&3)<<4) - 32
			y[l] = d * float32(int8(sc[is])) * float32(q1)
			y[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			y[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			y[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
		y = y[128:]
		ql = ql[64:]
		qh = qh[32:]
		sc = sc[8:]
	}
}

// kvaluesIQ4NL is the non-linear 4-bit codebook of IQ4_NL and IQ4_XS.
var kvaluesIQ4NL = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// IQ4_NL: d (f16), qs[16]; x = d * kvalues[q].
func dequantIQ4NL(y []float32, b []byte) {
	d := half(b, 0)
	qs := b[2:18]
	for j := range 16 {
		y[j] = d * float32(kvaluesIQ4NL[qs[j]&0xf])
		y[j+16] = d * float32(kvaluesIQ4NL[qs[j]>>4])
	}
}

// IQ4_XS: d (f16), scales_h (u16), scales_l[4], qs[128]; eight sub-blocks
// of 32 with 6-bit scales.
func dequantIQ4XS(y []float32, b []byte) {
	d := half(b, 0)
	scalesH := le16(b, 2)
	scalesL := b[4:8]
	qs := b[8:136]
	for ib := range 8 {
		ls := int32((scalesL[ib/2]>>(4*(ib%2)))&0xf) | int32((scalesH>>(2*ib))&3)<<4
		dl := d * float32(ls-32)
		for j := range 16 {
			y[j] = dl * float32(kvaluesIQ4NL[qs[j]&0xf])
			y[j+16] = dl * float32(kvaluesIQ4NL[qs[j]>>4])
		}
		y = y[32:]
		qs = qs[16:]
	}
}
