package linalg

import "golang.org/x/sys/cpu"

// hasAsm reports whether this CPU runs the AVX2+FMA kernels of kernel_amd64.s.
var hasAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// hasAVX512 reports whether this CPU also runs the AVX-512 micro-kernel.
var hasAVX512 = hasAsm && cpu.X86.HasAVX512F

// gemmKernel512Asm is the AVX-512 micro-kernel behind the slice-based kernel
// type.
func gemmKernel512Asm(k int, a, b, c []float32, ldc int, accum bool) {
	if k <= 0 || len(a) < k*mr512 || len(b) < k*nr512 || ldc < nr512 || len(c) < (mr512-1)*ldc+nr512 {
		panic("linalg: gemm micro-kernel called with short operands")
	}
	gemmKernel12x32(k, &a[0], &b[0], &c[0], ldc, accum)
}

// gemmKernelAsm is the AVX2 micro-kernel behind the slice-based kernel type.
// The length checks keep a driver bug from writing outside its slices.
func gemmKernelAsm(k int, a, b, c []float32, ldc int, accum bool) {
	if k <= 0 || len(a) < k*mr || len(b) < k*nr || ldc < nr || len(c) < (mr-1)*ldc+nr {
		panic("linalg: gemm micro-kernel called with short operands")
	}
	gemmKernel6x16(k, &a[0], &b[0], &c[0], ldc, accum)
}

// gemmKernel512StridedAsm is the AVX-512 micro-kernel for operands read in
// place: A(i,p) at a[i*rsa+p*csa], B(p,j) at b[p*ldb+j].
func gemmKernel512StridedAsm(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, accum bool) {
	if k <= 0 || rsa < 0 || csa < 0 || len(a) <= (mr512-1)*rsa+(k-1)*csa || ldb < 0 || len(b) < (k-1)*ldb+nr512 ||
		ldc < nr512 || len(c) < (mr512-1)*ldc+nr512 {
		panic("linalg: gemm micro-kernel called with short operands")
	}
	gemmKernel12x32Strided(k, &a[0], rsa, csa, &b[0], ldb, &c[0], ldc, accum)
}

// gemmKernelNarrowStridedAsm is the 12x8 AVX2 micro-kernel for operands
// read in place, for products of at most eight columns.
func gemmKernelNarrowStridedAsm(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, accum bool) {
	if k <= 0 || rsa < 0 || csa < 0 || len(a) <= (mrNarrow-1)*rsa+(k-1)*csa || ldb < 0 || len(b) < (k-1)*ldb+nrNarrow ||
		ldc < nrNarrow || len(c) < (mrNarrow-1)*ldc+nrNarrow {
		panic("linalg: gemm micro-kernel called with short operands")
	}
	gemmKernel12x8Strided(k, &a[0], rsa, csa, &b[0], ldb, &c[0], ldc, accum)
}

// gemmKernelNarrowAsm is the 12x8 kernel on packed slivers.
func gemmKernelNarrowAsm(k int, a, b, c []float32, ldc int, accum bool) {
	gemmKernelNarrowStridedAsm(k, a, 1, mrNarrow, b, nrNarrow, c, ldc, accum)
}

// gemmKernelStridedAsm is the AVX2 micro-kernel for operands read in place:
// A(i,p) at a[i*rsa+p*csa], B(p,j) at b[p*ldb+j].
func gemmKernelStridedAsm(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, accum bool) {
	if k <= 0 || rsa < 0 || csa < 0 || len(a) <= (mr-1)*rsa+(k-1)*csa || ldb < 0 || len(b) < (k-1)*ldb+nr ||
		ldc < nr || len(c) < (mr-1)*ldc+nr {
		panic("linalg: gemm micro-kernel called with short operands")
	}
	gemmKernel6x16Strided(k, &a[0], rsa, csa, &b[0], ldb, &c[0], ldc, accum)
}

// packTAsm packs rows rows of src (row r at src[r*ld:]) transposed for kc
// steps into dst, dst[p*rows+r] = src[r*ld+p]: a full sliver of A stored
// [m,k] (rows = mr or mr512) or of B stored [n,k] (rows = nr or nr512).
// The AVX-512 packers serve the 12x32 kernel, the AVX2 ones the 6x16.
func packTAsm(dst, src []float32, ld, kc, rows int) {
	if kc <= 0 || len(dst) < kc*rows || len(src) < (rows-1)*ld+kc {
		panic("linalg: packing called with short operands")
	}
	switch rows {
	case mr512:
		packT12x(kc, &src[0], ld, &dst[0])
	case nr512:
		packT32x(kc, &src[0], ld, &dst[0])
	case mr:
		packT6x(kc, &src[0], ld, &dst[0])
	case nr:
		packT16x(kc, &src[0], ld, &dst[0])
	default:
		panic("linalg: no packer for this sliver")
	}
}

// packBAsm packs slivers full slivers of cols columns (nr512 or nr) of B
// stored [k,n] (rows at stride ldb floats from b) for kc steps into dst,
// sliver after sliver.
func packBAsm(dst, b []float32, ldb, kc, slivers, cols int) {
	if kc <= 0 || slivers <= 0 || len(dst) < kc*cols*slivers || len(b) < (kc-1)*ldb+cols*slivers {
		panic("linalg: packing called with short operands")
	}
	switch cols {
	case nr512:
		packB32x(kc, &b[0], ldb, slivers, &dst[0])
	case nr:
		packB16x(kc, &b[0], ldb, slivers, &dst[0])
	default:
		panic("linalg: no packer for this sliver")
	}
}

// hasF16C reports whether the CPU converts F16 with VCVTPH2PS, which the
// AVX2 widening of F16 uses (every AVX2 CPU so far has it).
var hasF16C = hasAsm && cpu.X86.HasF16C

// widenAsm widens len(src) halves into dst: with the AVX-512 kernels
// (len(src) a multiple of 16), or with ymm the AVX2 ones (a multiple of
// 8; F16 needs F16C).
func widenAsm(dst []float32, src []uint16, h Half, ymm bool) {
	lanes := 16
	if ymm {
		lanes = 8
	}
	if len(src)%lanes != 0 || len(dst) < len(src) {
		panic("linalg: widening called with bad operands")
	}
	n, s, d := len(src), &src[0], &dst[0]
	switch {
	case h == F16 && ymm:
		widenF16x8(n, s, d)
	case h == F16:
		widenF16(n, s, d)
	case ymm:
		widenBF16x8(n, s, d)
	default:
		widenBF16(n, s, d)
	}
}
