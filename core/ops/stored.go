package ops

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/linalg"
	"github.com/surgeon-ml/surgeon/core/qmat"
)

// Filler supplies a frozen [out, in] weight from where it is stored (a
// memory-mapped BF16 tensor, quantized GGUF blocks): Fill writes its
// float32 values into dst, row-major [out, in].
type Filler interface {
	Fill(dst []float32) error
}

// BlockFiller is a Filler whose weight is stored as quantized blocks that
// package qmat multiplies directly (the Q8_0, Q4_0, Q4_K and Q6_K weights
// of a GGUF file): StoredLinear then reads the blocks in place for the
// few rows of decoding, and decodes them in parallel for larger products,
// instead of calling Fill. Matrix reports ok == false for a weight that
// qmat does not handle; StoredLinear then falls back to Fill.
type BlockFiller interface {
	Filler
	Matrix() (w qmat.Matrix, ok bool)
}

// HalfFiller is a Filler whose weight is stored in BF16 or F16, [out, in]
// as the layer uses it (a safetensors or GGUF weight). StoredLinear
// reads its halves as they are stored into a pooled buffer, half the size
// of the float32 weight, and the products widen them slab by slab as they
// pack them (linalg.HalfRows, MatMulNTSource), for the shapes where
// linalg.DecodesAsPacked; other products use Fill.
type HalfFiller interface {
	Filler
	// Half reports the stored type; ok is false for a weight that must be
	// filled as float32 instead (another dtype, a transposed layout).
	Half() (h linalg.Half, ok bool)
	// FillHalf writes the stored halves into dst, row-major [out, in].
	FillHalf(dst []uint16) error
}

// storedLinearFn is y = x*W^T + b with a frozen W that exists as float32
// only while a product needs it: Forward and Backward each fill a pooled
// buffer from the weight's store and give it back when done, so a model
// holds one layer's float32 weight at a time.
type storedLinearFn struct {
	x, b    mat.Tensor
	w       Filler
	out, in int
}

// StoredLinear returns x*W^T + b for a frozen weight W [out, in] supplied
// by w (see Filler); b may be nil. The values and the product are those of
// Linear on the filled weight (to float32 rounding, for a BlockFiller's
// blocks read in place), except that under WithoutGrad a Q8_0 or Q4_0
// BlockFiller's product with few rows quantizes x to int8 blocks first, as
// llama.cpp does, when qmat.SetInt8Activations(true) or
// SURGEON_QMAT_INT8=1 has turned that on (qmat.MatMulNTInt8). A Filler that fails panics with its error,
// as the other operators do on bad operands.
func StoredLinear(x mat.Tensor, w Filler, out, in int, b mat.Tensor) mat.Tensor {
	if Cols(x) != in {
		panic("ops: StoredLinear: input features do not match the weight")
	}
	return run(&storedLinearFn{x: x, b: b, w: w, out: out, in: in})
}

func (f *storedLinearFn) Operands() []mat.Tensor {
	if f.b == nil {
		return []mat.Tensor{f.x}
	}
	return []mat.Tensor{f.x, f.b}
}

// matrix returns W's blocks when qmat multiplies them directly.
func (f *storedLinearFn) matrix() (qmat.Matrix, bool) {
	bf, ok := f.w.(BlockFiller)
	if !ok {
		return qmat.Matrix{}, false
	}
	w, ok := bf.Matrix()
	if ok && (w.Rows != f.out || w.Cols != f.in) {
		panic(fmt.Errorf("ops: StoredLinear: stored matrix [%d, %d], the layer's weight [%d, %d]", w.Rows, w.Cols, f.out, f.in))
	}
	return w, ok
}

// weight fills a pooled buffer with W.
func (f *storedLinearFn) weight() []float32 {
	w := allocDirty(f.out * f.in)
	if q, ok := f.matrix(); ok {
		qmat.Dequantize(w, q)
		return w
	}
	if err := f.w.Fill(w); err != nil {
		recycle(w)
		panic(fmt.Errorf("ops: StoredLinear: %w", err))
	}
	return w
}

// halfProducts counts the products that widened a stored weight as they
// packed it.
var halfProducts atomic.Int64

// blockProducts counts the products that dequantized a BlockFiller's
// blocks as they packed them.
var blockProducts atomic.Int64

// BlockProducts returns how many StoredLinear products have dequantized a
// BlockFiller's blocks slab by slab as they packed them, instead of into a
// float32 copy of the whole weight, since the program started (for tests
// and reports).
func BlockProducts() int64 { return blockProducts.Load() }

// HalfProducts returns how many StoredLinear products have multiplied a
// HalfFiller's halves directly, widening them as they packed them, since
// the program started (for tests and reports).
func HalfProducts() int64 { return halfProducts.Load() }

