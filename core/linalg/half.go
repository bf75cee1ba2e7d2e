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
func WidenHalf(dst []float32, src []uint16, h Half) {
	if len(dst) < len(src) {
		panic("linalg: WidenHalf: dst shorter than src")
	}
	if h != BF16 && h != F16 {
		panic(fmt.Sprintf("linalg: WidenHalf: unknown type %d", h))
	}
	n := 0
	switch {
	case useAVX512():
		if n = len(src) &^ 15; n > 0 {
			widenAsm(dst[:n], src[:n], h, false)
		}
	case useAsm() && (h == BF16 || hasF16C):
		if n = len(src) &^ 7; n > 0 {
			widenAsm(dst[:n], src[:n], h, true)
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

// DecodesAsPacked reports whether MatMulNTSource and MatMulNNSource decode
// B slab by slab as they pack it for an m x n product: with the AVX-512
// tiles, or the AVX2 ones on CPUs without AVX-512, where the product has
// at least two tiles' worth of rows and columns. For other shapes (few rows
// or columns: decoding, skinny products) and without AVX2 they decode all
// of B into a temporary buffer first, which a caller that keeps a pool of
// buffers may prefer to do itself.
func DecodesAsPacked(m, n int) bool { return use512(m, n) || useAVX2Source(m, n) }

// useAVX2Source says an m x n product with B from a RowSource packs it
// for the 6x16 AVX2 kernel: where the AVX-512 tiles do not run and sgemm
// would use that kernel too (more than nrNarrow columns), so that the two
// sum in the same order.
func useAVX2Source(m, n int) bool {
	return useAsm() && !useAVX512() && m >= 2*mr && n >= 2*nr
}

// RowSource supplies a B operand stored [rows, cols] row-major in an
// encoded form (halves, quantized blocks): it writes elements [c0,
// c0+len(dst)) of stored row r into dst as float32. The products call it
// from several workers at once, for pieces of at most a few hundred
// elements, as they pack B.
type RowSource func(dst []float32, r, c0 int)

// MatMulNTSource computes C[m,n] = A[m,k] * B[n,k]^T (adding into C when
// acc) with B supplied by src, decoded slab by slab as it is packed (see
// DecodesAsPacked): bit for bit MatMulNT on B decoded first.
func MatMulNTSource(c, a []float32, src RowSource, m, n, k int, acc bool) {
	checkEncoded("MatMulNTSource", c, a, m*n, m*k)
	sgemmSource(true, m, n, k, a, src, c, acc)
}

// MatMulNNSource computes C[m,n] = A[m,k] * B[k,n] (adding into C when
// acc) with B supplied by src, decoded slab by slab as it is packed: bit
// for bit MatMulNN on B decoded first.
func MatMulNNSource(c, a []float32, src RowSource, m, n, k int, acc bool) {
	checkEncoded("MatMulNNSource", c, a, m*n, m*k)
	sgemmSource(false, m, n, k, a, src, c, acc)
}

// HalfRows returns the RowSource of halves b of type h stored [rows, cols]
// row-major: a BF16 or F16 weight that the products widen as they pack it.
// It panics on an unknown type or a short b.
func HalfRows(b []uint16, h Half, rows, cols int) RowSource {
	if h != BF16 && h != F16 {
		panic(fmt.Sprintf("linalg: HalfRows: unknown half type %d", h))
	}
	if len(b) < rows*cols {
		panic(fmt.Sprintf("linalg: HalfRows: %d halves for [%d, %d]", len(b), rows, cols))
	}
	return func(dst []float32, r, c0 int) {
		at := r*cols + c0
		WidenHalf(dst, b[at:at+len(dst)], h)
	}
}

func checkEncoded(op string, c, a []float32, nc, na int) {
	if len(c) < nc || len(a) < na {
		panic(fmt.Sprintf("linalg: %s: operands of %d and %d elements, need %d and %d", op, len(c), len(a), nc, na))
	}
}

// sgemmSource is sgemm with B supplied by src: decoded as it is packed
// where DecodesAsPacked, decoded whole first otherwise.
func sgemmSource(transB bool, m, n, k int, a []float32, src RowSource, c []float32, acc bool) {
	if m <= 0 || n <= 0 || k <= 0 || !DecodesAsPacked(m, n) {
		rows, cols := k, n // B stored [k, n]
		if transB {
			rows, cols = n, k
		}
		w := make([]float32, n*k)
		for r := range rows {
			src(w[r*cols:(r+1)*cols], r, 0)
		}
		sgemm(false, transB, m, n, k, a, w, c, acc)
		return
	}
	g := &gemm{transB: transB, m: m, n: n, k: k, a: a, bsrc: src, c: c, acc: acc, strided: true, packAsm: true}
	if use512(m, n) {
		g.kern, g.skern, g.mr, g.nr = gemmKernel512Asm, gemmKernel512StridedAsm, mr512, nr512
		g.run(kcMax512, mcMax512, ncMax512)
		return
	}
	g.kern, g.skern, g.mr, g.nr = gemmKernelAsm, gemmKernelStridedAsm, mr, nr
	g.run(kcMax, mcMax, ncMax)
}

// packBSource is packB for B from a RowSource: it decodes the slab a piece
// at a time into the worker's scratch (in L1 or L2) and packs from there
// with the float32 packers.
func (g *gemm) packBSource(s *scratch, dst []float32, j0, cols, p0, kc int) {
	nr := g.nr
	if g.transB { // element (p,j) in stored row j: decode a sliver's rows, then transpose them
		w := s.widen(nr * kc)
		for sl := 0; sl*nr < cols; sl++ {
			c0 := j0 + sl*nr
			width := min(nr, cols-sl*nr)
			for j := range width {
				g.bsrc(w[j*kc:(j+1)*kc], c0+j, p0)
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
	// Element (p,j) in stored row p: decode the rows of a chunk of
	// slivers, then pack them row by row as packB does.
	const chunk = 8 * nr512
	w := s.widen(chunk * kc)
	for c0 := 0; c0 < cols; c0 += chunk {
		width := min(chunk, cols-c0)
		for p := range kc {
			g.bsrc(w[p*width:(p+1)*width], p0+p, j0+c0)
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
