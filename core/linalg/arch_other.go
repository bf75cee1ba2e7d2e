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

func packTAsm(dst, src []float32, ld, kc, rows int) {
	panic("linalg: no assembly kernels on this architecture")
}

func packBAsm(dst, b []float32, ldb, kc, slivers, cols int) {
	panic("linalg: no assembly kernels on this architecture")
}

// hasF16C is false: only amd64 has assembly kernels.
const hasF16C = false

func widenAsm(dst []float32, src []uint16, h Half, ymm bool) {
	panic("linalg: no assembly kernels on this architecture")
}
