package qmat

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refQuantize quantizes one 32-value block as MatMulNTInt8 documents:
// d = max|x|/127, q = round(x*(1/d)) half away from zero, in float32.
func refQuantize(x []float32) (q [32]int8, d float32) {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d = amax / 127
	if d == 0 {
		return q, 0
	}
	id := 1 / d
	for j, v := range x {
		q[j] = int8(math.Round(float64(v * id)))
	}
	return q, d
}

// weightQuants returns the int quants and the float16 scale of block b of
// a Q8_0 or Q4_0 weight row.
func weightQuants(t Type, row []byte, b int) (q [32]int32, d float32) {
	blk := row[b*t.BlockBytes() : (b+1)*t.BlockBytes()]
	for j := range 32 {
		if t == Q8_0 {
			q[j] = int32(int8(blk[2+j]))
		} else {
			q[j] = int32(blk[2+j%16]>>(4*(j/16))&0xf) - 8
		}
	}
	return q, half(blk, 0)
}

// int8Reference computes the int8-activation product in float64: every
// block's integer sum times the float32 product of the scales, and the
// magnitude (the sum of |qx*qw| times the scales) for tolerances.
func int8Reference(a []float32, w Matrix, m int) (c, mag []float64) {
	n, k := w.Rows, w.Cols
	c, mag = make([]float64, m*n), make([]float64, m*n)
	for i := range m {
		for r := range n {
			row := w.row(r)
			for b := range k / 32 {
				qx, dx := refQuantize(a[i*k+32*b : i*k+32*b+32])
				qw, dw := weightQuants(w.Type, row, b)
				var s, g int64
				for j := range 32 {
					p := int64(qx[j]) * int64(qw[j])
					s += p
					g += max(p, -p)
				}
				sc := float64(dw * dx)
				c[i*n+r] += float64(s) * sc
				mag[i*n+r] += float64(g) * math.Abs(sc)
			}
		}
	}
	return c, mag
}

var int8Shapes = []struct{ m, n, blocks int }{
	{1, 1, 1}, {1, 7, 3}, {2, 37, 5}, {3, 16, 8}, {6, 45, 3}, {1, 300, 24}, {4, 515, 4},
	{2, 9, 6}, {1, 5, 7}, {5, 3, 2},
}

// int8Activations returns random activations with some blocks all zero
// and some with a large outlier, as a real residual stream has.
func int8Activations(r *rand.Rand, m, k int) []float32 {
	a := randFloats(r, m*k)
	for b := 0; b < m*k/32; b++ {
		switch r.IntN(8) {
		case 0:
			clear(a[32*b : 32*b+32])
		case 1:
			a[32*b+r.IntN(32)] *= 40
		}
	}
	return a
}

// withInt8 turns the int8-activation products on for the test.
func withInt8(t *testing.T) {
	was := SetInt8Activations(true)
	t.Cleanup(func() { SetInt8Activations(was) })
}

// TestQuantizeRows checks the quantizer against refQuantize exactly.
func TestQuantizeRows(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	a := int8Activations(r, 3, 32*40)
	// Values at exact halves of the step, and the extremes.
	copy(a, []float32{127, -127, 0.5, -0.5, 1.5, -1.5, 2.5, 126.5, -126.5})
	x := quantizeRows(a, 3, 32*40)
	for b := range 3 * 40 {
		q, d := refQuantize(a[32*b : 32*b+32])
		var sum [8]int32
		for j := range 32 {
			if x.q[32*b+j] != q[j] {
				t.Fatalf("block %d: q[%d] = %d, want %d", b, j, x.q[32*b+j], q[j])
			}
			sum[j/4] -= 8 * int32(q[j])
		}
		if x.d[b] != d || [8]int32(x.s[8*b:8*b+8]) != sum {
			t.Fatalf("block %d: d, s = %g, %d, want %g, %d", b, x.d[b], x.s[8*b:8*b+8], d, sum)
		}
	}
}

