package ranks

import (
	"math"
	"testing"
)

func near(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 1e-6 {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
}

// A TIES example worked by hand (density 0.5 keeps 2 of 4 entries):
//
//	d1 = [ .5, -1,  .2,  0 ]   top-2 -> [ .5, -1,  0, 0 ]   w 1
//	d2 = [-.4,  .8, .6, -.3]   top-2 -> [  0, .8, .6, 0 ]   w .5 -> [0, .4, .3, 0]
//	d3 = [ .3,  .1, -.9, .05]  top-2 -> [ .3,  0, -.9, 0 ]  w 1
//	weighted sum [.8, -.6, -.6, 0]: signs + - - + (0 counts as +)
//	agreeing: j0 {.5 (w1), .3 (w1)} -> .8/2 = .4; j1 {-1} -> -1; j2 {-.9} -> -.9; j3 {} -> 0
func TestTIESByHand(t *testing.T) {
	ds := [][]float32{{.5, -1, .2, 0}, {-.4, .8, .6, -.3}, {.3, .1, -.9, .05}}
	near(t, "ties", TIES(ds, []float64{1, .5, 1}, .5), []float64{.4, -1, -.9, 0})
	// A missing delta is a zero one; density 1 keeps everything.
	near(t, "ties with nil", TIES([][]float32{{1, -2}, nil}, []float64{1, 1}, 1), []float64{1, -2})
	// Two agreeing adapters average.
	near(t, "ties mean", TIES([][]float32{{2, -4}, {4, -2}}, []float64{1, 1}, 1), []float64{3, -3})
}

func TestTopK(t *testing.T) {
	near(t, "top-2", TopK([]float32{1, -3, 3, 2}, .5), []float64{0, -3, 3, 0})
	near(t, "ties of magnitude keep index order", TopK([]float32{1, 1, 1, 1}, .5), []float64{1, 1, 0, 0})
	near(t, "at least one", TopK([]float32{1, 2, 3}, .01), []float64{0, 0, 3})
}

// A DARE example worked by hand from the seeded masks (seed 7, parameter
// "p", density 0.5): adapter 0 keeps [T F T F], adapter 1 [T T F T].
//
//	d1 = [.5, -1, .2, 0] w 1;  d2 = [-.4, .8, .6, -.3] w .5
//	j0 (.5 - .2)/.5 = .6;  j1 (.4)/.5 = .8;  j2 .2/.5 = .4;  j3 -.15/.5 = -.3
func TestDAREByHand(t *testing.T) {
	m0, m1 := Mask(4, .5, 7, "p", 0), Mask(4, .5, 7, "p", 1)
	if !m0[0] || m0[1] || !m0[2] || m0[3] || !m1[0] || !m1[1] || m1[2] || !m1[3] {
		t.Fatalf("masks %v %v changed (math/rand/v2 PCG streams are fixed)", m0, m1)
	}
	ds := [][]float32{{.5, -1, .2, 0}, {-.4, .8, .6, -.3}}
	w := []float64{1, .5}
	near(t, "dare", DARE(ds, w, .5, 7, "p"), []float64{.6, .8, .4, -.3})
	// Deterministic with a seed, different with another seed or parameter.
	big := [][]float32{make([]float32, 1000), make([]float32, 1000)}
	for i := range big[0] {
		big[0][i], big[1][i] = 1, -0.5
	}
	a, b := DARE(big, w, .3, 11, "x"), DARE(big, w, .3, 11, "x")
	c, d := DARE(big, w, .3, 12, "x"), DARE(big, w, .3, 11, "y")
	same := func(x, y []float32) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) || same(a, c) || same(a, d) {
		t.Fatal("DARE is not determined by seed and parameter name")
	}
	// Unbiased: the mean over many entries approaches the weighted sum.
	n := 200000
	one := []float32{}
	for i := 0; i < n; i++ {
		one = append(one, 1)
	}
	var mean float64
	for _, v := range DARE([][]float32{one}, []float64{2}, .25, 3, "z") {
		mean += float64(v) / float64(n)
	}
	if math.Abs(mean-2) > 0.03 {
		t.Fatalf("DARE mean %v, want about 2", mean)
	}
	// density 1 is the weighted sum.
	near(t, "dare density 1", DARE(ds, w, 1, 0, "p"), []float64{.3, -.6, .5, -.15})
}
