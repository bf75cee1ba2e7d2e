package vmath

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/surgeon-ml/surgeon/internal/asmout"
)

// impl is one implementation of the kernels: the assembly when the CPU
// runs it, and always the pure-Go one.
type impl struct {
	name     string
	exp      func(dst, src []float32)
	expSum   func(dst, src []float32, shift float32) float32
	max      func(x []float32) float32
	scale    func(x []float32, a float32)
	sigmoid  func(dst, src []float32)
	gelu     func(dst, src []float32)
	geluGrad func(dst, x, gy []float32)
}

func impls(t testing.TB) []impl {
	all := []impl{{"go", expGeneric, expSumGeneric, maxGeneric, scaleGeneric, sigmoidGeneric, geluGeneric, geluGradGeneric}}
	if hasAsm {
		all = append(all, impl{"avx2", expAVX2, expSumAVX2, maxAVX2, scaleAVX2, sigmoidAVX2, geluAVX2, geluGradAVX2})
	} else {
		t.Log("no AVX2+FMA: testing the Go kernels only")
	}
	return all
}

var lengths = []int{0, 1, 7, 8, 9, 15, 16, 33, 1000}

const sentinel = float32(-12345.5)

// withSentinels returns a slice of n elements followed by guard values
// that a kernel must not overwrite.
func withSentinels(n int) []float32 {
	s := make([]float32, n+9)
	for i := n; i < len(s); i++ {
		s[i] = sentinel
	}
	return s[:n]
}

func checkSentinels(t *testing.T, s []float32) {
	t.Helper()
	for _, v := range s[len(s):cap(s)] {
		if v != sentinel {
			t.Fatalf("kernel wrote past the end of dst (len %d)", len(s))
		}
	}
}

// expInputs returns a sweep over the exponential's range, edge cases, and
// values around the cut-offs.
func expInputs() []float32 {
	xs := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 1e-10, -1e-10, 1e-40,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		88.72283, 88.7229, 88.72, 89, 100, math.MaxFloat32,
		-87.33654, -87.3366, -87.3, -88, -103, -math.MaxFloat32,
		0.34657359, -0.34657359, 0.6931472, 44.36, -43.6}
	for x := float32(-90); x < 90; x += 0.01371 {
		xs = append(xs, x)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		xs = append(xs, float32(r.NormFloat64()*10))
	}
	return xs
}

// checkExp compares y = exp(x) with float64: 3e-7 relative in the normal
// range, and the documented results outside it.
func checkExp(t *testing.T, x, y float32) {
	t.Helper()
	switch {
	case x != x:
		if y == y {
			t.Fatalf("exp(NaN) = %v", y)
		}
	case x > 88.72283:
		if !math.IsInf(float64(y), 1) {
			t.Fatalf("exp(%v) = %v, want +Inf", x, y)
		}
	case x < -87.33654:
		if y != 0 {
			t.Fatalf("exp(%v) = %v, want 0", x, y)
		}
	default:
		want := math.Exp(float64(x))
		if rel := math.Abs(float64(y)-want) / want; rel > 3e-7 {
			t.Fatalf("exp(%v) = %v, want %v (relative error %.3g)", x, y, want, rel)
		}
	}
}

func TestExp(t *testing.T) {
	xs := expInputs()
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			y := withSentinels(len(xs))
			im.exp(y, xs)
			checkSentinels(t, y)
			for i, x := range xs {
				checkExp(t, x, y[i])
			}
			for _, n := range lengths {
				y := withSentinels(n)
				im.exp(y, xs[:n])
				checkSentinels(t, y)
				for i, x := range xs[:n] {
					checkExp(t, x, y[i])
				}
				// In place.
				z := append([]float32(nil), xs[:n]...)
				im.exp(z, z)
				for i := range z {
					if z[i] != y[i] && !(z[i] != z[i] && y[i] != y[i]) {
						t.Fatalf("in-place exp differs at %d: %v vs %v", i, z[i], y[i])
					}
				}
			}
		})
	}
}

