package linalg

import (
	"fmt"
	"math"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// Half is the 16-bit float type of an operand kept as stored: a frozen
// BF16 or F16 weight that a product widens to float32 only as it packs
// it, one slab at a time, instead of being widened whole first.
type Half uint8

const (
	// BF16 is bfloat16: the top 16 bits of a float32.
	BF16 Half = iota + 1
	// F16 is IEEE 754 binary16.
	F16
)

func (h Half) String() string {
	switch h {
	case BF16:
		return "BF16"
	case F16:
		return "F16"
	}
	return fmt.Sprintf("Half(%d)", uint8(h))
}

// WidenHalf writes dst[i] = src[i] as float32 for i < len(src); dst must
// be at least as long. The conversion is exact.
func WidenHalf(dst []float32, src []uint16, h Half) { widenHalf(dst, src, h, nil) }

// widenHalf is WidenHalf, prefetching the halves at the start of ahead
// (to be widened next) as it goes.
func widenHalf(dst []float32, src []uint16, h Half, ahead []uint16) {
	if len(dst) < len(src) {
		panic("linalg: WidenHalf: dst shorter than src")
	}
	if h != BF16 && h != F16 {
		panic(fmt.Sprintf("linalg: WidenHalf: unknown type %d", h))
	}
	n := 0
	if useAVX512() {
		n = len(src) &^ 15
		if n > 0 {
			widenAsm(dst[:n], src[:n], h, ahead)
		}
	}
	switch h {
	case BF16:
		for i, v := range src[n:] {
			dst[n+i] = math.Float32frombits(uint32(v) << 16)
		}
	case F16:
		for i, v := range src[n:] {
			dst[n+i] = tensor.HalfToFloat32(v)
		}
	}
}

// HalfPacks reports whether MatMulNTHalf and MatMulNNHalf widen B slab by
// slab as they pack it for an m x n product. For other shapes (few rows or
// columns: decoding, skinny products) and on CPUs without AVX-512 they
// widen all of B into a temporary buffer first, which a caller that keeps
// a pool of buffers may prefer to do itself.
func HalfPacks(m, n int) bool { return use512(m, n) }

// MatMulNTHalf computes C[m,n] = A[m,k] * B[n,k]^T (adding into C when acc)
// with B stored in half precision h. The result is that of MatMulNT on B
// widened to float32, bit for bit.
func MatMulNTHalf(c, a []float32, b []uint16, h Half, m, n, k int, acc bool) {
	checkHalf("MatMulNTHalf", c, a, b, m*n, m*k, n*k)
	sgemmHalf(true, m, n, k, a, b, h, c, acc)
}

// MatMulNNHalf computes C[m,n] = A[m,k] * B[k,n] (adding into C when acc)
// with B stored in half precision h. The result is that of MatMulNN on B
// widened to float32, bit for bit.
func MatMulNNHalf(c, a []float32, b []uint16, h Half, m, n, k int, acc bool) {
	checkHalf("MatMulNNHalf", c, a, b, m*n, m*k, n*k)
	sgemmHalf(false, m, n, k, a, b, h, c, acc)
}

func checkHalf(op string, c, a []float32, b []uint16, nc, na, nb int) {
	if len(c) < nc || len(a) < na || len(b) < nb {
		panic(fmt.Sprintf("linalg: %s: operands of %d, %d and %d elements, need %d, %d and %d", op, len(c), len(a), len(b), nc, na, nb))
	}
}

// RowSource supplies a B operand stored [rows, cols] row-major in an
// encoded form (quantized blocks, say): it writes elements [c0,
// c0+len(dst)) of stored row r into dst as float32. The products call it
// from several workers at once, for pieces of at most a few hundred
// elements, as they pack B.
type RowSource func(dst []float32, r, c0 int)

// MatMulNTSource computes C[m,n] = A[m,k] * B[n,k]^T (adding into C when
// acc) with B supplied by src, decoded slab by slab as it is packed: bit
// for bit MatMulNT on B decoded first. Shapes for which HalfPacks is false
// decode all of B into a temporary buffer first.
func MatMulNTSource(c, a []float32, src RowSource, m, n, k int, acc bool) {
	checkHalf("MatMulNTSource", c, a, nil, m*n, m*k, 0)
	sgemmSource(true, m, n, k, a, nil, 0, src, c, acc)
}

// MatMulNNSource computes C[m,n] = A[m,k] * B[k,n] (adding into C when
// acc) with B supplied by src, decoded slab by slab as it is packed: bit
// for bit MatMulNN on B decoded first.
func MatMulNNSource(c, a []float32, src RowSource, m, n, k int, acc bool) {
	checkHalf("MatMulNNSource", c, a, nil, m*n, m*k, 0)
	sgemmSource(false, m, n, k, a, nil, 0, src, c, acc)
}

// sgemmHalf is sgemm with B in half precision.
func sgemmHalf(transB bool, m, n, k int, a []float32, b []uint16, h Half, c []float32, acc bool) {
	if h != BF16 && h != F16 {
		panic(fmt.Sprintf("linalg: unknown half type %d", h))
	}
	sgemmSource(transB, m, n, k, a, b[:n*k], h, nil, c, acc)
}

// sgemmSource is sgemm with B given as halves bh of type h, or else by
// src: decoded as it is packed where the AVX-512 tiles take the shape,
// decoded whole first otherwise.
func sgemmSource(transB bool, m, n, k int, a []float32, bh []uint16, h Half, src RowSource, c []float32, acc bool) {
	if m <= 0 || n <= 0 || k <= 0 || !HalfPacks(m, n) {
		w := make([]float32, n*k)
		switch {
		case bh != nil:
			WidenHalf(w, bh, h)
		case transB: // stored [n, k]
			for r := range n {
				src(w[r*k:(r+1)*k], r, 0)
			}
		default: // stored [k, n]
			for r := range k {
				src(w[r*n:(r+1)*n], r, 0)
			}
		}
		sgemm(false, transB, m, n, k, a, w, c, acc)
		return
	}
	g := &gemm{transB: transB, m: m, n: n, k: k, a: a, bh: bh, half: h, bsrc: src, c: c, acc: acc,
		kern: gemmKernel512Asm, skern: gemmKernel512StridedAsm, mr: mr512, nr: nr512, strided: true, packAsm: true}
	g.run(kcMax512, mcMax512, ncMax512)
}

// decodeB writes elements [c0, c0+len(dst)) of stored row r of an encoded
// B into dst; ahead is the stored row to prefetch for halves.
func (g *gemm) decodeB(dst []float32, r, c0, ahead int) {
	if g.bsrc != nil {
		g.bsrc(dst, r, c0)
		return
	}
	cols := g.k
	if !g.transB {
		cols = g.n
	}
	at := r*cols + c0
	widenHalf(dst, g.bh[at:at+len(dst)], g.half, g.bh[min(ahead*cols+c0, len(g.bh)):])
}

// packBHalf is packB for B in half precision or from a RowSource: it
// decodes the slab a piece at a time into the worker's scratch (in L1 or
// L2) and packs from there with the float32 packers.
func (g *gemm) packBHalf(s *scratch, dst []float32, j0, cols, p0, kc int) {
	nr := g.nr
	if g.transB { // element (p,j) at b[j*k+p]: widen a sliver's rows, then transpose them
		w := s.widen(nr * kc)
		for sl := 0; sl*nr < cols; sl++ {
			c0 := j0 + sl*nr
			width := min(nr, cols-sl*nr)
			for j := range width {
				// Prefetch the same row of the next sliver.
				g.decodeB(w[j*kc:(j+1)*kc], c0+j, p0, c0+j+nr)
			}
			d := dst[sl*nr*kc : (sl+1)*nr*kc]
			if width == nr {
				packTAsm(d, w, kc, kc, nr)
				continue
			}
			clear(d)
			for j := range width {
				for p, v := range w[j*kc : (j+1)*kc] {
					d[p*nr+j] = v
				}
			}
		}
		return
	}
	// Element (p,j) at b[p*n+j]: widen the rows of a chunk of slivers,
	// then pack them row by row as packB does.
	const chunk = 8 * nr512
	w := s.widen(chunk * kc)
	for c0 := 0; c0 < cols; c0 += chunk {
		width := min(chunk, cols-c0)
		for p := range kc {
			// Prefetch two rows down, where the next widening but one reads.
			g.decodeB(w[p*width:(p+1)*width], p0+p, j0+c0, p0+p+2)
		}
		full, rest := width/nr, width%nr
		d := dst[c0*kc:]
		if full > 0 {
			packBAsm(d, w, width, kc, full, nr)
		}
		if rest > 0 {
			e := d[full*nr*kc : (full+1)*nr*kc]
			for p := range kc {
				ep := e[p*nr : (p+1)*nr]
				copy(ep, w[p*width+full*nr:(p+1)*width])
				clear(ep[rest:])
			}
		}
	}
}
