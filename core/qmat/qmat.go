// Package qmat multiplies float32 activations by weights that stay in a
// quantized block format (ggml's Q8_0, Q4_0, Q4_K and Q6_K): the frozen
// linear weights of a quantized GGUF checkpoint, used where they are
// memory-mapped.
//
// A product with few activation rows (decoding, one token at a time) reads
// the blocks directly: each weight row is decoded in registers and
// multiplied into every activation row while it is in L1, and no float32
// copy of the weight is ever made, so a step streams the quantized bytes
// (a quarter to an eighth of float32's) from memory once. A product with
// many rows (a prompt) decodes the weight once into a float32 buffer, in
// parallel, and runs the float32 Sgemm of package linalg on it, where the
// decoding is cheap next to the product.
//
// Activations stay float32 in MatMulNT: the direct kernels compute the
// same sums as "dequantize, then multiply in float32", in another order,
// so results agree to float32 rounding. Dequantize gives the values of
// ggml's dequantize_row_* bit for bit. For inference, MatMulNTInt8
// quantizes the activations of a Q8_0 or Q4_0 product to int8 blocks
// first, as llama.cpp does, and sums the blocks' products in integers
// (AVX-512 VNNI, or AVX2's VPMADDUBSW): faster, within the activations'
// quantization error of MatMulNT (off by default: see
// SetInt8Activations).
//
// On amd64 the kernels run in assembly written by internal/asmgen: an
// AVX-512 path and an AVX2+FMA+F16C path, chosen at run time; elsewhere,
// or after linalg.SetGeneric(true), in portable Go. linalg.SetAVX512(false)
// holds them to the AVX2 path, as it does linalg's own.
package qmat

import (
	"fmt"
	"sync"

	"github.com/surgeon-ml/surgeon/core/linalg"
)

// Type is a quantized block format.
type Type int

// The block formats, with ggml's layouts.
const (
	// Q8_0: blocks of 32: a float16 scale d, then 32 int8 quants q;
	// x = d*q.
	Q8_0 Type = iota + 1
	// Q4_0: blocks of 32: a float16 scale d, then 16 bytes of 4-bit
	// quants (element j in the low nibble of byte j, element j+16 in its
	// high nibble); x = d*(q-8).
	Q4_0
	// Q4_K: super-blocks of 256: float16 d and dmin, 12 bytes of eight
	// 6-bit scales and mins, 128 bytes of 4-bit quants; x = d*sc*q - dmin*m
	// over eight sub-blocks of 32.
	Q4_K
	// Q6_K: super-blocks of 256: 128 bytes of low 4 bits, 64 bytes of high
	// 2 bits, sixteen int8 scales, a float16 d; x = d*sc*(q-32) over
	// sixteen sub-blocks of 16.
	Q6_K
)

// typeInfo is indexed by Type: an array, as products look it up per tile.
var typeInfo = [...]struct {
	name         string
	elems, bytes int
}{
	Q8_0: {"Q8_0", 32, 34},
	Q4_0: {"Q4_0", 32, 18},
	Q4_K: {"Q4_K", 256, 144},
	Q6_K: {"Q6_K", 256, 210},
}

