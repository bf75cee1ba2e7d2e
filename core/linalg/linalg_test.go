package linalg

import (
	"math"
	"math/rand/v2"
	"testing"
)

func naive(m, n, k int, at func(i, p int) float32, bt func(p, j int) float32) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(at(i, p)) * float64(bt(p, j))
			}
			out[i*n+j] = s
		}
	}
	return out
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

func TestMatMul(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{{1, 1, 1}, {7, 3, 5}, {33, 17, 9}, {5, 64, 1}, {130, 70, 100}, {1, 1000, 7}}
	for _, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		a := randSlice(r, m*k)
		b := randSlice(r, n*k)
		check := func(name string, got []float32, want []float64, base []float32) {
			t.Helper()
			for i := range want {
				w := want[i]
				if base != nil {
					w += float64(base[i])
				}
				if math.Abs(float64(got[i])-w) > 1e-4*math.Max(1, math.Abs(w)) {
					t.Fatalf("%s %v: element %d got %v want %v", name, s, i, got[i], w)
				}
			}
		}
		for _, acc := range []bool{false, true} {
			base := randSlice(r, m*n)
			c := append([]float32(nil), base...)
			var bb []float32
			if acc {
				bb = base
			}
			MatMulNT(c, a, b, m, n, k, acc)
			check("NT", c, naive(m, n, k, func(i, p int) float32 { return a[i*k+p] }, func(p, j int) float32 { return b[j*k+p] }), bb)
			c = append([]float32(nil), base...)
			MatMulNN(c, a, b, m, n, k, acc)
			check("NN", c, naive(m, n, k, func(i, p int) float32 { return a[i*k+p] }, func(p, j int) float32 { return b[p*n+j] }), bb)
			c = append([]float32(nil), base...)
			MatMulTN(c, a, b, m, n, k, acc)
			check("TN", c, naive(m, n, k, func(i, p int) float32 { return a[p*m+i] }, func(p, j int) float32 { return b[p*n+j] }), bb)
		}
	}
}
