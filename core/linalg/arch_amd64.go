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

// packA512Asm packs a full 12-row sliver of A stored [m,k] (rows at stride
// lda floats from a) for kc steps into dst, with the gather offsets idx
// (i*lda for i < 12).
func packA512Asm(dst, a []float32, lda, kc int, idx *[16]int32) {
	if kc <= 0 || len(dst) < kc*mr512 || len(a) < (mr512-1)*lda+kc {
		panic("linalg: packing called with short operands")
	}
	packA12x(kc, &a[0], lda, &idx[0], &dst[0])
}

// packBT512Asm packs a full 32-column sliver of B stored [n,k] (columns at
// stride ldb floats from b) for kc steps into dst, with the gather offsets
// idx (j*ldb for j < 16).
func packBT512Asm(dst, b []float32, ldb, kc int, idx *[16]int32) {
	if kc <= 0 || len(dst) < kc*nr512 || len(b) < (nr512-1)*ldb+kc {
		panic("linalg: packing called with short operands")
	}
	packBT32x(kc, &b[0], ldb, &idx[0], &dst[0])
}

// packB512Asm packs slivers full 32-column slivers of B stored [k,n] (rows
// at stride ldb floats from b) for kc steps into dst, sliver after sliver.
func packB512Asm(dst, b []float32, ldb, kc, slivers int) {
	if kc <= 0 || slivers <= 0 || len(dst) < kc*nr512*slivers || len(b) < (kc-1)*ldb+nr512*slivers {
		panic("linalg: packing called with short operands")
	}
	packB32x(kc, &b[0], ldb, slivers, &dst[0])
}

// packA6Asm packs a full 6-row sliver of A stored [m,k] (rows at stride
// lda floats from a) for kc steps into dst.
func packA6Asm(dst, a []float32, lda, kc int) {
	if kc <= 0 || len(dst) < kc*mr || len(a) < (mr-1)*lda+kc {
		panic("linalg: packing called with short operands")
	}
	packA6x(kc, &a[0], lda, &dst[0])
}

// packBT16Asm packs a full 16-column sliver of B stored [n,k] (columns at
// stride ldb floats from b) for kc steps into dst.
func packBT16Asm(dst, b []float32, ldb, kc int) {
	if kc <= 0 || len(dst) < kc*nr || len(b) < (nr-1)*ldb+kc {
		panic("linalg: packing called with short operands")
	}
	packBT16x(kc, &b[0], ldb, &dst[0])
}

// packB16Asm packs slivers full 16-column slivers of B stored [k,n] (rows
// at stride ldb floats from b) for kc steps into dst, sliver after sliver.
func packB16Asm(dst, b []float32, ldb, kc, slivers int) {
	if kc <= 0 || slivers <= 0 || len(dst) < kc*nr*slivers || len(b) < (kc-1)*ldb+nr*slivers {
		panic("linalg: packing called with short operands")
	}
	packB16x(kc, &b[0], ldb, slivers, &dst[0])
}
