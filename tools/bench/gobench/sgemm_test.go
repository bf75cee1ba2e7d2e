package gobench

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/linalg"
)

// sgemmShapes are the products compared with torch.mm: C[m,n] = A[m,k] B[k,n]
// for a BERT-base FFN projection of 1024 tokens and the two skinny products
// of a rank-8 LoRA path on the same tokens.
var sgemmShapes = []struct{ m, k, n int }{
	{1024, 768, 3072},
	{1024, 768, 8},
	{1024, 8, 768},
}

// BenchmarkSgemm measures linalg.MatMulNN (B stored [k,n]) and MatMulNT
// (B stored [n,k], the layout of x W^T) in GFLOP/s; the asm metric is 1 when
// the assembly kernels ran. Sub-benchmark names are OP/MxKxN. On a CPU with
// AVX-512 the first shape is measured again held to the AVX2 kernel, as
// OP-avx2/MxKxN, for CPUs without it (compared with OpenBLAS's Haswell
// kernels).
func BenchmarkSgemm(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	randn := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(r.NormFloat64())
		}
		return s
	}
	for _, s := range sgemmShapes {
		a, w, c := randn(s.m*s.k), randn(s.k*s.n), make([]float32, s.m*s.n)
		ops := []string{"NN", "NT"}
		if s == sgemmShapes[0] && linalg.AVX512() {
			ops = append(ops, "NN-avx2", "NT-avx2")
		}
		for _, op := range ops {
			b.Run(fmt.Sprintf("%s/%dx%dx%d", op, s.m, s.k, s.n), func(b *testing.B) {
				f := linalg.MatMulNN
				if strings.HasPrefix(op, "NT") {
					f = linalg.MatMulNT
				}
				if strings.HasSuffix(op, "-avx2") {
					defer linalg.SetAVX512(linalg.SetAVX512(false))
				}
				f(c, a, w, s.m, s.n, s.k, false) // warm the worker pool and caches
				b.ResetTimer()
				for b.Loop() {
					f(c, a, w, s.m, s.n, s.k, false)
				}
				b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				if linalg.Accelerated() {
					b.ReportMetric(1, "asm")
				} else {
					b.ReportMetric(0, "asm")
				}
			})
		}
	}
}