func TestExpSum(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, im := range impls(t) {
		for _, n := range lengths {
			t.Run(fmt.Sprintf("%s/%d", im.name, n), func(t *testing.T) {
				x := make([]float32, n)
				for i := range x {
					x[i] = float32(r.NormFloat64() * 5)
				}
				shift := maxGeneric(x)
				if n == 0 {
					shift = 0
				}
				y := withSentinels(n)
				got := im.expSum(y, x, shift)
				checkSentinels(t, y)
				var want float64
				for i, v := range x {
					checkExp(t, v-shift, y[i])
					want += math.Exp(float64(v - shift))
				}
				if math.Abs(float64(got)-want) > 1e-6*math.Max(want, 1) {
					t.Fatalf("sum %v, want %v", got, want)
				}
			})
		}
	}
}

func TestMax(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	nan := float32(math.NaN())
	for _, im := range impls(t) {
		for _, n := range lengths {
			t.Run(fmt.Sprintf("%s/%d", im.name, n), func(t *testing.T) {
				// All negative, so that lanes past the end read as zero
				// would show.
				x := make([]float32, n)
				for i := range x {
					x[i] = -1 - float32(r.Float64()*100)
				}
				want := float32(math.Inf(-1))
				for _, v := range x {
					want = max(want, v)
				}
				if got := im.max(x); got != want {
					t.Fatalf("max = %v, want %v", got, want)
				}
				if n > 0 {
					x[n/2] = nan
					x[n-1] = nan
					if got := im.max(x); got == got && got > want {
						t.Fatalf("max with NaNs = %v", got)
					}
					x[0] = 7
					if got := im.max(x); got != 7 {
						t.Fatalf("max = %v, want 7", got)
					}
				}
			})
		}
		if got := im.max([]float32{nan, nan, nan}); !math.IsInf(float64(got), -1) {
			t.Fatalf("%s: max of NaNs = %v, want -Inf", im.name, got)
		}
	}
}

func TestScale(t *testing.T) {
	for _, im := range impls(t) {
		for _, n := range lengths {
			x := withSentinels(n)
			for i := range x {
				x[i] = float32(i) - 3
			}
			im.scale(x, 0.5)
			checkSentinels(t, x)
			for i, v := range x {
				if v != (float32(i)-3)*0.5 {
					t.Fatalf("%s: scale[%d] = %v", im.name, i, v)
				}
			}
		}
	}
}

func TestSigmoid(t *testing.T) {
	xs := expInputs()
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			for _, n := range append(lengths, len(xs)) {
				y := withSentinels(n)
				im.sigmoid(y, xs[:n])
				checkSentinels(t, y)
				for i, x := range xs[:n] {
					if x != x {
						if y[i] == y[i] {
							t.Fatalf("sigmoid(NaN) = %v", y[i])
						}
						continue
					}
					want := 1 / (1 + math.Exp(-float64(x)))
					tol := 4e-7 * want
					if x < -87 {
						tol = 1.2e-38 // exp flushes to zero below 2^-126
					}
					if math.Abs(float64(y[i])-want) > tol {
						t.Fatalf("sigmoid(%v) = %v, want %v", x, y[i], want)
					}
				}
			}
		})
	}
}

// geluInputs covers the range where GELU is neither 0 nor x, and beyond.
func geluInputs() []float32 {
	xs := []float32{0, float32(math.Copysign(0, -1)), 1e-20, -1e-20, 1e-5, -1e-5,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		13, -13, 14, -14, 20, -20, 1e10, -1e10}
	for x := float32(-15); x < 15; x += 0.000731 {
		xs = append(xs, x)
	}
	return xs
}