// String returns ggml's name of the type.
func (t Type) String() string {
	if t.Valid() {
		return typeInfo[t].name
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// BlockSize is the number of elements in a block (0 for an invalid type).
func (t Type) BlockSize() int {
	if !t.Valid() {
		return 0
	}
	return typeInfo[t].elems
}

// BlockBytes is the size of a block in bytes (0 for an invalid type).
func (t Type) BlockBytes() int {
	if !t.Valid() {
		return 0
	}
	return typeInfo[t].bytes
}

// Valid reports whether t is one of the block formats above.
func (t Type) Valid() bool { return t >= Q8_0 && int(t) < len(typeInfo) }

// Matrix is a [Rows, Cols] matrix stored row after row as quantized blocks,
// Cols/BlockSize blocks a row, as ggml stores a weight [out, in].
type Matrix struct {
	Type       Type
	Rows, Cols int
	Data       []byte
	// RowOrder, when set, reorders the rows: row i of the matrix is stored
	// row RowOrder[i] (the q and k projections of a llama GGUF file, whose
	// rows llama.cpp's converter permuted). nil is the stored order.
	RowOrder []int
}

// Check reports whether the matrix is well formed: a known type, whole
// blocks a row, Data of exactly the rows' bytes, and RowOrder, if any, a
// permutation.
func (w Matrix) Check() error {
	if err := w.checkShape(); err != nil {
		return err
	}
	if w.RowOrder != nil {
		seen := make([]bool, w.Rows)
		for _, r := range w.RowOrder {
			if r < 0 || r >= w.Rows || seen[r] {
				return fmt.Errorf("qmat: row order is not a permutation of the %d rows", w.Rows)
			}
			seen[r] = true
		}
	}
	return nil
}

// checkShape is the part of Check that products run each time: the
// layout, without walking RowOrder (an index out of range still panics
// where it is used).
func (w Matrix) checkShape() error {
	if !w.Type.Valid() {
		return fmt.Errorf("qmat: unknown block type %d", int(w.Type))
	}
	if w.Rows < 0 || w.Cols < 0 || w.Cols%w.Type.BlockSize() != 0 {
		return fmt.Errorf("qmat: %s matrix [%d, %d]: rows are not whole %d-element blocks", w.Type, w.Rows, w.Cols, w.Type.BlockSize())
	}
	if want := w.Rows * w.rowBytes(); len(w.Data) != want {
		return fmt.Errorf("qmat: %s matrix [%d, %d] needs %d bytes, has %d", w.Type, w.Rows, w.Cols, want, len(w.Data))
	}
	if w.RowOrder != nil && len(w.RowOrder) != w.Rows {
		return fmt.Errorf("qmat: row order of %d rows for a matrix of %d", len(w.RowOrder), w.Rows)
	}
	return nil
}

func (w Matrix) rowBytes() int { return w.Cols / w.Type.BlockSize() * w.Type.BlockBytes() }

// row returns the stored bytes of row i (after RowOrder).
func (w Matrix) row(i int) []byte {
	if w.RowOrder != nil {
		i = w.RowOrder[i]
	}
	rb := w.rowBytes()
	return w.Data[i*rb : (i+1)*rb]
}

// MaxDirectRows is the most activation rows for which MatMulNT reads the
// blocks directly; beyond it, decoding the weight once and running the
// float32 Sgemm is faster.
const MaxDirectRows = 6

// minParallelBytes is the weight size below which a product runs on the
// calling goroutine.
const minParallelBytes = 1 << 15

// rowGrain is the fewest weight rows a parallel range of the direct
// product gets, and rowTile the rows it multiplies into every activation
// row at a time: their blocks stay in L1 while the activations pass.
const (
	rowGrain = 16
	rowTile  = 8
)

// MatMulNT computes C[m, w.Rows] = A[m, w.Cols] * W^T, adding into C when
// acc is true: the product of a linear layer whose weight W [out, in] is
// stored quantized. Up to MaxDirectRows rows of A it reads the blocks
// directly; beyond, it decodes W into scratch (a buffer of at least
// w.Rows*w.Cols floats; nil allocates one) and calls linalg.MatMulNT.
// It panics on a malformed matrix (see Check; gguf.WeightMatrix checks
// once) or short slices, as linalg does.
func MatMulNT(c, a []float32, w Matrix, m int, acc bool, scratch []float32) {
	if err := w.checkShape(); err != nil {
		panic(err)
	}
	n, k := w.Rows, w.Cols
	if len(c) < m*n || len(a) < m*k {
		panic("qmat: MatMulNT: slice shorter than its dimensions")
	}
	if m <= 0 || n <= 0 {
		return
	}
	if m > MaxDirectRows {
		if len(scratch) < n*k {
			scratch = make([]float32, n*k)
		}
		Dequantize(scratch[:n*k], w)
		linalg.MatMulNT(c, a, scratch[:n*k], m, n, k, acc)
		return
	}
	if k == 0 {
		if !acc {
			clear(c[:m*n])
		}
		return
	}
	dot := pickDots(w.Type)
	prep := prepare(w.Type, a, m, k)
	directRows(c, w, m, acc, func(i int, data []byte, stride, rows int, y []float32) {
		dot(data, stride, rows, a[i*k:(i+1)*k], prep.row(i), y)
	})
}

// directRows runs the direct product's loop over W's rows for MatMulNT
// and MatMulNTInt8: tiles of rowTile weight rows (in RowOrder when W has
// one), each multiplied into every activation row i by dot(i, data,
// stride, rows, y), which writes the rows' products with row i into y;
// the tile's results go to C, added when acc. Large weights split their
// rows across the cores.
func directRows(c []float32, w Matrix, m int, acc bool, dot func(i int, data []byte, stride, rows int, y []float32)) {
	n := w.Rows
	rb := w.rowBytes()
	rows := func(lo, hi int) {
		var tile [rowTile]float32
		for t0 := lo; t0 < hi; t0 += rowTile {
			t1 := min(t0+rowTile, hi)
			for i := range m {
				ci := c[i*n : (i+1)*n]
				if w.RowOrder == nil {
					dot(i, w.Data[t0*rb:t1*rb], rb, t1-t0, tile[:t1-t0])
				} else {
					for r := t0; r < t1; r++ {
						s := w.RowOrder[r] * rb
						dot(i, w.Data[s:s+rb], 0, 1, tile[r-t0:r-t0+1])
					}
				}
				if acc {
					for r, v := range tile[:t1-t0] {
						ci[t0+r] += v
					}
				} else {
					copy(ci[t0:t1], tile[:t1-t0])
				}
			}
		}
	}
	if len(w.Data) < minParallelBytes {
		rows(0, n)
		return
	}
	linalg.ParallelRanges(n, rowGrain, rows)
}

// Dequantize decodes w into dst [w.Rows, w.Cols], row-major, with the
// values of ggml's dequantize_row_*, splitting the rows among the workers
// of linalg's pool. It panics on a malformed matrix or a short dst.
func Dequantize(dst []float32, w Matrix) {
	if err := w.checkShape(); err != nil {
		panic(err)
	}
	k := w.Cols
	if len(dst) < w.Rows*k {
		panic("qmat: Dequantize: destination shorter than the matrix")
	}
	dq := pickDequant(w.Type)
	rows := func(lo, hi int) {
		if w.RowOrder == nil {
			rb := w.rowBytes()
			dq(dst[lo*k:hi*k], w.Data[lo*rb:hi*rb])
			return
		}
		for r := lo; r < hi; r++ {
			dq(dst[r*k:(r+1)*k], w.row(r))
		}
	}
	if len(w.Data) < minParallelBytes {
		rows(0, w.Rows)
		return
	}
	linalg.ParallelRanges(w.Rows, rowGrain, rows)
}

// Source returns w as a linalg.RowSource: each piece of a row is
// dequantized from the blocks that hold it (RowOrder applied), with the
// values of Dequantize, so that linalg.MatMulNTSource and MatMulNNSource
// decode a quantized weight slab by slab as they pack it instead of all
// at once. Pieces that start or end inside a block decode the whole block
// into a scratch buffer and copy their part. It panics on a malformed
// matrix.
func (w Matrix) Source() linalg.RowSource {
	if err := w.checkShape(); err != nil {
		panic(err)
	}
	dq := pickDequant(w.Type)
	bs, bb := w.Type.BlockSize(), w.Type.BlockBytes()
	return func(dst []float32, r, c0 int) {
		n := len(dst)
		if n == 0 {
			return
		}
		row := w.row(r)
		b0, b1 := c0/bs, (c0+n+bs-1)/bs
		if c0%bs == 0 && n%bs == 0 {
			dq(dst, row[b0*bb:b1*bb])
			return
		}
		buf := sourceBufs.Get().(*[]float32)
		if len(*buf) < (b1-b0)*bs {
			*buf = make([]float32, (b1-b0)*bs)
		}
		t := (*buf)[:(b1-b0)*bs]
		dq(t, row[b0*bb:b1*bb])
		copy(dst, t[c0-b0*bs:])
		sourceBufs.Put(buf)
	}
}

var sourceBufs = sync.Pool{New: func() any { return new([]float32) }}

// dotsFunc computes y[r] = W[r] . x for the rows consecutive rows of w,
// each stride bytes (stride is unused when rows is 1); aux is the
// per-row preparation of x that the type needs (see prepare).
type dotsFunc func(w []byte, stride, rows int, x, aux []float32, y []float32)

// prepared holds, for each activation row, what the type's kernels need
// besides the row itself: for Q4_K the sum of every 32-element sub-block
// (the mins multiply it).
type prepared struct {
	aux []float32
	per int
}

func (p prepared) row(i int) []float32 {
	if p.per == 0 {
		return nil
	}
	return p.aux[i*p.per : (i+1)*p.per]
}

func prepare(t Type, a []float32, m, k int) prepared {
	if t != Q4_K {
		return prepared{}
	}
	per := k / 32
	p := prepared{aux: make([]float32, m*per), per: per}
	for i := range m {
		x := a[i*k : (i+1)*k]
		for j := range per {
			var s float32
			for _, v := range x[j*32 : (j+1)*32] {
				s += v
			}
			p.aux[i*per+j] = s
		}
	}
	return p
}

func pickDots(t Type) dotsFunc {
	if f := asmDots(t); f != nil {
		return f
	}
	return genericDots[t]
}

func pickDequant(t Type) func(dst []float32, src []byte) {
	if f := asmDequant(t); f != nil {
		return f
	}
	return genericDequant[t]
}

// Accelerated reports whether the kernels currently run in assembly (on
// amd64 CPUs with AVX2, FMA and F16C, unless linalg.SetGeneric(true) is in
// force). The portable kernels read blocks in place at a fraction of the
// float32 product's speed: callers choosing between keeping weights
// quantized and decoding them once may ask.
func Accelerated() bool { return useAsm() }

// useAsm and useAVX512 follow linalg's switches (SetGeneric, SetAVX512)
// and this CPU.
func useAsm() bool { return hasAVX2 && linalg.Accelerated() }

func useAVX512() bool { return hasAVX512 && linalg.AVX512() }
