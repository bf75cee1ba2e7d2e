package ops

import (
	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/linalg"
)

// loraFn is the fused LoRA layer y = x W^T + b + s (d(x) A^T) B^T, where d
// is an optional dropout mask. It keeps only the thin product h = d(x) A^T
// for backward, never materialising W + sBA or the [tokens, out]
// intermediates of the unfused graph.
type loraFn struct {
	x, w, b, a, bb mat.Tensor
	s              float32
	mask           []float32 // dropout mask with inverted scaling, or nil
	h              []float32
}

// LoRA returns x W^T + b + s (mask ⊙ x) A^T B^T for x [n,in], W [out,in],
// b [out] (or nil), A [r,in], B [out,r]; mask (nil for none) is an inverted
// dropout mask of x's size.
func LoRA(x, w, b, a, bb mat.Tensor, s float32, mask []float32) mat.Tensor {
	if Cols(x) != Cols(w) || Cols(a) != Cols(x) || Rows(bb) != Rows(w) || Cols(bb) != Rows(a) {
		panic("ops: LoRA: shapes do not match")
	}
	if b == nil {
		return run(&loraFn{x: x, w: w, a: a, bb: bb, s: s, mask: mask})
	}
	return run(&loraFn{x: x, w: w, b: b, a: a, bb: bb, s: s, mask: mask})
}

// LowRank returns the low-rank update alone, s (mask ⊙ x) A^T B^T for
// x [n,k], A [r,k], B [m,r], as one operator that keeps only the thin
// product for backward; mask is as for LoRA.
func LowRank(x, a, bb mat.Tensor, s float32, mask []float32) mat.Tensor {
	if Cols(a) != Cols(x) || Cols(bb) != Rows(a) {
		panic("ops: LowRank: shapes do not match")
	}
	return run(&loraFn{x: x, a: a, bb: bb, s: s, mask: mask})
}

func (f *loraFn) Operands() []mat.Tensor {
	if f.w == nil {
		return []mat.Tensor{f.x, f.a, f.bb}
	}
	if f.b == nil {
		return []mat.Tensor{f.x, f.w, f.a, f.bb}
	}
	return []mat.Tensor{f.x, f.w, f.b, f.a, f.bb}
}

func (f *loraFn) dropped() []float32 {
	x := Data(f.x)
	if f.mask == nil {
		return x
	}
	xd := make([]float32, len(x))
	for i, v := range x {
		xd[i] = v * f.mask[i]
	}
	return xd
}

func (f *loraFn) Forward() (mat.Tensor, error) {
	n, in, out, r := Rows(f.x), Cols(f.x), Rows(f.bb), Rows(f.a)
	y := allocOutput(n * out)
	if f.b != nil {
		bias := Data(f.b)
		for i := 0; i < n; i++ {
			copy(y[i*out:(i+1)*out], bias)
		}
	}
	if f.w != nil {
		linalg.MatMulNT(y, Data(f.x), Data(f.w), n, out, in, f.b != nil)
	}
	f.h = allocDirty(n * r)
	linalg.MatMulNT(f.h, f.dropped(), Data(f.a), n, r, in, false)
	// y += s * h B^T: scale B once rather than the [n,out] product.
	bs := make([]float32, out*r)
	for i, v := range Data(f.bb) {
		bs[i] = v * f.s
	}
	linalg.MatMulNT(y, f.h, bs, n, out, r, f.w != nil)
	return New(n, out, y), nil
}

func (f *loraFn) Backward(gy mat.Tensor) error {
	n, in, out, r := Rows(f.x), Cols(f.x), Rows(f.bb), Rows(f.a)
	g := Data(gy)
	// gh = s * gy B  [n,r]
	gh := allocDirty(n * r)
	linalg.MatMulNN(gh, g, Data(f.bb), n, r, out, false)
	for i := range gh {
		gh[i] *= f.s
	}
	if f.bb.RequiresGrad() { // gB = s * gy^T h
		gb := allocDirty(out * r)
		linalg.MatMulTN(gb, g, f.h, out, r, n, false)
		for i := range gb {
			gb[i] *= f.s
		}
		accGrad(f.bb, out, r, gb)
	}
	if f.a.RequiresGrad() { // gA = gh^T d(x)
		ga := allocDirty(r * in)
		linalg.MatMulTN(ga, gh, f.dropped(), r, in, n, false)
		accGrad(f.a, r, in, ga)
	}
	if f.x.RequiresGrad() { // gx = gy W + mask ⊙ (gh A)
		gx := allocDirty(n * in)
		if f.w != nil {
			linalg.MatMulNN(gx, g, Data(f.w), n, in, out, false)
		} else {
			clear(gx)
		}
		if f.mask == nil {
			linalg.MatMulNN(gx, gh, Data(f.a), n, in, r, true)
		} else {
			t := allocDirty(n * in)
			linalg.MatMulNN(t, gh, Data(f.a), n, in, r, false)
			for i, v := range t {
				gx[i] += v * f.mask[i]
			}
			recycle(t)
		}
		accGrad(f.x, n, in, gx)
	}
	if f.w != nil && f.w.RequiresGrad() {
		gw := allocDirty(out * in)
		linalg.MatMulTN(gw, g, Data(f.x), out, in, n, false)
		accGrad(f.w, out, in, gw)
	}
	if f.b != nil && f.b.RequiresGrad() {
		gb := alloc(out)
		for i := 0; i < n; i++ {
			linalg.Axpy(1, g[i*out:(i+1)*out], gb)
		}
		accGrad(f.b, out, 1, gb)
	}
	recycle(gh)
	return nil
}

func (f *loraFn) backwardReads() []mat.Tensor {
	r := []mat.Tensor{f.a, f.bb}
	if f.a.RequiresGrad() || f.w != nil && f.w.RequiresGrad() {
		r = append(r, f.x)
	}
	if f.w != nil && f.x.RequiresGrad() {
		r = append(r, f.w)
	}
	return r
}

func (f *loraFn) recycle() { recycle(f.h) }

// DropoutMask returns an inverted dropout mask of n values for probability
// p drawn from rng, or nil when p is 0 or rng is nil.
func DropoutMask(n int, p float64, rng interface{ Float64() float64 }) []float32 {
	if p <= 0 || rng == nil {
		return nil
	}
	mask := make([]float32, n)
	keep := float32(1 / (1 - p))
	for i := range mask {
		if rng.Float64() >= p {
			mask[i] = keep
		}
	}
	return mask
}
