package linalg

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// benchShapes are the products that dominate LoRA training of a small Llama:
// full projections, the two skinny LoRA factors, and tiny per-head ones;
// then those of generation.
var benchShapes = []struct {
	op      string
	m, n, k int
}{
	{"NN", 1024, 768, 3072},
	{"NT", 1024, 768, 3072},
	{"NN", 1024, 768, 8},
	{"NT", 1024, 768, 8},
	{"NN", 1024, 8, 768},
	{"NT", 1024, 8, 768},
	{"TN", 8, 768, 1024},
	{"NN", 64, 64, 64},
	{"NT", 64, 64, 64},
	{"NN", 64, 64, 8},
	// One attention head of 8 features over 64 tokens: scores, output and
	// the gradients of backward.
	{"NT", 64, 64, 8},
	{"NN", 64, 8, 64},
	{"TN", 64, 8, 64},
	// Matrix-vector products of generation, one token at a time.
	{"NT", 1, 3072, 768},
	{"NT", 4, 3072, 768},
	{"NT", 3072, 1, 768},
	{"NN", 1, 3072, 768},
	{"NN", 3072, 1, 768},
	{"TN", 1, 768, 3072},
}

// BenchmarkMatMul compares the assembly and generic paths with the scalar
// code that the package had before, in GFLOP/s.
func BenchmarkMatMul(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		x := randSlice(r, s.m*s.k)
		y := randSlice(r, s.k*s.n)
		c := make([]float32, s.m*s.n)
		for _, path := range []string{"asm", "avx2", "generic", "scalar"} {
			if path == "asm" && !hasAsm || path == "avx2" && !hasAVX512 {
				continue
			}
			fn := map[string]func(c, a, b []float32, m, n, k int, acc bool){
				"NN": MatMulNN, "NT": MatMulNT, "TN": MatMulTN,
			}[s.op]
			if path == "scalar" {
				fn = map[string]func(c, a, b []float32, m, n, k int, acc bool){
					"NN": oldMatMulNN, "NT": oldMatMulNT, "TN": oldMatMulTN,
				}[s.op]
			}
			b.Run(fmt.Sprintf("%s/%dx%dx%d/%s", s.op, s.m, s.n, s.k, path), func(b *testing.B) {
				withPath(path, func() {
					for b.Loop() {
						fn(c, x, y, s.m, s.n, s.k, false)
					}
					b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			})
		}
	}
}

func BenchmarkDotAxpy(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	for _, n := range []int{64, 4096} {
		x, y := randSlice(r, n), randSlice(r, n)
		for _, path := range []string{"asm", "generic"} {
			if path == "asm" && !hasAsm {
				continue
			}
			b.Run(fmt.Sprintf("Dot/%d/%s", n, path), func(b *testing.B) {
				withPath(path, func() {
					var s float32
					for b.Loop() {
						s += Dot(x, y)
					}
					_ = s
					b.ReportMetric(2*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			})
			b.Run(fmt.Sprintf("Axpy/%d/%s", n, path), func(b *testing.B) {
				withPath(path, func() {
					for b.Loop() {
						Axpy(1e-3, x, y)
					}
					b.ReportMetric(2*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			})
		}
	}
}

// BenchmarkMatMulHalf compares a product with a BF16 B widened as it is
// packed ("packed") with widening all of B into a float32 buffer first and
// multiplying that ("widened"), on the projections of a TinyLlama-shaped
// model (1024 tokens): the forward product (NT) and the input gradient
// (NN), with the AVX-512 kernels ("asm") and the AVX2 ones.
func BenchmarkMatMulHalf(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, s := range []struct {
		op      string
		m, n, k int
	}{
		{"NT", 1024, 2048, 2048}, {"NT", 1024, 5632, 2048}, {"NN", 1024, 2048, 5632}, {"NN", 1024, 2048, 2048},
	} {
		x := randSlice(r, s.m*s.k)
		bh, _ := randHalves(r, s.n*s.k, BF16)
		c := make([]float32, s.m*s.n)
		w := make([]float32, s.n*s.k)
		for _, path := range []string{"asm", "avx2"} {
			if path == "asm" && !hasAVX512 || !hasAsm {
				continue
			}
			// f32: B already float32 in memory, as in PyTorch, the
			// product's rate without any decoding.
			WidenHalf(w, bh, BF16)
			wf := slices.Clone(w)
			for _, mode := range []string{"packed", "widened", "f32"} {
				b.Run(fmt.Sprintf("%s/%dx%dx%d/%s/%s", s.op, s.m, s.n, s.k, path, mode), func(b *testing.B) {
					withPath(path, func() {
						for b.Loop() {
							switch {
							case mode == "f32" && s.op == "NT":
								MatMulNT(c, x, wf, s.m, s.n, s.k, false)
							case mode == "f32":
								MatMulNN(c, x, wf, s.m, s.n, s.k, false)
							case mode == "widened" && s.op == "NT":
								WidenHalf(w, bh, BF16)
								MatMulNT(c, x, w, s.m, s.n, s.k, false)
							case mode == "widened":
								WidenHalf(w, bh, BF16)
								MatMulNN(c, x, w, s.m, s.n, s.k, false)
							case s.op == "NT":
								MatMulNTSource(c, x, HalfRows(bh, BF16, s.n, s.k), s.m, s.n, s.k, false)
							default:
								MatMulNNSource(c, x, HalfRows(bh, BF16, s.k, s.n), s.m, s.n, s.k, false)
							}
						}
					})
					b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
