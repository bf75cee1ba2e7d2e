package ops

import (
	"testing"
	"unsafe"

	"github.com/nlpodyssey/spago/mat"
)

// sliceFiller is a frozen weight held as float32, for StoredLinear.
type sliceFiller []float32

func (s sliceFiller) Fill(dst []float32) error { copy(dst, s); return nil }

// A block that keeps its activations gives back, when it ends, exactly the
// outputs no backward pass reads: here the normalized input of a frozen
// projection and the projection's output, an addend of the residual sum.
// It keeps the block's output, and Backward neither gives those back a
// second time nor computes different gradients.
func TestBlockReleasesDeadOutputs(t *testing.T) {
	defer func(was bool) { poisonRecycled = was }(poisonRecycled)
	poisonRecycled = true
	const rows, d = 8, 256
	w := make([]float32, d*d)
	for i := range w {
		w[i] = float32(i%13-6) / 50
	}
	norm := New(1, d, make([]float32, d))
	for i := range Data(norm) {
		Data(norm)[i] = 1 + float32(i%5)/10
	}
	run := func(release bool) ([]float32, int64, int) {
		defer SetReleaseDead(SetReleaseDead(release))
		FreeBuffers()
		defer FreeBuffers()
		xs := make([]float32, rows*d)
		for i := range xs {
			xs[i] = float32(i%11-5) / 7
		}
		x := New(rows, d, xs)
		x.SetRequiresGrad(true)
		before := Released()
		y := Block(0, x, func(x mat.Tensor) mat.Tensor {
			h := RMSNorm(x, norm, 1e-6)
			return Add(x, StoredLinear(h, sliceFiller(w), d, d, nil))
		})
		n := Released() - before
		pooled := pooledBuffers()
		loss := Add(y, y)
		if err := Backward(loss); err != nil {
			t.Fatal(err)
		}
		for c, l := range bufs.free {
			seen := map[*float32]bool{}
			for _, s := range l {
				p := unsafe.SliceData(s)
				if seen[p] {
					t.Fatalf("a buffer of %d floats is in the pool twice", c)
				}
				seen[p] = true
			}
		}
		return append([]float32(nil), Data(x.Grad())...), n, pooled
	}
	g0, n0, _ := run(false)
	g1, n1, pooled := run(true)
	// The pool also holds the buffer StoredLinear filled with the weight.
	if want := int64(2 * sizeClass(rows*d)); n1 != want || int64(pooled) != want+int64(sizeClass(d*d)) {
		t.Fatalf("given back %d floats, the pool holds %d; want the two dead outputs' %d, and the weight's %d", n1, pooled, want, sizeClass(d*d))
	}
	if n0 != 0 {
		t.Fatalf("given back %d floats with the release off", n0)
	}
	for i := range g0 {
		if g0[i] != g1[i] {
			t.Fatalf("gradient %d: %v with the release, %v without", i, g1[i], g0[i])
		}
	}
}
