//go:build !amd64

package linalg

// hasAsm is false: only amd64 has assembly kernels.
const hasAsm = false

// hasAVX512 is false: only amd64 has assembly kernels.
const hasAVX512 = false

func gemmKernel512Asm(k int, a, b, c []float32, ldc int, accum bool) {
	panic("linalg: no assembly kernels on this architecture")
}

func gemmKernelAsm(k int, a, b, c []float32, ldc int, accum bool) {
	panic("linalg: no assembly kernels on this architecture")
}

func dotAVX2(x, y []float32) float32 {
	panic("linalg: no assembly kernels on this architecture")
}

func axpyAVX2(alpha float32, x, y []float32) {
	panic("linalg: no assembly kernels on this architecture")
}

func gemmKernel512StridedAsm(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, accum bool) {
	panic("linalg: no assembly kernels on this architecture")
}

func gemmKernelNarrowStridedAsm(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, accum bool) {
	panic("linalg: no assembly kernels on this architecture")
}

func gemmKernelNarrowAsm(k int, a, b, c []float32, ldc int, accum bool) {
	panic("linalg: no assembly kernels on this architecture")
}

func gemmKernelStridedAsm(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, accum bool) {
	panic("linalg: no assembly kernels on this architecture")
}

func packA512Asm(dst, a []float32, lda, kc int, idx *[16]int32) {
	panic("linalg: no assembly kernels on this architecture")
}

func packBT512Asm(dst, b []float32, ldb, kc int, idx *[16]int32) {
	panic("linalg: no assembly kernels on this architecture")
}

func packB512Asm(dst, b []float32, ldb, kc, slivers int) {
	panic("linalg: no assembly kernels on this architecture")
}

func packA6Asm(dst, a []float32, lda, kc int) {
	panic("linalg: no assembly kernels on this architecture")
}

func packBT16Asm(dst, b []float32, ldb, kc int) {
	panic("linalg: no assembly kernels on this architecture")
}

func packB16Asm(dst, b []float32, ldb, kc, slivers int) {
	panic("linalg: no assembly kernels on this architecture")
}