func cdf64(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

func TestGELU(t *testing.T) {
	xs := geluInputs()
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			worst := 0.0
			for _, n := range append(lengths, len(xs)) {
				y := withSentinels(n)
				im.gelu(y, xs[:n])
				checkSentinels(t, y)
				for i, x := range xs[:n] {
					xf := float64(x)
					switch {
					case x != x || math.IsInf(xf, -1):
						if y[i] == y[i] {
							t.Fatalf("gelu(%v) = %v, want NaN", x, y[i])
						}
						continue
					case math.IsInf(xf, 1):
						if y[i] != x {
							t.Fatalf("gelu(+Inf) = %v", y[i])
						}
						continue
					}
					// Phi to 1.5e-7 absolute and float32 rounding of the
					// product.
					want := xf * cdf64(xf)
					err := math.Abs(float64(y[i]) - want)
					if err > 1.2e-7*math.Abs(xf)+6e-8*math.Abs(want) {
						t.Fatalf("gelu(%v) = %v, want %v (error %.3g)", x, y[i], want, err)
					}
					if x != 0 {
						worst = max(worst, math.Abs(float64(y[i])/xf-cdf64(xf)))
					}
				}
			}
			t.Logf("worst absolute error of Phi: %.3g", worst)
		})
	}
}

func TestGELUGrad(t *testing.T) {
	xs := geluInputs()
	gy := make([]float32, len(xs))
	r := rand.New(rand.NewPCG(7, 8))
	for i := range gy {
		gy[i] = float32(r.NormFloat64())
	}
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			for _, n := range append(lengths, len(xs)) {
				y := withSentinels(n)
				im.geluGrad(y, xs[:n], gy[:n])
				checkSentinels(t, y)
				for i, x := range xs[:n] {
					xf := float64(x)
					if x != x || math.IsInf(xf, 0) {
						continue // NaN, as the float64 formula gives
					}
					d := cdf64(xf) + xf*math.Exp(-xf*xf/2)/math.Sqrt(2*math.Pi)
					want := float64(gy[i]) * d
					err := math.Abs(float64(y[i]) - want)
					if err > (3e-7+3e-7*math.Abs(xf))*math.Abs(float64(gy[i])) {
						t.Fatalf("gelu'(%v)*%v = %v, want %v (error %.3g)", x, gy[i], y[i], want, err)
					}
				}
			}
		})
	}
}

// TestAgree checks that the assembly and Go kernels agree to a few ulp.
func TestAgree(t *testing.T) {
	if !hasAsm {
		t.Skip("no AVX2+FMA")
	}
	xs := geluInputs()
	for _, k := range []struct {
		name   string
		asm, g func(dst, src []float32)
	}{
		{"exp", expAVX2, expGeneric},
		{"sigmoid", sigmoidAVX2, sigmoidGeneric},
		{"gelu", geluAVX2, geluGeneric},
	} {
		a, b := make([]float32, len(xs)), make([]float32, len(xs))
		k.asm(a, xs)
		k.g(b, xs)
		for i := range a {
			if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
				d := math.Abs(float64(a[i]-b[i])) / math.Max(math.Abs(float64(b[i])), 1e-30)
				if d > 4e-7 && math.Abs(float64(a[i]-b[i])) > 1e-37 {
					t.Fatalf("%s(%v): asm %v, go %v", k.name, xs[i], a[i], b[i])
				}
			}
		}
	}
}

// TestPublic exercises the exported wrappers once each.
func TestPublic(t *testing.T) {
	x := []float32{-1, 0, 1, 2, 3, 4, 5, 6, 7}
	y := make([]float32, len(x))
	Exp(y, x)
	if y[1] != 1 {
		t.Fatalf("Exp(0) = %v", y[1])
	}
	if m := Max(x); m != 7 {
		t.Fatalf("Max = %v", m)
	}
	s := ExpSum(y, x, 7)
	Scale(y, 1/s)
	var total float32
	for _, v := range y {
		total += v
	}
	if math.Abs(float64(total)-1) > 1e-6 {
		t.Fatalf("softmax sums to %v", total)
	}
	Sigmoid(y, x)
	if y[1] != 0.5 {
		t.Fatalf("Sigmoid(0) = %v", y[1])
	}
	GELU(y, x)
	if y[1] != 0 || math.Abs(float64(y[2])-0.8413447) > 1e-6 {
		t.Fatalf("GELU = %v", y)
	}
	GELUGrad(y, x, x)
	defer func() {
		if recover() == nil {
			t.Fatal("short dst did not panic")
		}
	}()
	Exp(y[:2], x)
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
		t.Errorf("%s differs from the generator's output: run go generate ./core/vmath", name)
	}
}

