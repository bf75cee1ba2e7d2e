package qmat

import (
	"encoding/binary"
	"math"
)

// The portable kernels. The dequantizers compute ggml's reference values
// with the same float32 operations in the same order; products that feed a
// sum are converted to float32 explicitly, which keeps the compiler from
// fusing them into FMAs where it may. The dot kernels sum each block's
// products in float32 and scale the block sum once.

var genericDots = map[Type]dotsFunc{
	Q8_0: rowsGeneric(dotQ8_0),
	Q4_0: rowsGeneric(dotQ4_0),
	Q4_K: rowsGeneric(dotQ4K),
	Q6_K: rowsGeneric(dotQ6K),
}

var genericDequant = map[Type]func(dst []float32, src []byte){
	Q8_0: blocksGeneric(Q8_0, dequantQ8_0),
	Q4_0: blocksGeneric(Q4_0, dequantQ4_0),
	Q4_K: blocksGeneric(Q4_K, dequantQ4K),
	Q6_K: blocksGeneric(Q6_K, dequantQ6K),
}

// rowsGeneric turns a one-row dot product into a dotsFunc.
func rowsGeneric(dot func(w []byte, x, aux []float32) float32) dotsFunc {
	return func(w []byte, stride, rows int, x, aux []float32, y []float32) {
		if rows == 1 {
			y[0] = dot(w, x, aux)
			return
		}
		for r := range rows {
			y[r] = dot(w[r*stride:(r+1)*stride], x, aux)
		}
	}
}

// blocksGeneric turns a one-block dequantizer into one over whole rows.
func blocksGeneric(t Type, dq func(y []float32, b []byte)) func(dst []float32, src []byte) {
	bs, bb := t.BlockSize(), t.BlockBytes()
	return func(dst []float32, src []byte) {
		for i := range len(src) / bb {
			dq(dst[i*bs:(i+1)*bs], src[i*bb:(i+1)*bb])
		}
	}
}

// fp16 converts IEEE binary16 bits to float32 exactly (NaNs made quiet).
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
		f := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			return -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

func half(b []byte, i int) float32 { return fp16(binary.LittleEndian.Uint16(b[i:])) }

func dotQ8_0(w []byte, x, _ []float32) float32 {
	var acc float32
	for len(w) >= 34 {
		q := w[2:34]
		xb := x[:32]
		var s0, s1, s2, s3 float32
		for j := 0; j < 32; j += 4 {
			s0 += float32(float32(int8(q[j])) * xb[j])
			s1 += float32(float32(int8(q[j+1])) * xb[j+1])
			s2 += float32(float32(int8(q[j+2])) * xb[j+2])
			s3 += float32(float32(int8(q[j+3])) * xb[j+3])
		}
		acc += half(w, 0) * ((s0 + s1) + (s2 + s3))
		w, x = w[34:], x[32:]
	}
	return acc
}

func dequantQ8_0(y []float32, b []byte) {
	d := half(b, 0)
	for j := range 32 {
		y[j] = float32(int8(b[2+j])) * d
	}
}

func dotQ4_0(w []byte, x, _ []float32) float32 {
	var acc float32
	for len(w) >= 18 {
		q := w[2:18]
		var s0, s1 float32
		for j := range 16 {
			s0 += float32(float32(int32(q[j]&0xf)-8) * x[j])
			s1 += float32(float32(int32(q[j]>>4)-8) * x[j+16])
		}
		acc += half(w, 0) * (s0 + s1)
		w, x = w[18:], x[32:]
	}
	return acc
}

func dequantQ4_0(y []float32, b []byte) {
	d := half(b, 0)
	qs := b[2:18]
	for j := range 16 {
		y[j] = float32(int32(qs[j]&0x0f)-8) * d
		y[j+16] = float32(int32(qs[j]>>4)-8) * d
	}
}

// scaleMinK4 unpacks the j-th 6-bit scale and min of a Q4_K block.
func scaleMinK4(j int, q []byte) (d, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// dotQ4K uses the sums of x over each 32-element sub-block (aux): the
// sub-block's mins multiply them once.
func dotQ4K(w []byte, x, xsum []float32) float32 {
	var acc float32
	for len(w) >= 144 {
		d, dmin := half(w, 0), half(w, 2)
		scales, q := w[4:16], w[16:144]
		for c := range 4 {
			qc := q[32*c : 32*c+32]
			xl, xh := x[64*c:64*c+32], x[64*c+32:64*c+64]
			var sl, sh float32
			for l := range 32 {
				sl += float32(float32(qc[l]&0xf) * xl[l])
				sh += float32(float32(qc[l]>>4) * xh[l])
			}
			sc, m := scaleMinK4(2*c, scales)
			acc += float32(d*float32(sc))*sl - float32(dmin*float32(m))*xsum[2*c]
			sc, m = scaleMinK4(2*c+1, scales)
			acc += float32(d*float32(sc))*sh - float32(dmin*float32(m))*xsum[2*c+1]
		}
		w, x, xsum = w[144:], x[256:], xsum[8:]
	}
	return acc
}

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

// q6 returns the four 6-bit quants (minus 32) that byte l of a Q6_K half
// block's ql (and l+32) and qh encode: elements l, l+32, l+64 and l+96.
func q6(ql, qh []byte, l int) (q1, q2, q3, q4 int32) {
	q1 = int32(ql[l]&0xf|((qh[l]>>0)&3)<<4) - 32
	q2 = int32(ql[l+32]&0xf|((qh[l]>>2)&3)<<4) - 32
	q3 = int32(ql[l]>>4|((qh[l]>>4)&3)<<4) - 32
	q4 = int32(ql[l+32]>>4|((qh[l]>>6)&3)<<4) - 32
	return
}

func dotQ6K(w []byte, x, _ []float32) float32 {
	var acc float32
	for len(w) >= 210 {
		ql, qh, sc := w[0:128], w[128:192], w[192:208]
		d := half(w, 208)
		for range 2 {
			var s [8]float32 // sub-blocks of 16: l/16 + 2*quarter
			for l := range 32 {
				q1, q2, q3, q4 := q6(ql, qh, l)
				is := l / 16
				s[is] += float32(float32(q1) * x[l])
				s[is+2] += float32(float32(q2) * x[l+32])
				s[is+4] += float32(float32(q3) * x[l+64])
				s[is+6] += float32(float32(q4) * x[l+96])
			}
			for i, v := range s {
				acc += float32(d*float32(int8(sc[i]))) * v
			}
			ql, qh, sc, x = ql[64:], qh[32:], sc[8:], x[128:]
		}
		w = w[210:]
	}
	return acc
}

func dequantQ6K(y []float32, b []byte) {
	ql, qh, sc := b[0:128], b[128:192], b[192:208]
	d := half(b, 208)
	for range 2 {
		for l := range 32 {
			is := l / 16
			q1, q2, q3, q4 := q6(ql, qh, l)
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
