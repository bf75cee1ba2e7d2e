// Command asmgen writes the assembly kernels of package linalg: the 6x16
// AVX2+FMA single-precision matrix micro-kernel (packed and strided), its
// 12x32 AVX-512 counterpart and that kernel's operand packers, and the Dot
// and Axpy vector kernels.
//
// It is run by `go generate ./core/linalg`, which writes kernel_amd64.s and
// its Go declarations kernel_amd64.go. The output depends on nothing but this
// file, so regenerating reproduces the committed files byte for byte.
package main

import (
	"flag"
	"fmt"
	"log"
	"strings"

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

	mrNarrow = 12 // rows of the narrow (8-column) micro-tile
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("asmgen: ")
	dir := flag.String("dir", ".", "directory to write kernel_amd64.s and kernel_amd64.go into")
	flag.Parse()

	c := build.NewContext()
	gemmKernel(c)
	gemmKernelStrided(c, mr, 2)
	gemmKernelStrided(c, mrNarrow, 1)
	gemmKernel512(c)
	gemmKernel512Strided(c)
	packTransposed(c, mr512, true)
	packTransposed(c, nr512, true)
	packBRows(c, nr512)
	packTransposed(c, mr, false)
	packTransposed(c, nr, false)
	packBRows(c, nr)
	widen(c, false, false)
	widen(c, true, false)
	widen(c, false, true)
	widen(c, true, true)
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
// nr512 must match. 24 ZMM accumulators and two for the B row; each element
// of A is broadcast into a register of its own (VBROADCASTSS) and used by two
// FMAs. Broadcasting inside the FMAs instead (the {1to16} memory form) loads
// each element twice: on Zen 5 that held the loop at 91% of the FMA peak, in
// registers it reaches the peak.
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
			t := c.ZMM()
			c.VBROADCASTSS(pa.Offset(4*(mr512*p+i)), t)
			c.VFMADD231PS(t, b0, acc[2*i])
			c.VFMADD231PS(t, b1, acc[2*i+1])
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
	bases, rowA := stridedRows(c, a0, rs, mr512)

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
			t := c.ZMM()
			c.VBROADCASTSS(rowA[i], t)
			c.VFMADD231PS(t, b0, acc[2*i])
			c.VFMADD231PS(t, b1, acc[2*i+1])
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
// slivers are the case rsa=1, csa=rows, ldb=16. With rows=12 and vecs=1 it
// emits the narrow gemmKernel12x8Strided, for products of at most 8
// columns: 12 accumulators (a 6x8 tile's 6 would leave the FMA units
// waiting on their latency), the B row and the broadcast fill 14 of the
// 16 YMM registers.
func gemmKernelStrided(c *build.Context, rows, vecs int) {
	cols := 8 * vecs
	name := fmt.Sprintf("gemmKernel%dx%dStrided", rows, cols)
	prefix := fmt.Sprintf("gemms%dx%d", rows, cols)
	c.Function(name)
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(k int, a *float32, rsa, csa int, b *float32, ldb int, c *float32, ldc int, accum bool)")
	c.Pragma("noescape")
	c.Doc(
		fmt.Sprintf("%s computes the %dx%d tile C (+)= A*B over k steps, reading", name, rows, cols),
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
	c.SHLQ(operand.U8(2), rs)
	c.SHLQ(operand.U8(2), cs)
	c.SHLQ(operand.U8(2), ldb)
	bases, rowA := stridedRows(c, a0, rs, rows)

	acc := make([]reg.VecVirtual, vecs*rows)
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
		for i := 0; i < rows; i++ {
			c.VBROADCASTSS(rowA[i], bc)
			for v := range bv {
				c.VFMADD231PS(bc, bv[v], acc[vecs*i+v])
			}
		}
		c.ADDQ(ldb, pb.Base)
		for _, b := range bases {
			c.ADDQ(cs, b)
		}
	}

	kLoop(c, prefix, k, func(int) { step() }, func(int) {}, nil)
	// C's pointer and stride are loaded only now, to leave the loop its
	// general-purpose registers.
	pc := c.Load(c.Param("c"), c.GP64())
	ldc := c.Load(c.Param("ldc"), c.GP64())
	c.SHLQ(operand.U8(2), ldc)
	storeTile(c, prefix, rows, 32, acc, pc, ldc)
}

// stridedRows returns memory operands for rows 0..rows-1 of an A sliver
// read in place, from a0 with row stride rs bytes: a base register every
// three rows (the first is a0), each row at its base plus 0, 1 or 2 strides.
// The kernel's k loop advances every base by the column stride.
func stridedRows(c *build.Context, a0, rs reg.Register, rows int) ([]reg.Register, []operand.Mem) {
	bases := []reg.Register{a0}
	for g := 1; g < (rows+2)/3; g++ {
		r := c.GP64()
		c.LEAQ(operand.Mem{Base: bases[g-1], Index: rs, Scale: 2}, r)
		c.ADDQ(rs, r)
		bases = append(bases, r)
	}
	rowA := make([]operand.Mem, rows)
	for i := range rowA {
		rowA[i] = operand.Mem{Base: bases[i/3]}
		if i%3 > 0 {
			rowA[i].Index, rowA[i].Scale = rs, uint8(i%3)
		}
	}
	return bases, rowA
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

// packTransposed emits packT<rows>x, which packs rows source rows (row r at
// src + r*ld floats) transposed, dst[p*rows+r] = src[r*ld+p] for p < kc:
// a sliver of A stored [m,k] (rows = the kernel's mr) or of B stored [n,k]
// (rows = its nr). With avx512 it works in ZMM registers, 16 rows and 16
// steps a block; otherwise in YMM registers, 8 and 8.
//
// A block loads one cache line (or half of one) of each row whole, with the
// line four ahead prefetched, transposes the rows in registers, 16 or 8 at
// a time (a last, partial group padded with zero rows), and stores the
// steps. The rows stream from wherever the operand lives, usually L3, so
// every block also prefetches the head of a row of the sliver packed next.
// The steps past the last whole block are copied element by element.
func packTransposed(c *build.Context, rows int, avx512 bool) {
	w, vec, transpose, isa := 8, c.YMM, transpose8, "AVX2"
	if avx512 {
		w, vec, transpose, isa = 16, c.ZMM, transpose16, "AVX-512F"
	}
	name := fmt.Sprintf("packT%dx", rows)
	c.Function(name)
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(kc int, src *float32, ld int, dst *float32)")
	c.Pragma("noescape")
	c.Doc(
		fmt.Sprintf("%s packs src[r*ld+p], r < %d, p < kc, into dst[p*%d+r]. Requires %s.", name, rows, rows, isa),
	)
	kc := c.Load(c.Param("kc"), c.GP64())
	src := c.Load(c.Param("src"), c.GP64())
	ld := c.Load(c.Param("ld"), c.GP64())
	dst := operand.Mem{Base: c.Load(c.Param("dst"), c.GP64())}
	c.SHLQ(operand.U8(2), ld)

	// A partial last group: AVX-512 stores its columns under a mask; AVX2
	// (whose masked stores are slow on some CPUs) stores them whole, each
	// store's excess overwritten by the next, and splits the last one.
	part := rows % w
	var lanes reg.OpmaskVirtual
	switch {
	case part != 0 && avx512:
		lanes = c.K()
		t := c.GP32()
		c.MOVL(operand.U32(1<<part-1), t)
		c.KMOVW(t, lanes)
	case part != 0 && part != 6:
		panic("asmgen: an AVX2 partial group must have 6 rows")
	}
	store := func(col reg.VecVirtual, q, n int, at operand.Mem) {
		switch {
		case n == w:
			c.VMOVUPS(col, at)
		case avx512:
			c.VMOVUPS(col, lanes, at)
		case q < w-1:
			c.VMOVUPS(col, at)
		default: // 6 floats: 4, then 2
			hi := c.XMM()
			c.VEXTRACTF128(operand.U8(1), col, hi)
			c.VMOVUPS(col.AsX(), at)
			c.VMOVQ(hi, at.Offset(16))
		}
	}

	nx := nextSliver(c, src, ld, rows)
	block := func() {
		prefetchHead(c, nx, ld, (rows+15)/16)
		r := c.GP64()
		c.MOVQ(src, r)
		for g := 0; g*w < rows; g++ {
			n := min(w, rows-g*w)
			in := make([]reg.VecVirtual, w)
			var zero reg.VecVirtual
			for i := range in {
				if i >= n {
					if zero == nil {
						zero = vec()
						c.VXORPS(zero, zero, zero)
					}
					in[i] = zero
					continue
				}
				in[i] = vec()
				c.VMOVUPS(operand.Mem{Base: r}, in[i])
				c.PREFETCHT0(operand.Mem{Base: r, Disp: 4 * 64})
				if g*w+i < rows-1 {
					c.ADDQ(ld, r)
				}
			}
			for q, col := range transpose(c, in) {
				store(col, q, n, dst.Offset(4*(rows*q+w*g)))
			}
		}
	}
	step := func(int) {
		r := c.GP64()
		c.MOVQ(src, r)
		for i := range rows {
			x := c.XMM()
			c.VMOVSS(operand.Mem{Base: r}, x)
			c.VMOVSS(x, dst.Offset(4*i))
			if i < rows-1 {
				c.ADDQ(ld, r)
			}
		}
	}
	packLoop(c, strings.ToLower(name), kc, w, block, step, func(steps int) {
		c.ADDQ(operand.U32(4*steps), src)
		c.ADDQ(operand.U32(4*rows*steps), dst.Base)
	})
}

// packBRows emits packB32x (cols 32, ZMM, AVX-512) or packB16x (cols 16,
// YMM, AVX2): the packing of a kc x cols*slivers panel of B stored [k,n]
// into slivers of cols columns, row by row of B so that the reads stream,
// each row's pieces going to the slivers in turn; the row three ahead is
// prefetched as it goes.
func packBRows(c *build.Context, cols int) {
	name, isa, vec := "packB32x", "AVX-512F", c.ZMM
	if cols == 16 {
		name, isa, vec = "packB16x", "AVX2", c.YMM
	}
	prefix := strings.ToLower(name)
	c.Function(name)
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(kc int, b *float32, ldb int, slivers int, dst *float32)")
	c.Pragma("noescape")
	c.Doc(
		fmt.Sprintf("%s packs B(p,j) = b[p*ldb+j], p < kc, j < %d*slivers, into", name, cols),
		fmt.Sprintf("dst[(j/%d*kc+p)*%d+j%%%d]. Requires %s.", cols, cols, cols, isa),
	)
	piece := 4 * cols // bytes of a row of a sliver: two vectors
	kc := c.Load(c.Param("kc"), c.GP64())
	b := c.Load(c.Param("b"), c.GP64())
	ldb := c.Load(c.Param("ldb"), c.GP64())
	slivers := c.Load(c.Param("slivers"), c.GP64())
	dst := c.Load(c.Param("dst"), c.GP64())
	c.SHLQ(operand.U8(2), ldb)
	ahead := c.GP64() // three rows ahead, for the prefetches
	c.LEAQ(operand.Mem{Base: ldb, Index: ldb, Scale: 2}, ahead)
	stride := c.GP64() // bytes from one sliver to the next
	c.IMUL3Q(operand.U32(piece), kc, stride)
	src, out, n := c.GP64(), c.GP64(), c.GP64()
	v0, v1 := vec(), vec()

	c.Label(prefix + "_row")
	c.MOVQ(b, src)
	c.MOVQ(dst, out)
	c.MOVQ(slivers, n)
	c.Label(prefix + "_sliver")
	c.VMOVUPS(operand.Mem{Base: src}, v0)
	c.VMOVUPS(operand.Mem{Base: src, Disp: piece / 2}, v1)
	for line := 0; line < piece; line += 64 {
		c.PREFETCHT0(operand.Mem{Base: src, Index: ahead, Scale: 1, Disp: line})
	}
	c.VMOVUPS(v0, operand.Mem{Base: out})
	c.VMOVUPS(v1, operand.Mem{Base: out, Disp: piece / 2})
	c.ADDQ(operand.U8(piece), src)
	c.ADDQ(stride, out)
	c.DECQ(n)
	c.JNZ(operand.LabelRef(prefix + "_sliver"))
	c.ADDQ(ldb, b)
	c.ADDQ(operand.U8(piece), dst)
	c.DECQ(kc)
	c.JNZ(operand.LabelRef(prefix + "_row"))
	c.VZEROUPPER()
	c.RET()
}

// nextSliver returns a register pointing at row rows of the matrix at base
// with row stride ld bytes: the first row of the sliver that is packed next.
func nextSliver(c *build.Context, base, ld reg.Register, rows int) reg.Register {
	nx := c.GP64()
	c.IMUL3Q(operand.U32(rows), ld, nx)
	c.ADDQ(base, nx)
	return nx
}

// prefetchHead prefetches the first four cache lines of rows rows from nx
// (row stride ld bytes) and moves nx past them: spread over the blocks of a
// packing loop, it brings in the head of the next sliver, which the loop's
// own look-ahead does not reach, before that sliver is packed.
func prefetchHead(c *build.Context, nx, ld reg.Register, rows int) {
	for range rows {
		for l := range 4 {
			c.PREFETCHT0(operand.Mem{Base: nx, Disp: 64 * l})
		}
		c.ADDQ(ld, nx)
	}
}

// transpose8 returns the columns of the 8x8 matrix whose rows are in the
// YMM registers rows: a 4x4 transposition within each 128-bit lane
// (lanes4), then the lanes exchanged.
func transpose8(c *build.Context, rows []reg.VecVirtual) []reg.VecVirtual {
	u := lanes4(c, rows, c.YMM)
	cols := make([]reg.VecVirtual, 8)
	for q := range 4 {
		cols[q], cols[q+4] = c.YMM(), c.YMM()
		c.VPERM2F128(operand.U8(0x20), u[4+q], u[q], cols[q])
		c.VPERM2F128(operand.U8(0x31), u[4+q], u[q], cols[q+4])
	}
	return cols
}

// lanes4 transposes every 4x4 block of floats that rows 4g..4g+3 hold in
// one 128-bit lane: rows interleaved in pairs, then pairs of pairs. In the
// result, u[4g+q] holds in each lane l element 4l+q of rows 4g..4g+3.
func lanes4(c *build.Context, rows []reg.VecVirtual, vec func() reg.VecVirtual) []reg.VecVirtual {
	n := len(rows)
	t := make([]reg.VecVirtual, n)
	for g := 0; g < n; g += 2 {
		t[g], t[g+1] = vec(), vec()
		c.VUNPCKLPS(rows[g+1], rows[g], t[g])
		c.VUNPCKHPS(rows[g+1], rows[g], t[g+1])
	}
	u := make([]reg.VecVirtual, n)
	for g := 0; g < n; g += 4 {
		for h := range 2 {
			u[g+2*h], u[g+2*h+1] = vec(), vec()
			c.VSHUFPS(operand.U8(0x44), t[g+2+h], t[g+h], u[g+2*h])
			c.VSHUFPS(operand.U8(0xee), t[g+2+h], t[g+h], u[g+2*h+1])
		}
	}
	return u
}

// widen emits widenBF16 (f16 false) or widenF16 (f16 true), and with
// avx2 their YMM forms widenBF16x8 and widenF16x8: the conversion of n
// 16-bit floats to float32, 16 (8) at a time, for products whose B is
// stored in BF16 or F16 and widened as it is packed. A BF16 is the top
// half of a float32: zero-extend each to 32 bits and shift it up. An F16
// converts with VCVTPH2PS. Both are exact.
func widen(c *build.Context, f16, avx2 bool) {
	name, kind := "widenBF16", "BF16"
	if f16 {
		name, kind = "widenF16", "F16 (IEEE half)"
	}
	lanes, needs := 16, "Requires AVX-512F."
	if avx2 {
		name, lanes, needs = name+"x8", 8, "Requires AVX2."
		if f16 {
			needs = "Requires AVX2 and F16C."
		}
	}
	c.Function(name)
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(n int, src *uint16, dst *float32)")
	c.Pragma("noescape")
	c.Doc(
		fmt.Sprintf("%s writes dst[i] = float32(src[i]), src in %s, for i < n;", name, kind),
		fmt.Sprintf("n is a multiple of %d. %s", lanes, needs),
	)
	n := c.Load(c.Param("n"), c.GP64())
	src := operand.Mem{Base: c.Load(c.Param("src"), c.GP64())}
	dst := operand.Mem{Base: c.Load(c.Param("dst"), c.GP64())}
	shift := 4
	if avx2 {
		shift = 3
	}
	c.SHRQ(operand.U8(shift), n)
	in, out := 2*lanes, 4*lanes // bytes read and written a step
	one := func(p int) {
		var v reg.VecVirtual = c.ZMM()
		if avx2 {
			v = c.YMM()
		}
		if f16 {
			c.VCVTPH2PS(src.Offset(in*p), v)
		} else {
			c.VPMOVZXWD(src.Offset(in*p), v)
			c.VPSLLD(operand.U8(16), v, v)
		}
		c.VMOVUPS(v, dst.Offset(out*p))
	}
	packLoop(c, strings.ToLower(name), n, 4, func() {
		for p := range 4 {
			one(p)
		}
	}, one, func(steps int) {
		c.ADDQ(operand.U32(in*steps), src.Base)
		c.ADDQ(operand.U32(out*steps), dst.Base)
	})
}

// packLoop emits a packing loop of n steps: blocks of size steps (a power
// of two) emitted by block, each followed by next(size), then the remaining
// steps one at a time by step(0) and next(1); then it returns.
func packLoop(c *build.Context, prefix string, n reg.Register, size int, block func(), step func(p int), next func(steps int)) {
	shift := 0
	for 1<<shift < size {
		shift++
	}
	blocks := c.GP64()
	c.MOVQ(n, blocks)
	c.SHRQ(operand.U8(shift), blocks)
	c.JZ(operand.LabelRef(prefix + "_tail"))
	c.Label(prefix + "_loop")
	block()
	next(size)
	c.DECQ(blocks)
	c.JNZ(operand.LabelRef(prefix + "_loop"))
	c.Label(prefix + "_tail")
	c.ANDQ(operand.U8(size-1), n)
	c.JZ(operand.LabelRef(prefix + "_done"))
	c.Label(prefix + "_loop1")
	step(0)
	next(1)
	c.DECQ(n)
	c.JNZ(operand.LabelRef(prefix + "_loop1"))
	c.Label(prefix + "_done")
	c.VZEROUPPER()
	c.RET()
}

// transpose16 returns the columns of the 16x16 matrix whose rows are in
// the ZMM registers rows: element j of column q is element q of rows[j].
// A 4x4 transposition within each 128-bit lane (lanes4), then the lanes
// exchanged twice.
func transpose16(c *build.Context, rows []reg.VecVirtual) []reg.VecVirtual {
	u := lanes4(c, rows, c.ZMM)
	// Column 4l+q gathers lane l of u[q], u[4+q], u[8+q], u[12+q].
	cols := make([]reg.VecVirtual, 16)
	for q := range 4 {
		a0, a1, b0, b1 := c.ZMM(), c.ZMM(), c.ZMM(), c.ZMM()
		c.VSHUFF32X4(operand.U8(0x88), u[4+q], u[q], a0)
		c.VSHUFF32X4(operand.U8(0xdd), u[4+q], u[q], a1)
		c.VSHUFF32X4(operand.U8(0x88), u[12+q], u[8+q], b0)
		c.VSHUFF32X4(operand.U8(0xdd), u[12+q], u[8+q], b1)
		for l, v := range [][2]reg.VecVirtual{{a0, b0}, {a1, b1}} {
			cols[q+4*l], cols[q+8+4*l] = c.ZMM(), c.ZMM()
			c.VSHUFF32X4(operand.U8(0x88), v[1], v[0], cols[q+4*l])
			c.VSHUFF32X4(operand.U8(0xdd), v[1], v[0], cols[q+8+4*l])
		}
	}
	return cols
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