// encoded returns W as a RowSource that a product of rows x cols rows and
// columns decodes slab by slab as it packs it (linalg.DecodesAsPacked): a
// BlockFiller's quantized blocks in place, or a HalfFiller's halves read
// as stored into a pooled buffer, returned in buf to recycle afterwards
// (nil otherwise). ok is false when W is neither or the shape is not one
// the products decode as they pack.
func (f *storedLinearFn) encoded(rows, cols int) (src linalg.RowSource, buf []float32, ok bool) {
	if !linalg.DecodesAsPacked(rows, cols) {
		return nil, nil, false
	}
	if q, ok := f.matrix(); ok {
		blockProducts.Add(1)
		return q.Source(), nil, true
	}
	hf, isHalf := f.w.(HalfFiller)
	if !isHalf {
		return nil, nil, false
	}
	h, ok := hf.Half()
	if !ok {
		return nil, nil, false
	}
	n := f.out * f.in
	buf = allocDirty((n + 1) / 2)
	w := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(buf))), n)
	if err := hf.FillHalf(w); err != nil {
		recycle(buf)
		panic(fmt.Errorf("ops: StoredLinear: %w", err))
	}
	halfProducts.Add(1)
	return linalg.HalfRows(w, h, f.out, f.in), buf, true
}

func (f *storedLinearFn) Forward() (mat.Tensor, error) {
	n := Rows(f.x)
	y := allocOutput(n * f.out)
	if f.b != nil {
		b := Data(f.b)
		for i := 0; i < n; i++ {
			copy(y[i*f.out:(i+1)*f.out], b)
		}
	}
	// Products with enough rows decode a quantized or half-precision W as
	// they pack it: bit for bit the product on the decoded weight, with no
	// float32 copy of the whole weight.
	if src, buf, ok := f.encoded(n, f.out); ok {
		linalg.MatMulNTSource(y, Data(f.x), src, n, f.out, f.in, f.b != nil)
		if buf != nil {
			recycle(buf)
		}
		return New(n, f.out, y), nil
	}
	if q, ok := f.matrix(); ok {
		// Decoding reads the blocks in place; a longer product decodes
		// them into a pooled buffer first, as weight does.
		var scratch []float32
		if n > qmat.MaxDirectRows {
			scratch = allocDirty(f.out * f.in)
		}
		// With gradients off (inference), decoding may quantize the
		// activations to int8 blocks for Q8_0 and Q4_0 weights (see
		// qmat.MatMulNTInt8); a product on the tape keeps them float32,
		// equal to the decoded weight's product to float32 rounding.
		if gradEnabled() {
			qmat.MatMulNT(y, Data(f.x), q, n, f.b != nil, scratch)
		} else {
			qmat.MatMulNTInt8(y, Data(f.x), q, n, f.b != nil, scratch)
		}
		if scratch != nil {
			recycle(scratch)
		}
		return New(n, f.out, y), nil
	}
	w := f.weight()
	linalg.MatMulNT(y, Data(f.x), w, n, f.out, f.in, f.b != nil)
	recycle(w)
	return New(n, f.out, y), nil
}

func (f *storedLinearFn) Backward(gy mat.Tensor) error {
	n := Rows(f.x)
	g := Data(gy)
	if f.x.RequiresGrad() {
		gx := allocDirty(n * f.in)
		if src, buf, ok := f.encoded(n, f.in); ok {
			linalg.MatMulNNSource(gx, g, src, n, f.in, f.out, false)
			if buf != nil {
				recycle(buf)
			}
		} else {
			w := f.weight()
			linalg.MatMulNN(gx, g, w, n, f.in, f.out, false)
			recycle(w)
		}
		accGrad(f.x, n, f.in, gx)
	}
	if f.b != nil && f.b.RequiresGrad() {
		gb := alloc(f.out)
		for i := 0; i < n; i++ {
			linalg.Axpy(1, g[i*f.out:(i+1)*f.out], gb)
		}
		accGrad(f.b, f.out, 1, gb)
	}
	return nil
}

// backwardReads: the weight is frozen, so Backward reads neither x nor b.
func (f *storedLinearFn) backwardReads() []mat.Tensor { return nil }

// RowFiller supplies rows of a frozen table [rows, cols] from where it is
// stored (an embedding kept in its file's dtype or GGUF blocks):
// FillRows writes rows ids, one after another, into dst as float32.
type RowFiller interface {
	FillRows(ids []int, dst []float32) error
}

// storedEmbeddings counts the lookups StoredEmbedding has served.
var storedEmbeddings atomic.Int64

// StoredEmbeddings returns how many StoredEmbedding lookups have run since
// the program started (for tests and reports).
func StoredEmbeddings() int64 { return storedEmbeddings.Load() }

// StoredEmbedding returns rows ids of a frozen table [rows, cols] supplied
// by w, as a [len(ids), cols] matrix: Embedding's values, read from where
// the table is stored, so that only the rows looked up exist as float32.
// The table takes no gradient. Ids must be in range; a RowFiller that
// fails panics with its error, as a failing Filler does in StoredLinear.
func StoredEmbedding(w RowFiller, rows, cols int, ids []int) mat.Tensor {
	for _, id := range ids {
		if id < 0 || id >= rows {
			panic("ops: StoredEmbedding: id out of range")
		}
	}
	y := make([]float32, len(ids)*cols)
	if err := w.FillRows(ids, y); err != nil {
		panic(fmt.Errorf("ops: StoredEmbedding: %w", err))
	}
	storedEmbeddings.Add(1)
	return New(len(ids), cols, y)
}
