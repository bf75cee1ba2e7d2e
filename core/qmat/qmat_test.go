package qmat

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/surgeon-ml/surgeon/core/linalg"
	"github.com/surgeon-ml/surgeon/internal/asmout"
)

var allTypes = []Type{Q8_0, Q4_0, Q4_K, Q6_K}

// toHalf converts a float32 in float16's normal range to its bits,
// truncating the mantissa: enough for test scales.
func toHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	if exp <= 0 || exp >= 31 {
		panic("toHalf: out of range")
	}
	return sign | uint16(exp)<<10 | uint16(b>>13&0x3ff)
}

func putHalf(b []byte, f float32) {
	h := toHalf(f)
	b[0], b[1] = byte(h), byte(h>>8)
}

// randMatrix returns a random [rows, cols] matrix of type t: random quants
// and scales of a few hundredths, so that values are like a weight's.
func randMatrix(r *rand.Rand, t Type, rows, cols int) Matrix {
	w := Matrix{Type: t, Rows: rows, Cols: cols}
	w.Data = make([]byte, rows*w.rowBytes())
	for i := range w.Data {
		w.Data[i] = byte(r.IntN(256))
	}
	scale := func() float32 { return float32(0.005 + 0.05*r.Float64()) }
	bb := t.BlockBytes()
	for off := 0; off < len(w.Data); off += bb {
		b := w.Data[off : off+bb]
		switch t {
		case Q8_0, Q4_0:
			s := scale()
			if r.IntN(2) == 0 {
				s = -s
			}
			putHalf(b, s)
		case Q4_K:
			putHalf(b, scale()/16)
			putHalf(b[2:], scale()/16)
		case Q6_K:
			putHalf(b[208:], scale()/32)
		}
	}
	return w
}

func randFloats(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// paths runs f on every kernel path this machine has, with the path's name.
func paths(t *testing.T, f func(t *testing.T)) {
	type path struct {
		name              string
		generic, avx2only bool
	}
	ps := []path{{"generic", true, false}}
	if hasAVX2 {
		ps = append(ps, path{"avx2", false, true})
	}
	if hasAVX512 {
		ps = append(ps, path{"avx512", false, false})
	}
	for _, p := range ps {
		t.Run(p.name, func(t *testing.T) {
			wasG := linalg.SetGeneric(p.generic)
			was5 := linalg.SetAVX512(!p.avx2only)
			defer func() { linalg.SetGeneric(wasG); linalg.SetAVX512(was5) }()
			f(t)
		})
	}
}

// reference computes C = A*W^T in float64 from the dequantized W, with the
// scale of every entry (the sum of |a||w|) for relative tolerances.
func reference(a []float32, wf []float32, m, n, k int) (c, mag []float64) {
	c, mag = make([]float64, m*n), make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s, g float64
			for p := range k {
				v := float64(a[i*k+p]) * float64(wf[j*k+p])
				s += v
				g += math.Abs(v)
			}
			c[i*n+j], mag[i*n+j] = s, g
		}
	}
	return c, mag
}

func TestMatMulNT(t *testing.T) {
	shapes := []struct{ m, n, blocks int }{
		{1, 1, 1}, {1, 7, 3}, {2, 37, 5}, {3, 16, 8}, {6, 45, 3}, {1, 300, 24},
		{7, 19, 2}, {20, 33, 4}, // dequantize, then Sgemm
	}
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, typ := range allTypes {
			for _, s := range shapes {
				for _, perm := range []bool{false, true} {
					for _, acc := range []bool{false, true} {
						name := fmt.Sprintf("%s/%dx%dx%d/perm=%v/acc=%v", typ, s.m, s.n, s.blocks, perm, acc)
						t.Run(name, func(t *testing.T) {
							k := s.blocks * typ.BlockSize()
							w := randMatrix(r, typ, s.n, k)
							if perm {
								w.RowOrder = r.Perm(s.n)
							}
							a := randFloats(r, s.m*k)
							wf := make([]float32, s.n*k)
							Dequantize(wf, w)
							want, mag := reference(a, wf, s.m, s.n, k)
							c := randFloats(r, s.m*s.n)
							c0 := append([]float32(nil), c...)
							MatMulNT(c, a, w, s.m, acc, nil)
							for i, got := range c {
								exp := want[i]
								if acc {
									exp += float64(c0[i])
								}
								if d := math.Abs(float64(got) - exp); d > 1e-5*(mag[i]+math.Abs(float64(c0[i]))) {
									t.Fatalf("c[%d] = %g, want %g (off by %.3g of the magnitude %g)", i, got, exp, d/mag[i], mag[i])
								}
							}
						})
					}
				}
			}
		}
	})
}

