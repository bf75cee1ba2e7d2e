package qmat

import (
	"math"
	"os"
	"sync/atomic"
)

// int8On holds the switch of SetInt8Activations; SURGEON_QMAT_INT8=1 in
// the environment starts it on.
var int8On atomic.Bool

func init() {
	if os.Getenv("SURGEON_QMAT_INT8") == "1" {
		int8On.Store(true)
	}
}

// SetInt8Activations turns the int8-activation products of MatMulNTInt8
// on or off and returns the previous setting. They are off by default
// (SURGEON_QMAT_INT8=1 in the environment turns them on): on an AVX-512
// machine decoding a Q8_0 model reads its weights from memory no faster
// than the float32-activation kernels multiply them, and the
// quantization of the activations made decoding a few percent slower.
// Off, MatMulNTInt8 is MatMulNT.
func SetInt8Activations(on bool) (was bool) { return int8On.Swap(on) }

// Int8Activations reports whether MatMulNTInt8 quantizes activations.
func Int8Activations() bool { return int8On.Load() }

// int8Type reports whether the int8-activation product handles type t.
func int8Type(t Type) bool { return t == Q8_0 || t == Q4_0 }

// MatMulNTInt8 computes C[m, w.Rows] = A[m, w.Cols] * W^T, adding into C
// when acc is true, as MatMulNT does, but for a Q8_0 or Q4_0 weight and at
// most MaxDirectRows rows it first quantizes every row of A to int8 blocks
// of 32 (per block d = max|x|/127 and q = round(x/d), as ggml's Q8_0),
// then sums each block's products in int32 and scales the sum by the
// weight's and the activation's block scales: llama.cpp's arithmetic for
// these types, faster than MatMulNT's float32 activations, and within
// the activations' quantization error of it (each activation moves by at
// most d/2, a 254th of its block's largest magnitude), not to float32
// rounding. It is meant for inference; products whose gradients matter
// should call MatMulNT. Other types, more rows, or SetInt8Activations(false)
// run MatMulNT.
func MatMulNTInt8(c, a []float32, w Matrix, m int, acc bool, scratch []float32) {
	if m > MaxDirectRows || !int8Type(w.Type) || !Int8Activations() {
		MatMulNT(c, a, w, m, acc, scratch)
		return
	}
	if err := w.checkShape(); err != nil {
		panic(err)
	}
	n, k := w.Rows, w.Cols
	if len(c) < m*n || len(a) < m*k {
		panic("qmat: MatMulNTInt8: slice shorter than its dimensions")
	}
	if m <= 0 || n <= 0 {
		return
	}
	if k == 0 {
		if !acc {
			clear(c[:m*n])
		}
		return
	}
	x := quantizeRows(a, m, k)
	dot := pickIntDots(w.Type)
	directRows(c, w, m, acc, func(i int, data []byte, stride, rows int, y []float32) {
		xq, xd, xs := x.row(i)
		dot(data, stride, rows, xq, xd, xs, y)
	})
}

// quantized holds activation rows quantized to int8 blocks of 32: the
// quants q, each block's scale d, and s, eight int32 a block: -8 times
// the sum of quants 4l to 4l+3 in s[8b+l], which takes Q4_0's offset of
// 8 off the int32 lanes of the kernels' byte products.
type quantized struct {
	q      []int8
	d      []float32
	s      []int32
	k, per int
}

func (x quantized) row(i int) ([]int8, []float32, []int32) {
	return x.q[i*x.k : (i+1)*x.k], x.d[i*x.per : (i+1)*x.per], x.s[8*i*x.per : 8*(i+1)*x.per]
}

// quantizeRows quantizes the m rows of a [m, k] (k a multiple of 32) to
// int8 blocks: per block d = max|x|/127 and q = x*(1/d) rounded half away
// from zero (all zero when d is 0), in float32 as ggml's
// quantize_row_q8_0 computes them; d stays float32.
func quantizeRows(a []float32, m, k int) quantized {
	per := k / 32
	x := quantized{q: make([]int8, m*k), d: make([]float32, m*per), s: make([]int32, 8*m*per), k: k, per: per}
	for b := range m * per {
		src := a[b*32 : (b+1)*32 : (b+1)*32]
		dst := x.q[b*32 : (b+1)*32 : (b+1)*32]
		// max|x| by the bits: for floats that are not NaN, the order of
		// |x| is that of the bits without the sign.
		var amaxBits uint32
		for _, v := range src {
			amaxBits = max(amaxBits, math.Float32bits(v)&0x7fffffff)
		}
		d := math.Float32frombits(amaxBits) / 127
		x.d[b] = d
		if d == 0 {
			continue
		}
		id := 1 / d
		s := x.s[8*b : 8*b+8 : 8*b+8]
		for l := range 8 {
			var sum int32
			for j := 4 * l; j < 4*l+4; j++ {
				// v*id is within [-127, 127] (to a rounding); adding
				// ±0.5 is exact in float64, and the conversion truncates:
				// round half away from zero, as roundf.
				f := float64(src[j] * id)
				if f < 0 {
					f -= 0.5
				} else {
					f += 0.5
				}
				q := int32(f)
				dst[j] = int8(q)
				sum += q
			}
			s[l] = -8 * sum
		}
	}
	return x
}

// intDotsFunc computes y[r] = W[r] . x for the rows consecutive rows of w,
// each stride bytes (unused when rows is 1), for an activation row
// quantized by quantizeRows.
type intDotsFunc func(w []byte, stride, rows int, xq []int8, xd []float32, xs []int32, y []float32)

func pickIntDots(t Type) intDotsFunc {
	if f := asmIntDots(t); f != nil {
		return f
	}
	return genericIntDots[t]
}

var genericIntDots = map[Type]intDotsFunc{
	Q8_0: intRowsGeneric(Q8_0, intDotQ8_0),
	Q4_0: intRowsGeneric(Q4_0, intDotQ4_0),
}

func intRowsGeneric(t Type, dot func(w []byte, xq []int8, xd []float32) float32) intDotsFunc {
	rb := t.BlockBytes()
	return func(w []byte, stride, rows int, xq []int8, xd []float32, _ []int32, y []float32) {
		n := len(xd) * rb
		if rows == 1 {
			y[0] = dot(w[:n], xq, xd)
			return
		}
		for r := range rows {
			y[r] = dot(w[r*stride:r*stride+n], xq, xd)
		}
	}
}

// intDotQ8_0 sums each block's int8 products in int32, then adds the sum
// times the two scales (their product rounded to float32 first).
func intDotQ8_0(w []byte, xq []int8, xd []float32) float32 {
	var acc float32
	for b, d := range xd {
		blk := w[34*b : 34*b+34]
		q := blk[2:34]
		x := xq[32*b : 32*b+32]
		var s int32
		for j := range 32 {
			s += int32(int8(q[j])) * int32(x[j])
		}
		acc += float32(s) * (half(blk, 0) * d)
	}
	return acc
}

// intDotQ4_0 is intDotQ8_0 for Q4_0's quants, q-8.
func intDotQ4_0(w []byte, xq []int8, xd []float32) float32 {
	var acc float32
	for b, d := range xd {
		blk := w[18*b : 18*b+18]
		q := blk[2:18]
		x := xq[32*b : 32*b+32]
		var s int32
		for j := range 16 {
			s += (int32(q[j]&0xf) - 8) * int32(x[j])
			s += (int32(q[j]>>4) - 8) * int32(x[j+16])
		}
		acc += float32(s) * (half(blk, 0) * d)
	}
	return acc
}