// TestMatMulNTInt8 checks every path's int8-activation product against
// int8Reference, to float32 rounding (1e-5 of the magnitude).
func TestMatMulNTInt8(t *testing.T) {
	withInt8(t)
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, typ := range []Type{Q8_0, Q4_0} {
			for _, s := range int8Shapes {
				for _, perm := range []bool{false, true} {
					for _, acc := range []bool{false, true} {
						name := fmt.Sprintf("%s/%dx%dx%d/perm=%v/acc=%v", typ, s.m, s.n, s.blocks, perm, acc)
						t.Run(name, func(t *testing.T) {
							k := 32 * s.blocks
							w := randMatrix(r, typ, s.n, k)
							if perm {
								w.RowOrder = r.Perm(s.n)
							}
							a := int8Activations(r, s.m, k)
							want, mag := int8Reference(a, w, s.m)
							c := randFloats(r, s.m*s.n)
							c0 := append([]float32(nil), c...)
							MatMulNTInt8(c, a, w, s.m, acc, nil)
							for i, got := range c {
								exp, tol := want[i], 1e-5*mag[i]
								if acc {
									exp += float64(c0[i])
									tol += 1e-6 * math.Abs(float64(c0[i]))
								}
								if d := math.Abs(float64(got) - exp); d > tol {
									t.Fatalf("c[%d] = %g, want %g (off by %.3g, tolerance %.3g)", i, got, exp, d, tol)
								}
							}
						})
					}
				}
			}
		}
	})
}

// TestMatMulNTInt8Error bounds the int8-activation product's distance from
// the exact product of the float32 activations and the dequantized weight:
// each activation moves by at most half its block's step d = max|x|/127,
// so |c - exact| <= sum_j |w_j| * d(j)/2 (times 1.001 for the rounding of
// x/d), plus 1e-5 of sum_j |a_j w_j| for float32 rounding. It also logs
// the error relative to the float32-activation path's, in the norm of all
// outputs.
func TestMatMulNTInt8Error(t *testing.T) {
	withInt8(t)
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, typ := range []Type{Q8_0, Q4_0} {
			const m, n, k = 3, 200, 32 * 24
			w := randMatrix(r, typ, n, k)
			a := int8Activations(r, m, k)
			wf := make([]float32, n*k)
			Dequantize(wf, w)
			exact, mag := reference(a, wf, m, n, k)
			c8 := make([]float32, m*n)
			MatMulNTInt8(c8, a, w, m, false, nil)
			cf := make([]float32, m*n)
			MatMulNT(cf, a, w, m, false, nil)
			var e2, f2, n2 float64
			for i := range m {
				for j := range n {
					var bound float64
					for b := range k / 32 {
						_, d := refQuantize(a[i*k+32*b : i*k+32*b+32])
						for p := 32 * b; p < 32*b+32; p++ {
							bound += math.Abs(float64(wf[j*k+p])) * float64(d) / 2
						}
					}
					bound = 1.001*bound + 1e-5*mag[i*n+j]
					got, want := float64(c8[i*n+j]), exact[i*n+j]
					if d := math.Abs(got - want); d > bound {
						t.Fatalf("%s: c[%d, %d] = %g, exact %g: off by %.3g, bound %.3g", typ, i, j, got, want, d, bound)
					}
					e2 += (got - want) * (got - want)
					f2 += (float64(cf[i*n+j]) - want) * (float64(cf[i*n+j]) - want)
					n2 += want * want
				}
			}
			t.Logf("%s: relative error (2-norm) int8 activations %.2e, float32 activations %.2e", typ, math.Sqrt(e2/n2), math.Sqrt(f2/n2))
		}
	})
}

// TestMatMulNTInt8Fallback checks that MatMulNTInt8 is MatMulNT, bit for
// bit, when switched off, for other types and for more than MaxDirectRows
// rows.
func TestMatMulNTInt8Fallback(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	cases := []struct {
		typ Type
		m   int
		off bool
	}{
		{Q8_0, 2, true}, {Q4_0, 1, true}, {Q4_K, 2, false}, {Q6_K, 1, false}, {Q8_0, MaxDirectRows + 1, false},
	}
	for _, cs := range cases {
		t.Run(fmt.Sprintf("%s/m=%d/off=%v", cs.typ, cs.m, cs.off), func(t *testing.T) {
			w := randMatrix(r, cs.typ, 40, 256)
			a := randFloats(r, cs.m*256)
			want := make([]float32, cs.m*40)
			MatMulNT(want, a, w, cs.m, false, nil)
			was := SetInt8Activations(!cs.off)
			defer SetInt8Activations(was)
			got := make([]float32, cs.m*40)
			MatMulNTInt8(got, a, w, cs.m, false, nil)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("c[%d] = %g, MatMulNT %g", i, got[i], want[i])
				}
			}
		})
	}
}
