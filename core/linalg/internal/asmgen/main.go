// Command asmgen writes the assembly kernels of package linalg: the 6x16
// AVX2+FMA single-precision matrix micro-kernel (packed and strided), its
// 12x32 AVX-512 counterpart, and the Dot and Axpy vector kernels.
//
// It is run by `go generate ./core/linalg`, which writes kernel_amd64.s and
// its Go declarations kernel_amd64.go. The output depends on nothing but this
// file, so regenerating reproduces the committed files byte for byte.
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/mmcloughlin/avo/attr"
	"github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"github.com/surgeon-ml/surgeon/internal/asmout"
)

// Register blocking of the micro-kernel; package linalg's mr and nr must
// match.
const (
	mr = 6  // rows of C per micro-tile: one broadcast of A each
	nr = 16 // columns of C per micro-tile: two YMM registers
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("asmgen: ")
	dir := flag.String("dir", ".", "directory to write kernel_amd64.s and kernel_amd64.go into")
	flag.Parse()

	c := build.NewContext()
	gemmKernel(c)
	gemmKernelStrided(c, 2)
	gemmKernelStrided(c, 1)
	gemmKernel512(c)
	gemmKernel512Strided(c)
	dotKernel(c)
	axpyKernel(c)

	if err := asmout.Write(c, "linalg", *dir, "kernel_amd64"); err != nil {
		log.Fatal(err)
	}
}

// gemmKernel emits gemmKernel6x16, which multiplies a packed 6-row sliver of
// A (k steps of 6 floats) by a packed 16-column sliver of B (k steps of 16
// floats) into 12 YMM accumulators, then stores or adds the 6x16 tile into C.
func gemmKernel(c *build.Context) {
	c.Function("gemmKernel6x16")
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(k int, a, b, c *float32, ldc int, accum bool)")
	c.Pragma("noescape")
	c.Doc(
		"gemmKernel6x16 computes the 6x16 tile C (+)= A*B from k steps of packed",
		"A (6 floats a step) and packed B (16 floats a step). C has row stride ldc",
		"floats; accum adds into C instead of overwriting it. Requires AVX2 and FMA.",
	)

	k := c.Load(c.Param("k"), c.GP64())
	pa := operand.Mem{Base: c.Load(c.Param("a"), c.GP64())}
	pb := operand.Mem{Base: c.Load(c.Param("b"), c.GP64())}
	pc := c.Load(c.Param("c"), c.GP64())
	ldc := c.Load(c.Param("ldc"), c.GP64())

	acc := make([]reg.VecVirtual, 2*mr)
	for i := range acc {
		acc[i] = c.YMM()
		c.VXORPS(acc[i], acc[i], acc[i])
	}
	b0, b1 := c.YMM(), c.YMM()
	bc := []reg.VecVirtual{c.YMM(), c.YMM()}

	// Warm the cache lines of C that the tile writes at the end.
	c.SHLQ(operand.U8(2), ldc)
	row := c.GP64()
	c.MOVQ(pc, row)
	for i := 0; i < mr; i++ {
		c.PREFETCHT0(operand.Mem{Base: row})
		c.PREFETCHT0(operand.Mem{Base: row, Disp: 4*nr - 4})
		if i < mr-1 {
			c.ADDQ(ldc, row)
		}
	}

	step := func(p int) {
		c.VMOVUPS(pb.Offset(4*nr*p), b0)
		c.VMOVUPS(pb.Offset(4*nr*p+32), b1)
		for i := 0; i < mr; i++ {
			r := bc[i%2]
			c.VBROADCASTSS(pa.Offset(4*(mr*p+i)), r)
			c.VFMADD231PS(r, b0, acc[2*i])
			c.VFMADD231PS(r, b1, acc[2*i+1])
		}
	}

	kLoop(c, "gemm", k, step, func(steps int) {
		c.ADDQ(operand.U32(4*mr*steps), pa.Base)
		c.ADDQ(operand.U32(4*nr*steps), pb.Base)
	}, nil)
	storeTile(c, "gemm", mr, 32, acc, pc, ldc)
}

// Register blocking of the AVX-512 micro-kernel; package linalg's mr512 and
// nr512 must match. 24 ZMM accumulators and two for the B row; A is
// broadcast from memory by the FMAs themselves.
const (
	mr512 = 12 // rows of C per micro-tile
	nr512 = 32 // columns of C per micro-tile: two ZMM registers
)

