package linalg

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/surgeon-ml/surgeon/internal/asmout"
)

// paths are the code paths under test: the assembly one only where this CPU
// runs it.
func paths(t testing.TB) []string {
	if hasAVX512 {
		return []string{"asm", "avx2", "generic"}
	}
	if hasAsm {
		t.Logf("no AVX-512 on this machine: the AVX-512 kernel is not tested")
		return []string{"asm", "generic"}
	}
	t.Logf("no AVX2+FMA assembly on this machine: testing the generic path only")
	return []string{"generic"}
}

// withPath runs fn with the kernels forced onto path.
func withPath(path string, fn func()) {
	was := SetGeneric(path == "generic")
	defer SetGeneric(was)
	was512 := SetAVX512(path != "avx2")
	defer SetAVX512(was512)
	fn()
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// product is one test case: logical A[m,k] and B[k,n], their stored forms for
// each layout, and C = A*B in float64.
type product struct {
	m, n, k int
	a, at   []float32 // A [m,k] and A^T [k,m]
	b, bt   []float32 // B [k,n] and B^T [n,k]
	ref     []float64
	scale   float64   // largest |ref|, at least 1
	base    []float32 // C before an accumulating product
}

func newProduct(r *rand.Rand, m, n, k int) *product {
	p := &product{m: m, n: n, k: k}
	// Trailing elements beyond the operands must not be read into C.
	p.a = append(randSlice(r, m*k), float32(math.NaN()))
	p.b = append(randSlice(r, k*n), float32(math.NaN()))
	p.at = make([]float32, k*m+1)
	p.bt = make([]float32, n*k+1)
	p.at[k*m], p.bt[n*k] = float32(math.NaN()), float32(math.NaN())
	for i := range m {
		for q := range k {
			p.at[q*m+i] = p.a[i*k+q]
		}
	}
	for q := range k {
		for j := range n {
			p.bt[j*k+q] = p.b[q*n+j]
		}
	}
	p.ref = make([]float64, m*n)
	p.scale = 1
	for i := range m {
		for j := range n {
			var s float64
			for q := range k {
				s += float64(p.a[i*k+q]) * float64(p.b[q*n+j])
			}
			p.ref[i*n+j] = s
			p.scale = math.Max(p.scale, math.Abs(s))
		}
	}
	p.base = randSlice(r, m*n)
	return p
}

type variant struct {
	name string
	run  func(c []float32, p *product, acc bool)
}

var variants = []variant{
	{"NT", func(c []float32, p *product, acc bool) { MatMulNT(c, p.a, p.bt, p.m, p.n, p.k, acc) }},
	{"NN", func(c []float32, p *product, acc bool) { MatMulNN(c, p.a, p.b, p.m, p.n, p.k, acc) }},
	{"TN", func(c []float32, p *product, acc bool) { MatMulTN(c, p.at, p.b, p.m, p.n, p.k, acc) }},
}

// compute runs v on p and returns C, checking that the elements after C
// are left alone.
func (p *product) compute(t *testing.T, v variant, acc bool) []float32 {
	t.Helper()
	const sentinel = 12345
	c := make([]float32, p.m*p.n+3)
	copy(c, p.base)
	for i := p.m * p.n; i < len(c); i++ {
		c[i] = sentinel
	}
	v.run(c, p, acc)
	for i := p.m * p.n; i < len(c); i++ {
		if c[i] != sentinel {
			t.Fatalf("wrote past C: element %d is %v", i, c[i])
		}
	}
	return c[:p.m*p.n]
}

func (p *product) want(i int, acc bool) float64 {
	if acc {
		return p.ref[i] + float64(p.base[i])
	}
	return p.ref[i]
}

// testShapes cover edge tiles (not multiples of 6 or 16), k around the
// 256-deep slabs, blocks of C beyond 168 rows, operands read in place (m or
// n at most 32), the dot-product and row-update paths (m or n at most 4),
// products split across the worker pool (m*n*k at least minParallelWork),
// and degenerate dimensions.
func testShapes(short bool) [][3]int {
	var s [][3]int
	for _, m := range []int{1, 7, 33} {
		for _, n := range []int{1, 7, 33} {
			for _, k := range []int{1, 7, 33} {
				s = append(s, [3]int{m, n, k})
			}
		}
	}
	s = append(s,
		[3]int{6, 16, 4}, [3]int{12, 32, 256}, [3]int{5, 64, 1}, [3]int{130, 70, 100},
		[3]int{1, 1000, 7}, [3]int{1000, 1, 7}, [3]int{7, 1, 1000}, [3]int{1, 7, 1000},
		[3]int{1000, 7, 33}, [3]int{33, 1000, 7}, [3]int{7, 33, 1000},
		[3]int{1000, 33, 1}, [3]int{1, 33, 1000}, [3]int{64, 64, 8}, [3]int{169, 17, 257},
		[3]int{3, 5, 0}, [3]int{0, 5, 3}, [3]int{5, 0, 3}, [3]int{300, 40, 200},
		[3]int{4, 700, 800}, [3]int{700, 3, 1000}, [3]int{5, 5, 1}, [3]int{4, 17, 2},
		// AVX-512 tiles (12x32): edges in both directions, k not a multiple of 4.
		[3]int{24, 64, 16}, [3]int{37, 97, 19}, [3]int{130, 70, 258},
		[3]int{1100, 64, 40}, [3]int{1001, 50, 70}, // A read in place, split among workers
		// Narrow 6x8 tiles: eight columns or fewer, read in place or packed.
		[3]int{50, 8, 70}, [3]int{13, 5, 300}, [3]int{64, 8, 64},
	)
	if !short {
		s = append(s, [3]int{1000, 1000, 1}, [3]int{1000, 33, 1000}, [3]int{200, 300, 513},
			[3]int{1024, 8, 768}, [3]int{1024, 768, 8}, [3]int{50, 4100, 20},
			[3]int{400, 2100, 300}, [3]int{2100, 100, 70})
	}
	return s
}

func TestMatMul(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sh := range testShapes(testing.Short()) {
		m, n, k := sh[0], sh[1], sh[2]
		p := newProduct(r, m, n, k)
		t.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(t *testing.T) {
			for _, v := range variants {
				for _, acc := range []bool{false, true} {
					got := map[string][]float32{}
					for _, path := range paths(t) {
						withPath(path, func() { got[path] = p.compute(t, v, acc) })
						for i, g := range got[path] {
							w := p.want(i, acc)
							if math.Abs(float64(g)-w) > 1e-5*p.scale {
								t.Fatalf("%s acc=%v %s: element %d (%d,%d) got %v want %v (scale %v)",
									v.name, acc, path, i, i/n, i%n, g, w, p.scale)
							}
						}
					}
					for _, other := range []string{"generic", "avx2"} {
						a, g := got["asm"], got[other]
						if a == nil || g == nil {
							continue
						}
						for i := range a {
							if math.Abs(float64(a[i])-float64(g[i])) > 1e-5*p.scale {
								t.Fatalf("%s acc=%v: element %d asm %v %s %v", v.name, acc, i, a[i], other, g[i])
							}
						}
					}
				}
			}
		})
	}
}

