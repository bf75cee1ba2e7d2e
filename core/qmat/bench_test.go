package qmat

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/surgeon-ml/surgeon/core/linalg"
)

// benchShapes are the products of decoding and prompt processing with the
// 110M-parameter Llama of make bench-decode (hidden 768, intermediate 2048,
// vocabulary 16000): m activation rows times a weight [n, k].
var benchShapes = []struct{ m, n, k int }{
	{1, 768, 768},
	{1, 2048, 768},
	{1, 768, 2048},
	{1, 16000, 768},
	{4, 2048, 768},
	{64, 2048, 768},
	{512, 2048, 768},
}

// BenchmarkMatMulNT compares, in the same run, each type's product on
// every path with the float32 product of linalg on the same shape ("f32"),
// in GFLOP/s and in weight bytes read per second; Q8_0 and Q4_0 also
// run MatMulNTInt8's int8-activation product ("-int8") where it applies.
func BenchmarkMatMulNT(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		a := randFloats(r, s.m*s.k)
		c := make([]float32, s.m*s.n)
		wf := randFloats(r, s.n*s.k)
		report := func(b *testing.B, bytes int) {
			b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		}
		shape := fmt.Sprintf("%dx%dx%d", s.m, s.n, s.k)
		b.Run(shape+"/F32", func(b *testing.B) {
			for range b.N {
				linalg.MatMulNT(c, a, wf, s.m, s.n, s.k, false)
			}
			report(b, 4*len(wf))
		})
		for _, typ := range allTypes {
			w := randMatrix(r, typ, s.n, s.k)
			scratch := make([]float32, s.n*s.k)
			for _, path := range []string{"avx512", "avx2", "generic"} {
				if path == "avx512" && !hasAVX512 || path == "avx2" && !hasAVX2 {
					continue
				}
				b.Run(fmt.Sprintf("%s/%s/%s", shape, typ, path), func(b *testing.B) {
					wasG := linalg.SetGeneric(path == "generic")
					was5 := linalg.SetAVX512(path == "avx512")
					defer func() { linalg.SetGeneric(wasG); linalg.SetAVX512(was5) }()
					for range b.N {
						MatMulNT(c, a, w, s.m, false, scratch)
					}
					report(b, len(w.Data))
				})
				if !int8Type(typ) || s.m > MaxDirectRows {
					continue
				}
				// The int8-activation product of inference (on the
				// avx512 path, the VNNI kernel where the CPU has it).
				b.Run(fmt.Sprintf("%s/%s/%s-int8", shape, typ, path), func(b *testing.B) {
					wasG := linalg.SetGeneric(path == "generic")
					was5 := linalg.SetAVX512(path == "avx512")
					defer func() { linalg.SetGeneric(wasG); linalg.SetAVX512(was5) }()
					wasI := SetInt8Activations(true)
					defer SetInt8Activations(wasI)
					for range b.N {
						MatMulNTInt8(c, a, w, s.m, false, scratch)
					}
					report(b, len(w.Data))
				})
			}
		}
	}
}
