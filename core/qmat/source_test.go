package qmat

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/surgeon-ml/surgeon/core/linalg"
)

// A quantized matrix as a linalg.RowSource gives Dequantize's values for
// any piece of any row, block-aligned or not, with and without a row
// order; and the products that decode it slab by slab as they pack it
// equal the float32 products on the dequantized matrix, bit for bit, in
// both layouts (forward NT, input gradient NN).
func TestSource(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	defer linalg.SetAVX512(linalg.SetAVX512(true))
	for _, typ := range []Type{Q8_0, Q4_0, Q4_K, Q6_K} {
		for _, ordered := range []bool{false, true} {
			name := fmt.Sprintf("%v/ordered=%v", typ, ordered)
			rows, cols := 72, 3*256
			w := randMatrix(r, typ, rows, cols)
			if ordered {
				w.RowOrder = r.Perm(rows)
			}
			wf := make([]float32, rows*cols)
			Dequantize(wf, w)
			src := w.Source()
			for _, piece := range [][2]int{{0, cols}, {0, 256}, {256, 256}, {5, 40}, {250, 300}, {cols - 7, 7}, {31, 1}} {
				for _, row := range []int{0, 13, rows - 1} {
					got := make([]float32, piece[1])
					src(got, row, piece[0])
					want := wf[row*cols+piece[0] : row*cols+piece[0]+piece[1]]
					if !slices.Equal(got, want) {
						t.Fatalf("%s: row %d [%d, +%d): differs from Dequantize", name, row, piece[0], piece[1])
					}
				}
			}
			m := 40
			a := make([]float32, m*max(rows, cols))
			for i := range a {
				a[i] = float32(r.NormFloat64())
			}
			// With the AVX-512 tiles where the CPU has them, and the AVX2
			// ones of CPUs without AVX-512.
			for _, avx512 := range []bool{true, false} {
				linalg.SetAVX512(avx512)
				pname := fmt.Sprintf("%s/avx512=%v", name, avx512)
				// Forward: C[m, rows] = A[m, cols] * W^T.
				want, got := make([]float32, m*rows), make([]float32, m*rows)
				linalg.MatMulNT(want, a, wf, m, rows, cols, false)
				linalg.MatMulNTSource(got, a, src, m, rows, cols, false)
				same(t, pname+"/NT", got, want)
				// Input gradient: C[m, cols] = A[m, rows] * W.
				want, got = make([]float32, m*cols), make([]float32, m*cols)
				linalg.MatMulNN(want, a, wf, m, cols, rows, false)
				linalg.MatMulNNSource(got, a, src, m, cols, rows, false)
				same(t, pname+"/NN", got, want)
			}
		}
	}
}

func same(t *testing.T, name string, got, want []float32) {
	t.Helper()
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d = %v, want %v", name, i, got[i], want[i])
		}
	}
}