// gemmKernel512 emits gemmKernel12x32, the AVX-512 form of gemmKernel: a
// packed 12-row sliver of A times a packed 32-column sliver of B into 24 ZMM
// accumulators.
func gemmKernel512(c *build.Context) {
	c.Function("gemmKernel12x32")
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(k int, a, b, c *float32, ldc int, accum bool)")
	c.Pragma("noescape")
	c.Doc(
		"gemmKernel12x32 computes the 12x32 tile C (+)= A*B from k steps of packed",
		"A (12 floats a step) and packed B (32 floats a step). C has row stride ldc",
		"floats; accum adds into C instead of overwriting it. Requires AVX-512F.",
	)

	k := c.Load(c.Param("k"), c.GP64())
	pa := operand.Mem{Base: c.Load(c.Param("a"), c.GP64())}
	pb := operand.Mem{Base: c.Load(c.Param("b"), c.GP64())}
	pc := c.Load(c.Param("c"), c.GP64())
	ldc := c.Load(c.Param("ldc"), c.GP64())

	acc := make([]reg.VecVirtual, 2*mr512)
	for i := range acc {
		acc[i] = c.ZMM()
		c.VPXORD(acc[i], acc[i], acc[i])
	}
	b0, b1 := c.ZMM(), c.ZMM()

	c.SHLQ(operand.U8(2), ldc)
	row := c.GP64()
	c.MOVQ(pc, row)
	for i := 0; i < mr512; i++ {
		c.PREFETCHT0(operand.Mem{Base: row})
		c.PREFETCHT0(operand.Mem{Base: row, Disp: 4*nr512 - 4})
		if i < mr512-1 {
			c.ADDQ(ldc, row)
		}
	}

	step := func(p int) {
		c.VMOVUPS(pb.Offset(4*nr512*p), b0)
		c.VMOVUPS(pb.Offset(4*nr512*p+64), b1)
		for i := 0; i < mr512; i++ {
			m := pa.Offset(4 * (mr512*p + i))
			c.VFMADD231PS_BCST(m, b0, acc[2*i])
			c.VFMADD231PS_BCST(m, b1, acc[2*i+1])
		}
	}

	kLoop(c, "gemm512", k, step, func(steps int) {
		c.ADDQ(operand.U32(4*mr512*steps), pa.Base)
		c.ADDQ(operand.U32(4*nr512*steps), pb.Base)
	}, func() {
		c.PREFETCHT0(pa.Offset(4 * mr512 * unroll * 2))
		c.PREFETCHT0(pb.Offset(4 * nr512 * unroll * 2))
	})
	storeTile(c, "gemm512", mr512, 64, acc, pc, ldc)
}

// gemmKernel512Strided emits gemmKernel12x32Strided: the AVX-512 kernel
// reading A in place, A(i,p) at a[i*rsa+p*csa], and B(p,j) at b[p*ldb+j],
// for products whose A would be packed to be read only once or twice.
func gemmKernel512Strided(c *build.Context) {
	c.Function("gemmKernel12x32Strided")
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(k int, a *float32, rsa, csa int, b *float32, ldb int, c *float32, ldc int, accum bool)")
	c.Pragma("noescape")
	c.Doc(
		"gemmKernel12x32Strided computes the 12x32 tile C (+)= A*B over k steps,",
		"reading A(i,p) at a[i*rsa+p*csa] and B(p,j) at b[p*ldb+j]; strides are in",
		"floats. C has row stride ldc; accum adds into C instead of overwriting it.",
		"Requires AVX-512F.",
	)

	k := c.Load(c.Param("k"), c.GP64())
	a0 := c.Load(c.Param("a"), c.GP64())
	rs := c.Load(c.Param("rsa"), c.GP64())
	cs := c.Load(c.Param("csa"), c.GP64())
	pb := operand.Mem{Base: c.Load(c.Param("b"), c.GP64())}
	ldb := c.Load(c.Param("ldb"), c.GP64())
	pc := c.Load(c.Param("c"), c.GP64())
	ldc := c.Load(c.Param("ldc"), c.GP64())
	c.SHLQ(operand.U8(2), rs)
	c.SHLQ(operand.U8(2), cs)
	c.SHLQ(operand.U8(2), ldb)
	c.SHLQ(operand.U8(2), ldc)
	// Rows 3g..3g+2 of the A sliver from base g (row 3g) and the row stride.
	bases := []reg.Register{a0}
	for g := 1; g < mr512/3; g++ {
		r := c.GP64()
		c.LEAQ(operand.Mem{Base: bases[g-1], Index: rs, Scale: 2}, r)
		c.ADDQ(rs, r)
		bases = append(bases, r)
	}
	rowA := make([]operand.Mem, mr512)
	for i := range rowA {
		b := bases[i/3]
		switch i % 3 {
		case 0:
			rowA[i] = operand.Mem{Base: b}
		case 1:
			rowA[i] = operand.Mem{Base: b, Index: rs, Scale: 1}
		case 2:
			rowA[i] = operand.Mem{Base: b, Index: rs, Scale: 2}
		}
	}

	acc := make([]reg.VecVirtual, 2*mr512)
	for i := range acc {
		acc[i] = c.ZMM()
		c.VPXORD(acc[i], acc[i], acc[i])
	}
	b0, b1 := c.ZMM(), c.ZMM()

	step := func() {
		c.VMOVUPS(pb, b0)
		c.VMOVUPS(pb.Offset(64), b1)
		for i := 0; i < mr512; i++ {
			c.VFMADD231PS_BCST(rowA[i], b0, acc[2*i])
			c.VFMADD231PS_BCST(rowA[i], b1, acc[2*i+1])
		}
		c.ADDQ(ldb, pb.Base)
		for _, b := range bases {
			c.ADDQ(cs, b)
		}
	}

	kLoop(c, "gemm512s", k, func(int) { step() }, func(int) {}, nil)
	storeTile(c, "gemm512s", mr512, 64, acc, pc, ldc)
}