// TestMatMulConcurrent runs products from several goroutines at once, as the
// training loop and attention code do, so that -race sees the worker pool
// shared.
func TestMatMulConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	// All above minParallelWork but the second, so that pooled and serial
	// products mix.
	ps := []*product{newProduct(r, 200, 150, 100), newProduct(r, 64, 64, 64), newProduct(r, 7, 300, 1000), newProduct(r, 250, 90, 100)}
	for _, path := range paths(t) {
		withPath(path, func() {
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for rep := range 5 {
						p := ps[(g+rep)%len(ps)]
						c := make([]float32, p.m*p.n)
						MatMulNN(c, p.a, p.b, p.m, p.n, p.k, false)
						for i, v := range c {
							if math.Abs(float64(v)-p.ref[i]) > 1e-5*p.scale {
								errs <- fmt.Errorf("%s goroutine %d: %dx%dx%d element %d got %v want %v", path, g, p.m, p.n, p.k, i, v, p.ref[i])
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		})
	}
}

func TestMatMulShortSlices(t *testing.T) {
	for _, v := range []struct {
		name string
		fn   func()
	}{
		{"NT", func() { MatMulNT(make([]float32, 6), make([]float32, 6), make([]float32, 5), 2, 3, 2, false) }},
		{"NN", func() { MatMulNN(make([]float32, 5), make([]float32, 6), make([]float32, 6), 2, 3, 2, false) }},
		{"TN", func() { MatMulTN(make([]float32, 6), make([]float32, 3), make([]float32, 6), 2, 3, 2, false) }},
	} {
		t.Run(v.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic on a slice shorter than its dimensions")
				}
			}()
			v.fn()
		})
	}
}

func TestDotAxpy(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	buf := randSlice(r, 80)
	ybuf := randSlice(r, 80)
	for _, path := range paths(t) {
		withPath(path, func() {
			for n := 0; n <= 70; n++ {
				for off := 0; off < 4; off++ {
					x := buf[off : off+n]
					y := ybuf[3-off : 3-off+n+2] // longer than x, shifted differently
					var want, mag float64
					for i := range x {
						want += float64(x[i]) * float64(y[i])
						mag += math.Abs(float64(x[i]) * float64(y[i]))
					}
					if got := Dot(x, y); math.Abs(float64(got)-want) > 1e-5*math.Max(mag, 1) {
						t.Fatalf("%s Dot n=%d off=%d: got %v want %v", path, n, off, got, want)
					}

					const alpha = -0.75
					yy := append([]float32(nil), y...)
					Axpy(alpha, x, yy)
					for i := range yy {
						w := float64(y[i])
						if i < n {
							w += alpha * float64(x[i])
						}
						if math.Abs(float64(yy[i])-w) > 1e-6*math.Max(math.Abs(w), 1) {
							t.Fatalf("%s Axpy n=%d off=%d: element %d got %v want %v", path, n, off, i, yy[i], w)
						}
					}
				}
			}
		})
	}
}

func TestDotAxpyShortY(t *testing.T) {
	for _, path := range paths(t) {
		withPath(path, func() {
			for name, fn := range map[string]func(){
				"Dot":  func() { Dot(make([]float32, 9), make([]float32, 8)) },
				"Axpy": func() { Axpy(1, make([]float32, 9), make([]float32, 8)) },
			} {
				func() {
					defer func() {
						if recover() == nil {
							t.Errorf("%s %s: no panic when y is shorter than x", path, name)
						}
					}()
					fn()
				}()
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
	stale, err := asmout.Stale("kernel_amd64", t.TempDir())
	if errors.Is(err, asmout.ErrNoGo) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range stale {
		t.Errorf("%s differs from the generator's output: run go generate ./core/linalg", name)
	}
}