// TestDequantizePaths checks that every path's Dequantize gives the
// portable values bit for bit, row orders included.
func TestDequantizePaths(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, typ := range allTypes {
		w := randMatrix(r, typ, 37, 3*typ.BlockSize())
		w.RowOrder = r.Perm(37)
		want := make([]float32, w.Rows*w.Cols)
		for i := range w.Rows {
			genericDequant[typ](want[i*w.Cols:(i+1)*w.Cols], w.row(i))
		}
		paths(t, func(t *testing.T) {
			got := make([]float32, len(want))
			Dequantize(got, w)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s: element %d = %g, want %g", typ, i, got[i], want[i])
				}
			}
		})
	}
}

// TestLargeParallel runs a product big enough to be split among workers,
// on a matrix with a row order, against the dequantized product.
func TestLargeParallel(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, typ := range allTypes {
		w := randMatrix(r, typ, 515, 4*typ.BlockSize())
		w.RowOrder = r.Perm(w.Rows)
		paths(t, func(t *testing.T) {
			for _, m := range []int{1, 4, 9} {
				a := randFloats(r, m*w.Cols)
				wf := make([]float32, w.Rows*w.Cols)
				Dequantize(wf, w)
				want, mag := reference(a, wf, m, w.Rows, w.Cols)
				c := make([]float32, m*w.Rows)
				MatMulNT(c, a, w, m, false, nil)
				for i, got := range c {
					if d := math.Abs(float64(got) - want[i]); d > 1e-5*mag[i] {
						t.Fatalf("%s m=%d: c[%d] = %g, want %g", typ, m, i, got, want[i])
					}
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	good := Matrix{Type: Q8_0, Rows: 2, Cols: 64, Data: make([]byte, 2*2*34)}
	cases := []struct {
		name string
		w    Matrix
		ok   bool
	}{
		{"good", good, true},
		{"unknown type", Matrix{Type: 99, Rows: 1, Cols: 32, Data: make([]byte, 34)}, false},
		{"partial block", Matrix{Type: Q8_0, Rows: 1, Cols: 40, Data: make([]byte, 34)}, false},
		{"short data", Matrix{Type: Q8_0, Rows: 2, Cols: 64, Data: make([]byte, 100)}, false},
		{"bad order", Matrix{Type: Q8_0, Rows: 2, Cols: 64, Data: good.Data, RowOrder: []int{1, 1}}, false},
		{"short order", Matrix{Type: Q8_0, Rows: 2, Cols: 64, Data: good.Data, RowOrder: []int{0}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.w.Check(); (err == nil) != c.ok {
				t.Fatalf("Check() = %v, want ok %v", err, c.ok)
			}
		})
	}
}

// TestGeneratedUpToDate regenerates the assembly into a temporary directory
// and checks that the committed files are its output, byte for byte.
func TestGeneratedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the generator")
	}
	stale, err := asmout.Stale("kernels_amd64", t.TempDir())
	if errors.Is(err, asmout.ErrNoGo) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range stale {
		t.Errorf("%s differs from the generator's output: run go generate ./core/qmat", name)
	}
}
