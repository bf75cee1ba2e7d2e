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

// sgemmHalf is sgemm with B in half precision.
func sgemmHalf(transB bool, m, n, k int, a []float32, b []uint16, h Half, c []float32, acc bool) {
	if h != BF16 && h != F16 {
		panic(fmt.Sprintf("linalg: unknown half type %d", h))
	}
	if m <= 0 || n <= 0 || k <= 0 || !HalfPacks(m, n) {
		w := make([]float32, n*k)
		WidenHalf(w, b[:n*k], h)
		sgemm(false, transB, m, n, k, a, w, c, acc)
		return
	}
	g := &gemm{transB: transB, m: m, n: n, k: k, a: a, bh: b[:n*k], half: h, c: c, acc: acc,
		kern: gemmKernel512Asm, skern: gemmKernel512StridedAsm, mr: mr512, nr: nr512, strided: true, packAsm: true}
	g.run(kcMax512, mcMax512, ncMax512)
}

// packBHalf is packB for B in half precision: it widens the slab a
// piece at a time into the worker's scratch (in L1 or L2) and packs from
// there with the float32 packers.
func (g *gemm) packBHalf(s *scratch, dst []float32, j0, cols, p0, kc int) {
	nr := g.nr
	if g.transB { // element (p,j) at b[j*k+p]: widen a sliver's rows, then transpose them
		w := s.widen(nr * kc)
		for sl := 0; sl*nr < cols; sl++ {
			c0 := j0 + sl*nr
			width := min(nr, cols-sl*nr)
			for j := range width {
				row := (c0+j)*g.k + p0
				widenHalf(w[j*kc:(j+1)*kc], g.bh[row:row+kc], g.half, g.bh[min(row+nr*g.k, len(g.bh)):])
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
			at := (p0+p)*g.n + j0 + c0
			// Prefetch two rows down, where the next widening but one reads.
			widenHalf(w[p*width:(p+1)*width], g.bh[at:at+width], g.half, g.bh[min(at+2*g.n, len(g.bh)):])
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
