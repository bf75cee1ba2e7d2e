package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// randHalves returns n random halves of type h and their float32 values.
func randHalves(r *rand.Rand, n int, h Half) ([]uint16, []float32) {
	b, f := make([]uint16, n), make([]float32, n)
	for i := range b {
		v := float32(r.NormFloat64())
		if h == BF16 {
			b[i] = tensor.Float32ToBF16(v)
			f[i] = math.Float32frombits(uint32(b[i]) << 16)
		} else {
			b[i] = tensor.Float32ToHalf(v)
			f[i] = tensor.HalfToFloat32(b[i])
		}
	}
	return b, f
}

func TestWidenHalf(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, h := range []Half{BF16, F16} {
		for _, n := range []int{0, 1, 15, 16, 17, 64, 100, 1031} {
			b, want := randHalves(r, n, h)
			// Specials: zeros, infinities, NaN, subnormals.
			if n >= 16 {
				b[0], b[1], b[2], b[3] = 0x8000, 0x7c00, 0x7e00, 0x0001
				if h == BF16 {
					b[1], b[2] = 0x7f80, 0x7fc0
				}
				for i := range 4 {
					if h == BF16 {
						want[i] = math.Float32frombits(uint32(b[i]) << 16)
					} else {
						want[i] = tensor.HalfToFloat32(b[i])
					}
				}
			}
			for _, path := range []string{"asm", "avx2", "generic"} {
				if path == "asm" && !hasAVX512 || path == "avx2" && !hasAsm {
					continue
				}
				withPath(path, func() {
					got := make([]float32, n)
					WidenHalf(got, b, h)
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%v n=%d %s: element %d = %x, want %x", h, n, path, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
						}
					}
				})
			}
		}
	}
}

// TestMatMulHalf checks that products with B in BF16 or F16, widened as
// they are packed, equal the float32 products on B widened first, bit for
// bit: shapes with edge slivers and blocks, several k slabs, the chunks of
// the NN packing, and the small shapes that widen all of B first.
func TestMatMulHalf(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	shapes := []struct{ m, n, k int }{
		{24, 64, 16},
		{100, 300, 70},
		{257, 333, 600}, // three k slabs, edge tiles both ways
		{64, 700, 40},   // NN: several chunks of columns and a partial one
		{1024, 256, 512},
		{3, 50, 20},  // decoding: dot products
		{30, 40, 33}, // too narrow for the AVX-512 tiles, not for the AVX2 ones
		{12, 32, 300},
		{11, 31, 20}, // too small for either
	}
	for _, s := range shapes {
		for _, h := range []Half{BF16, F16} {
			for _, transB := range []bool{true, false} {
				for _, acc := range []bool{false, true} {
					for _, path := range []string{"asm", "avx2", "generic"} {
						if path == "asm" && !hasAVX512 || path == "avx2" && !hasAsm {
							continue
						}
						name := fmt.Sprintf("%dx%dx%d/%v/transB=%v/acc=%v/%s", s.m, s.n, s.k, h, transB, acc, path)
						a := randSlice(r, s.m*s.k)
						bh, bf := randHalves(r, s.n*s.k, h)
						c0 := randSlice(r, s.m*s.n)
						want, got, viaSrc := slices.Clone(c0), slices.Clone(c0), slices.Clone(c0)
						cols := s.k // B's stored row length
						if !transB {
							cols = s.n
						}
						// The same halves through a RowSource, as a quantized
						// weight supplies them, noting the longest piece asked.
						longest := 0
						src := func(dst []float32, row, c0 int) {
							longest = max(longest, len(dst))
							WidenHalf(dst, bh[row*cols+c0:row*cols+c0+len(dst)], h)
						}
						packs := false
						withPath(path, func() {
							packs = DecodesAsPacked(s.m, s.n)
							if transB {
								MatMulNT(want, a, bf, s.m, s.n, s.k, acc)
								MatMulNTSource(got, a, HalfRows(bh, h, s.n, s.k), s.m, s.n, s.k, acc)
								MatMulNTSource(viaSrc, a, src, s.m, s.n, s.k, acc)
							} else {
								MatMulNN(want, a, bf, s.m, s.n, s.k, acc)
								MatMulNNSource(got, a, HalfRows(bh, h, s.k, s.n), s.m, s.n, s.k, acc)
								MatMulNNSource(viaSrc, a, src, s.m, s.n, s.k, acc)
							}
						})
						// Rows longer than a slab (NT) or a chunk of
						// columns (NN) are decoded in pieces when packed,
						// whole when not.
						if packs != (longest < cols) && cols > 256 {
							t.Fatalf("%s: DecodesAsPacked %v, but the longest piece decoded was %d of rows of %d", name, packs, longest, cols)
						}
						if (path == "asm" || path == "avx2") != packs && s.m >= 30 && s.n >= 64 {
							t.Fatalf("%s: DecodesAsPacked %v", name, packs)
						}
						for i := range got {
							if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
								t.Fatalf("%s: element %d = %v, want %v", name, i, got[i], want[i])
							}
							if math.Float32bits(viaSrc[i]) != math.Float32bits(want[i]) {
								t.Fatalf("%s, RowSource: element %d = %v, want %v", name, i, viaSrc[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}

func TestMatMulHalfShortOperands(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic on a short B")
		}
	}()
	MatMulNTSource(make([]float32, 4), make([]float32, 4), HalfRows(make([]uint16, 3), BF16, 2, 2), 2, 2, 2, false)
}