// gemmKernelStrided emits gemmKernel6x16Strided, the micro-kernel for
// operands read in place: element (i,p) of the A sliver is at
// a[i*rsa+p*csa] and row p of the B sliver at b[p*ldb:p*ldb+16]. Packed
// slivers are the case rsa=1, csa=6, ldb=16. With vecs=1 it emits the
// narrow gemmKernel6x8Strided, for products of at most 8 columns.
func gemmKernelStrided(c *build.Context, vecs int) {
	cols := 8 * vecs
	name := fmt.Sprintf("gemmKernel6x%dStrided", cols)
	prefix := fmt.Sprintf("gemms%d", cols)
	c.Function(name)
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(k int, a *float32, rsa, csa int, b *float32, ldb int, c *float32, ldc int, accum bool)")
	c.Pragma("noescape")
	c.Doc(
		fmt.Sprintf("%s computes the 6x%d tile C (+)= A*B over k steps, reading", name, cols),
		"A(i,p) at a[i*rsa+p*csa] and B(p,j) at b[p*ldb+j]; strides are in floats.",
		"C has row stride ldc; accum adds into C instead of overwriting it.",
		"Requires AVX2 and FMA.",
	)

	k := c.Load(c.Param("k"), c.GP64())
	a0 := c.Load(c.Param("a"), c.GP64())
	rs := c.Load(c.Param("rsa"), c.GP64())
	cs := c.Load(c.Param("csa"), c.GP64())
	pb := operand.Mem{Base: c.Load(c.Param("b"), c.GP64())}
	ldb := c.Load(c.Param("ldb"), c.GP64())
	pc := c.Load(c.Param("c"), c.GP64())
	ldc := c.Load(c.Param("ldc"), c.GP64())
	c.SHLQ(operand.U8(2), rs)
	c.SHLQ(operand.U8(2), cs)
	c.SHLQ(operand.U8(2), ldb)
	c.SHLQ(operand.U8(2), ldc)
	a3 := c.GP64()
	c.LEAQ(operand.Mem{Base: a0, Index: rs, Scale: 2}, a3)
	c.ADDQ(rs, a3)
	// Row i of the A sliver, from two bases and the row stride.
	rowA := []operand.Mem{
		{Base: a0},
		{Base: a0, Index: rs, Scale: 1},
		{Base: a0, Index: rs, Scale: 2},
		{Base: a3},
		{Base: a0, Index: rs, Scale: 4},
		{Base: a3, Index: rs, Scale: 2},
	}

	acc := make([]reg.VecVirtual, vecs*mr)
	for i := range acc {
		acc[i] = c.YMM()
		c.VXORPS(acc[i], acc[i], acc[i])
	}
	bv := make([]reg.VecVirtual, vecs)
	for v := range bv {
		bv[v] = c.YMM()
	}
	bc := c.YMM()

	step := func() {
		for v := range bv {
			c.VMOVUPS(pb.Offset(32*v), bv[v])
		}
		for i := 0; i < mr; i++ {
			c.VBROADCASTSS(rowA[i], bc)
			for v := range bv {
				c.VFMADD231PS(bc, bv[v], acc[vecs*i+v])
			}
		}
		c.ADDQ(ldb, pb.Base)
		c.ADDQ(cs, a0)
		c.ADDQ(cs, a3)
	}

	kLoop(c, prefix, k, func(int) { step() }, func(int) {}, nil)
	storeTile(c, prefix, mr, 32, acc, pc, ldc)
}