func BenchmarkKernels(b *testing.B) {
	const n = 4096
	r := rand.New(rand.NewPCG(9, 10))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 3)
	}
	y := make([]float32, n)
	for _, im := range impls(b) {
		for _, k := range []struct {
			name string
			fn   func()
		}{
			{"Exp", func() { im.exp(y, x) }},
			{"ExpSum", func() { im.expSum(y, x, 3) }},
			{"Max", func() { im.max(x) }},
			{"Sigmoid", func() { im.sigmoid(y, x) }},
			{"GELU", func() { im.gelu(y, x) }},
			{"GELUGrad", func() { im.geluGrad(y, x, x) }},
		} {
			b.Run(k.name+"/"+im.name, func(b *testing.B) {
				for b.Loop() {
					k.fn()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/elem")
			})
		}
	}
	b.Run("Exp/math", func(b *testing.B) {
		for b.Loop() {
			for i, v := range x {
				y[i] = float32(math.Exp(float64(v)))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/elem")
	})
	b.Run("GELU/erf64", func(b *testing.B) {
		for b.Loop() {
			for i, v := range x {
				y[i] = float32(0.5 * float64(v) * (1 + math.Erf(float64(v)/math.Sqrt2)))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/elem")
	})
}

// TestSoftmaxGradAndSwiGLUGrad compares both paths with the formulas in
// float64, and checks that nothing is written past the outputs.
func TestSoftmaxGradAndSwiGLUGrad(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	type pair struct {
		name        string
		softmaxGrad func(d, p []float32, dot, scale float32)
		swigluGrad  func(gg, gu, gate, up, sig, dy []float32)
	}
	ps := []pair{{"go", softmaxGradGeneric, swigluGradGeneric}}
	if hasAsm {
		ps = append(ps, pair{"avx2", softmaxGradAVX2, swigluGradAVX2})
	}
	for _, im := range ps {
		for _, n := range lengths {
			p, d0 := make([]float32, n), make([]float32, n)
			gate, up, dy, sig := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
			for i := 0; i < n; i++ {
				p[i], d0[i] = r.Float32(), float32(r.NormFloat64())
				gate[i], up[i], dy[i] = float32(r.NormFloat64()*3), float32(r.NormFloat64()), float32(r.NormFloat64())
				sig[i] = float32(1 / (1 + math.Exp(-float64(gate[i]))))
			}
			d := withSentinels(n)
			copy(d, d0)
			im.softmaxGrad(d, p, 0.25, 0.125)
			checkSentinels(t, d)
			gg, gu := withSentinels(n), withSentinels(n)
			im.swigluGrad(gg, gu, gate, up, sig, dy)
			checkSentinels(t, gg)
			checkSentinels(t, gu)
			for i := 0; i < n; i++ {
				want := float64(p[i]) * (float64(d0[i]) - 0.25) * 0.125
				if math.Abs(float64(d[i])-want) > 1e-6*(1+math.Abs(want)) {
					t.Fatalf("%s n=%d: SoftmaxGrad[%d] = %v, want %v", im.name, n, i, d[i], want)
				}
				z, s, u, y := float64(gate[i]), float64(sig[i]), float64(up[i]), float64(dy[i])
				wu, wg := y*z*s, y*u*s*(1+z*(1-s))
				if math.Abs(float64(gu[i])-wu) > 1e-5*(1+math.Abs(wu)) || math.Abs(float64(gg[i])-wg) > 1e-5*(1+math.Abs(wg)) {
					t.Fatalf("%s n=%d: SwiGLUGrad[%d] = %v, %v, want %v, %v", im.name, n, i, gg[i], gu[i], wg, wu)
				}
			}
		}
	}
}