// unroll is the number of k steps in one pass of a micro-kernel's loop.
const unroll = 4

// kLoop emits the k loop of a micro-kernel: passes of unroll steps while at
// least that many remain, then single steps. step(p) emits step p of a pass
// (p = 0 for a single step); next(steps) advances the operand pointers past
// that many steps, for kernels whose steps address by offset; top, if not
// nil, is emitted at the head of each pass. The k register is consumed.
func kLoop(c *build.Context, prefix string, k reg.Register, step func(p int), next func(steps int), top func()) {
	n := c.GP64()
	c.MOVQ(k, n)
	c.SHRQ(operand.U8(2), n)
	c.JZ(operand.LabelRef(prefix + "_tail"))
	c.Label(prefix + "_loop4")
	if top != nil {
		top()
	}
	for p := 0; p < unroll; p++ {
		step(p)
	}
	next(unroll)
	c.DECQ(n)
	c.JNZ(operand.LabelRef(prefix + "_loop4"))

	c.Label(prefix + "_tail")
	c.ANDQ(operand.U8(unroll-1), k)
	c.JZ(operand.LabelRef(prefix + "_store"))
	c.Label(prefix + "_loop1")
	step(0)
	next(1)
	c.DECQ(k)
	c.JNZ(operand.LabelRef(prefix + "_loop1"))
	c.Label(prefix + "_store")
}

// storeTile adds the accumulators (rows rows of len(acc)/rows vectors of
// vecBytes bytes) into the tile at pc (row stride ldc bytes) when the accum
// parameter is set, and overwrites it otherwise; then returns.
func storeTile(c *build.Context, prefix string, rows, vecBytes int, acc []reg.VecVirtual, pc, ldc reg.Register) {
	vecs := len(acc) / rows
	flag := c.Load(c.Param("accum"), c.GP8())
	c.TESTB(flag, flag)
	c.JZ(operand.LabelRef(prefix + "_overwrite"))
	for i := 0; i < rows; i++ {
		m := operand.Mem{Base: pc}
		for v := 0; v < vecs; v++ {
			c.VADDPS(m.Offset(vecBytes*v), acc[vecs*i+v], acc[vecs*i+v])
			c.VMOVUPS(acc[vecs*i+v], m.Offset(vecBytes*v))
		}
		if i < rows-1 {
			c.ADDQ(ldc, pc)
		}
	}
	c.VZEROUPPER()
	c.RET()

	c.Label(prefix + "_overwrite")
	for i := 0; i < rows; i++ {
		m := operand.Mem{Base: pc}
		for v := 0; v < vecs; v++ {
			c.VMOVUPS(acc[vecs*i+v], m.Offset(vecBytes*v))
		}
		if i < rows-1 {
			c.ADDQ(ldc, pc)
		}
	}
	c.VZEROUPPER()
	c.RET()
}

// dotKernel emits dotAVX2: four 8-wide FMA accumulators over 32 floats a
// step, one over 8 floats a step, then a scalar tail.
func dotKernel(c *build.Context) {
	c.Function("dotAVX2")
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(x, y []float32) float32")
	c.Pragma("noescape")
	c.Doc("dotAVX2 returns the inner product of x and y[:len(x)]; len(y) >= len(x).", "Requires AVX2 and FMA.")

	x := operand.Mem{Base: c.Load(c.Param("x").Base(), c.GP64())}
	y := operand.Mem{Base: c.Load(c.Param("y").Base(), c.GP64())}
	n := c.Load(c.Param("x").Len(), c.GP64())

	acc := []reg.VecVirtual{c.YMM(), c.YMM(), c.YMM(), c.YMM()}
	for _, r := range acc {
		c.VXORPS(r, r, r)
	}

	c.Label("dot_loop32")
	c.CMPQ(n, operand.U8(32))
	c.JL(operand.LabelRef("dot_loop8"))
	for i, r := range acc {
		t := c.YMM()
		c.VMOVUPS(x.Offset(32*i), t)
		c.VFMADD231PS(y.Offset(32*i), t, r)
	}
	c.ADDQ(operand.U8(128), x.Base)
	c.ADDQ(operand.U8(128), y.Base)
	c.SUBQ(operand.U8(32), n)
	c.JMP(operand.LabelRef("dot_loop32"))

	c.Label("dot_loop8")
	c.CMPQ(n, operand.U8(8))
	c.JL(operand.LabelRef("dot_reduce"))
	t := c.YMM()
	c.VMOVUPS(x, t)
	c.VFMADD231PS(y, t, acc[0])
	c.ADDQ(operand.U8(32), x.Base)
	c.ADDQ(operand.U8(32), y.Base)
	c.SUBQ(operand.U8(8), n)
	c.JMP(operand.LabelRef("dot_loop8"))

	c.Label("dot_reduce")
	c.VADDPS(acc[1], acc[0], acc[0])
	c.VADDPS(acc[3], acc[2], acc[2])
	c.VADDPS(acc[2], acc[0], acc[0])
	s := acc[0].AsX()
	hi := c.XMM()
	c.VEXTRACTF128(operand.U8(1), acc[0], hi)
	c.VADDPS(hi, s, s)
	c.VHADDPS(s, s, s)
	c.VHADDPS(s, s, s)

	c.Label("dot_tail")
	c.TESTQ(n, n)
	c.JZ(operand.LabelRef("dot_done"))
	xt := c.XMM()
	c.VMOVSS(x, xt)
	c.VFMADD231SS(y, xt, s)
	c.ADDQ(operand.U8(4), x.Base)
	c.ADDQ(operand.U8(4), y.Base)
	c.DECQ(n)
	c.JMP(operand.LabelRef("dot_tail"))

	c.Label("dot_done")
	c.VZEROUPPER()
	c.Store(s, c.ReturnIndex(0))
	c.RET()
}

// axpyKernel emits axpyAVX2: y += alpha*x, 32 floats a step, then 8, then
// one at a time.
func axpyKernel(c *build.Context) {
	c.Function("axpyAVX2")
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(alpha float32, x, y []float32)")
	c.Pragma("noescape")
	c.Doc("axpyAVX2 computes y += alpha*x over len(x) elements; len(y) >= len(x).", "Requires AVX2 and FMA.")

	alpha, err := c.Param("alpha").Resolve()
	if err != nil {
		log.Fatal(err)
	}
	x := operand.Mem{Base: c.Load(c.Param("x").Base(), c.GP64())}
	y := operand.Mem{Base: c.Load(c.Param("y").Base(), c.GP64())}
	n := c.Load(c.Param("x").Len(), c.GP64())
	va := c.YMM()
	c.VBROADCASTSS(alpha.Addr, va)

	c.Label("axpy_loop32")
	c.CMPQ(n, operand.U8(32))
	c.JL(operand.LabelRef("axpy_loop8"))
	ts := make([]reg.VecVirtual, 4)
	for i := range ts {
		ts[i] = c.YMM()
		c.VMOVUPS(y.Offset(32*i), ts[i])
	}
	for i, t := range ts {
		c.VFMADD231PS(x.Offset(32*i), va, t)
	}
	for i, t := range ts {
		c.VMOVUPS(t, y.Offset(32*i))
	}
	c.ADDQ(operand.U8(128), x.Base)
	c.ADDQ(operand.U8(128), y.Base)
	c.SUBQ(operand.U8(32), n)
	c.JMP(operand.LabelRef("axpy_loop32"))

	c.Label("axpy_loop8")
	c.CMPQ(n, operand.U8(8))
	c.JL(operand.LabelRef("axpy_tail"))
	t := c.YMM()
	c.VMOVUPS(y, t)
	c.VFMADD231PS(x, va, t)
	c.VMOVUPS(t, y)
	c.ADDQ(operand.U8(32), x.Base)
	c.ADDQ(operand.U8(32), y.Base)
	c.SUBQ(operand.U8(8), n)
	c.JMP(operand.LabelRef("axpy_loop8"))

	c.Label("axpy_tail")
	c.TESTQ(n, n)
	c.JZ(operand.LabelRef("axpy_done"))
	yt := c.XMM()
	c.VMOVSS(y, yt)
	c.VFMADD231SS(x, va.AsX(), yt)
	c.VMOVSS(yt, y)
	c.ADDQ(operand.U8(4), x.Base)
	c.ADDQ(operand.U8(4), y.Base)
	c.DECQ(n)
	c.JMP(operand.LabelRef("axpy_tail"))

	c.Label("axpy_done")
	c.VZEROUPPER()
	c.RET()
}
