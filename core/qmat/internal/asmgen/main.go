// Command asmgen writes the assembly kernels of package qmat: dot products
// of quantized weight rows (Q8_0, Q4_0, Q4_K, Q6_K) with float32
// activations, in an
// AVX-512 and an AVX2+FMA+F16C version each, the dot products of Q8_0 and
// Q4_0 rows with int8-quantized activations (AVX-512 VNNI and AVX2), and
// the CPUID probe for F16C.
//
// It is run by `go generate ./core/qmat`, which writes kernels_amd64.s and
// its Go declarations kernels_amd64.go. The output depends on nothing but
// this file, so regenerating reproduces the committed files byte for byte.
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/mmcloughlin/avo/attr"
	"github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	"github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"github.com/surgeon-ml/surgeon/internal/asmout"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("asmgen: ")
	dir := flag.String("dir", ".", "directory to write kernels_amd64.s and kernels_amd64.go into")
	flag.Parse()

	c := build.NewContext()
	cpuidECX(c)
	for _, avx512 := range []bool{true, false} {
		dotsKernel(c, q8_0, avx512)
		dotsKernel(c, q4_0, avx512)
		dequantKernel(c, q8_0, avx512)
		dequantKernel(c, q4_0, avx512)
		q4KKernel(c, avx512)
		q6KKernel(c, avx512)
	}
	intDotsVNNI(c, q8_0)
	intDotsVNNI(c, q4_0)
	intDotsKernel(c, q8_0)
	intDotsKernel(c, q4_0)
	if err := asmout.Write(c, "qmat", *dir, "kernels_amd64"); err != nil {
		log.Fatal(err)
	}
}

// cpuidECX emits cpuid1ECX, which returns ECX of CPUID leaf 1 (F16C is bit
// 29): golang.org/x/sys/cpu does not report F16C.
func cpuidECX(c *build.Context) {
	c.Function("cpuid1ECX")
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func() uint32")
	c.Doc("cpuid1ECX returns ECX of CPUID leaf 1.")
	c.MOVL(operand.U32(1), reg.EAX)
	c.XORL(reg.ECX, reg.ECX)
	c.CPUID()
	c.Store(reg.ECX, c.ReturnIndex(0))
	c.RET()
}

// blockType describes how a 32-element block of one type is decoded.
type blockType struct {
	name  string // Q8_0
	fn    string // q8 → q8Dots512, q8Dots256
	bytes int    // bytes of a block: a float16 scale, then the quants
	// decode512 loads the block at p into two ZMM registers of int32 quants
	// (elements 0-15 and 16-31) minus their offset; decode256 into four
	// YMM registers of eight. consts are the registers that setup made.
	setup     func(c *build.Context, avx512 bool) []reg.VecVirtual
	decode512 func(c *build.Context, p operand.Mem, consts []reg.VecVirtual) [2]reg.VecVirtual
	decode256 func(c *build.Context, p operand.Mem, consts []reg.VecVirtual) [4]reg.VecVirtual
}

var q8_0 = blockType{
	name: "Q8_0", fn: "q8", bytes: 34,
	setup: func(*build.Context, bool) []reg.VecVirtual { return nil },
	decode512: func(c *build.Context, p operand.Mem, _ []reg.VecVirtual) [2]reg.VecVirtual {
		var v [2]reg.VecVirtual
		for i := range v {
			v[i] = c.ZMM()
			c.VPMOVSXBD(p.Offset(2+16*i), v[i])
		}
		return v
	},
	decode256: func(c *build.Context, p operand.Mem, _ []reg.VecVirtual) [4]reg.VecVirtual {
		var v [4]reg.VecVirtual
		for i := range v {
			v[i] = c.YMM()
			c.VPMOVSXBD(p.Offset(2+8*i), v[i])
		}
		return v
	},
}

// q4_0: byte j holds element j in its low nibble and j+16 in its high one.
var q4_0 = blockType{
	name: "Q4_0", fn: "q4", bytes: 18,
	setup: func(c *build.Context, avx512 bool) []reg.VecVirtual {
		mask, eight := c.YMM(), c.YMM()
		if avx512 {
			mask, eight = c.ZMM(), c.ZMM()
		}
		t := c.GP32()
		c.MOVL(operand.U32(15), t)
		if avx512 {
			c.VPBROADCASTD(t, mask)
		} else {
			c.VMOVD(t, mask.AsX())
			c.VPBROADCASTD(mask.AsX(), mask)
		}
		c.MOVL(operand.U32(8), t)
		if avx512 {
			c.VPBROADCASTD(t, eight)
		} else {
			c.VMOVD(t, eight.AsX())
			c.VPBROADCASTD(eight.AsX(), eight)
		}
		return []reg.VecVirtual{mask, eight}
	},
	decode512: func(c *build.Context, p operand.Mem, k []reg.VecVirtual) [2]reg.VecVirtual {
		lo, hi := c.ZMM(), c.ZMM()
		c.VPMOVZXBD(p.Offset(2), hi)
		c.VPANDD(k[0], hi, lo)
		c.VPSRLD(operand.U8(4), hi, hi)
		c.VPSUBD(k[1], lo, lo)
		c.VPSUBD(k[1], hi, hi)
		return [2]reg.VecVirtual{lo, hi}
	},
	decode256: func(c *build.Context, p operand.Mem, k []reg.VecVirtual) [4]reg.VecVirtual {
		var v [4]reg.VecVirtual
		for i := range 2 {
			lo, hi := c.YMM(), c.YMM()
			c.VPMOVZXBD(p.Offset(2+8*i), hi)
			c.VPAND(k[0], hi, lo)
			c.VPSRLD(operand.U8(4), hi, hi)
			c.VPSUBD(k[1], lo, lo)
			c.VPSUBD(k[1], hi, hi)
			v[i], v[2+i] = lo, hi
		}
		return v
	},
}

// dotsKernel emits <fn>Dots512 or <fn>Dots256: for each of rows weight rows
// (stride bytes apart, blocks blocks each) the dot product with x, into
// y. A block's 32 products are summed in float32, then scaled by the
// block's float16 scale into one of two accumulators (even and odd
// blocks), which a row sums at its end.
func dotsKernel(c *build.Context, t blockType, avx512 bool) {
	width, req := 256, "AVX2, FMA and F16C"
	if avx512 {
		width, req = 512, "AVX-512F"
	}
	name := fmt.Sprintf("%sDots%d", t.fn, width)
	c.Function(name)
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(blocks, stride, rows int, w *byte, x, y *float32)")
	c.Pragma("noescape")
	c.Doc(
		fmt.Sprintf("%s sets y[r] to the dot product of x (32*blocks floats) with the", name),
		fmt.Sprintf("%s row of blocks blocks at w+r*stride, for r < rows. Requires %s.", t.name, req),
	)
	p := prefix(name)
	blocks := c.Load(c.Param("blocks"), c.GP64())
	stride := c.Load(c.Param("stride"), c.GP64())
	rows := c.Load(c.Param("rows"), c.GP64())
	w := c.Load(c.Param("w"), c.GP64())
	x := c.Load(c.Param("x"), c.GP64())
	y := c.Load(c.Param("y"), c.GP64())
	consts := t.setup(c, avx512)

	vec := c.YMM
	if avx512 {
		vec = c.ZMM
	}
	c.Label(p + "row")
	acc := [2]reg.VecVirtual{vec(), vec()}
	for _, a := range acc {
		if avx512 {
			c.VPXORD(a, a, a) // VXORPS on ZMM would need AVX512DQ
		} else {
			c.VXORPS(a, a, a)
		}
	}
	pw, px, n := c.GP64(), c.GP64(), c.GP64()
	c.MOVQ(w, pw)
	c.MOVQ(x, px)
	c.MOVQ(blocks, n)
	block := func(i int) {
		bp := operand.Mem{Base: pw}.Offset(i * t.bytes)
		xp := operand.Mem{Base: px}.Offset(i * 128)
		s := vec()
		if avx512 {
			q := t.decode512(c, bp, consts)
			for j, v := range q {
				c.VCVTDQ2PS(v, v)
				if j == 0 {
					c.VMULPS(xp, v, s)
				} else {
					c.VFMADD231PS(xp.Offset(64*j), v, s)
				}
			}
		} else {
			q := t.decode256(c, bp, consts)
			for j, v := range q {
				c.VCVTDQ2PS(v, v)
				if j == 0 {
					c.VMULPS(xp, v, s)
				} else {
					c.VFMADD231PS(xp.Offset(32*j), v, s)
				}
			}
		}
		h, d := c.YMM(), vec()
		if avx512 {
			c.VPBROADCASTW(bp, h)
			c.VCVTPH2PS(h, d)
		} else {
			c.VPBROADCASTW(bp, h.AsX())
			c.VCVTPH2PS(h.AsX(), d)
		}
		c.VFMADD231PS(s, d, acc[i])
	}
	c.Label(p + "pair")
	c.CMPQ(n, operand.U8(2))
	c.JL(operand.LabelRef(p + "single"))
	block(0)
	block(1)
	c.ADDQ(operand.U32(2*t.bytes), pw)
	c.ADDQ(operand.U32(256), px)
	c.SUBQ(operand.U8(2), n)
	c.JMP(operand.LabelRef(p + "pair"))
	c.Label(p + "single")
	c.TESTQ(n, n)
	c.JZ(operand.LabelRef(p + "sum"))
	block(0)
	c.Label(p + "sum")
	c.VADDPS(acc[1], acc[0], acc[0])
	sx := hsum(c, acc[0], avx512)
	c.VMOVSS(sx, operand.Mem{Base: y})
	c.ADDQ(operand.U8(4), y)
	c.ADDQ(stride, w)
	c.DECQ(rows)
	c.JNZ(operand.LabelRef(p + "row"))
	c.VZEROUPPER()
	c.RET()
}

// dequantKernel emits <fn>Dequant512 or <fn>Dequant256: blocks blocks at
// w decoded to 32 floats each at y, q times the block's scale in one
// multiplication, as ggml's reference decoder computes them.
func dequantKernel(c *build.Context, t blockType, avx512 bool) {
	width, req := 256, "AVX2, FMA and F16C"
	if avx512 {
		width, req = 512, "AVX-512F"
	}
	name := fmt.Sprintf("%sDequant%d", t.fn, width)
	c.Function(name)
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(blocks int, w *byte, y *float32)")
	c.Pragma("noescape")
	c.Doc(
		fmt.Sprintf("%s decodes blocks %s blocks at w to 32*blocks floats at y.", name, t.name),
		fmt.Sprintf("Requires %s.", req),
	)
	p := prefix(name)
	n := c.Load(c.Param("blocks"), c.GP64())
	pw := c.Load(c.Param("w"), c.GP64())
	py := c.Load(c.Param("y"), c.GP64())
	consts := t.setup(c, avx512)
	v := vec{c, avx512}
	c.Label(p + "block")
	bp, yp := operand.Mem{Base: pw}, operand.Mem{Base: py}
	d := v.half(bp)
	var q []reg.VecVirtual
	if avx512 {
		a := t.decode512(c, bp, consts)
		q = a[:]
	} else {
		a := t.decode256(c, bp, consts)
		q = a[:]
	}
	for j, r := range q {
		c.VCVTDQ2PS(r, r)
		c.VMULPS(d, r, r)
		c.VMOVUPS(r, yp.Offset(v.bytes()*j))
	}
	c.ADDQ(operand.U32(t.bytes), pw)
	c.ADDQ(operand.U32(128), py)
	c.DECQ(n)
	c.JNZ(operand.LabelRef(p + "block"))
	c.VZEROUPPER()
	c.RET()
}

func prefix(name string) string { return name + "_" }

// hsum sums the lanes of v into the low lane of its XMM register, which
// it returns; v is clobbered.
func hsum(c *build.Context, v reg.VecVirtual, avx512 bool) reg.VecVirtual {
	s := v.AsY()
	if avx512 {
		hi := c.YMM()
		c.VEXTRACTF64X4(operand.U8(1), v, hi)
		c.VADDPS(hi, s, s)
	}
	sx, hx := v.AsX(), c.XMM()
	c.VEXTRACTF128(operand.U8(1), s, hx)
	c.VADDPS(hx, sx, sx)
	c.VHADDPS(sx, sx, sx)
	c.VHADDPS(sx, sx, sx)
	return sx.(reg.VecVirtual)
}

// vec emits the vector operations of one width: ZMM with AVX-512's
// mnemonics, or YMM with AVX2's.
type vec struct {
	c      *build.Context
	avx512 bool
}

func (v vec) reg() reg.VecVirtual {
	if v.avx512 {
		return v.c.ZMM()
	}
	return v.c.YMM()
}

// lanes is the number of float32 lanes, bytes the register's size.
func (v vec) lanes() int {
	if v.avx512 {
		return 16
	}
	return 8
}

func (v vec) bytes() int { return 4 * v.lanes() }

func (v vec) zero(r reg.VecVirtual) {
	if v.avx512 {
		v.c.VPXORD(r, r, r)
	} else {
		v.c.VXORPS(r, r, r)
	}
}

func (v vec) and(a, b, dst operand.Op) {
	if v.avx512 {
		v.c.VPANDD(a, b, dst)
	} else {
		v.c.VPAND(a, b, dst)
	}
}

func (v vec) or(a, b, dst operand.Op) {
	if v.avx512 {
		v.c.VPORD(a, b, dst)
	} else {
		v.c.VPOR(a, b, dst)
	}
}

// broadcastD returns a register with the 32-bit constant k in every lane.
func (v vec) broadcastD(k uint32) reg.VecVirtual {
	r := v.reg()
	t := v.c.GP32()
	v.c.MOVL(operand.U32(k), t)
	if v.avx512 {
		v.c.VPBROADCASTD(t, r)
	} else {
		v.c.VMOVD(t, r.AsX())
		v.c.VPBROADCASTD(r.AsX(), r)
	}
	return r
}

// half returns a register with the float16 at m, as float32, in every lane.
func (v vec) half(m operand.Mem) reg.VecVirtual {
	h, d := v.c.YMM(), v.reg()
	if v.avx512 {
		v.c.VPBROADCASTW(m, h)
		v.c.VCVTPH2PS(h, d)
	} else {
		v.c.VPBROADCASTW(m, h.AsX())
		v.c.VCVTPH2PS(h.AsX(), d)
	}
	return d
}

// kKernel emits the row loop shared by the K-quant kernels: for each of
// rows rows, superBlock(pw, px, ps, acc) is called for each super-block
// with pointers to its bytes, its 256 floats of x and its aux (sums of
// x), and must add the super-block's products into the accumulators;
// their sum is the row's dot product.
func kKernel(c *build.Context, name string, doc []string, bytes, auxPer int, avx512 bool, setup func(v vec), superBlock func(v vec, pw, px, ps reg.Register, acc []reg.VecVirtual)) {
	req := "AVX2, FMA and F16C"
	if avx512 {
		req = "AVX-512F and F16C"
	}
	c.Function(name)
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(blocks, stride, rows int, w *byte, x, aux, y *float32)")
	c.Pragma("noescape")
	c.Doc(append([]string{
		fmt.Sprintf("%s sets y[r] to the dot product of x (256*blocks floats) with", name),
		"the row of blocks super-blocks at w+r*stride, for r < rows.",
	}, append(doc, "Requires "+req+".")...)...)
	v := vec{c, avx512}
	p := prefix(name)
	// blocks, x and aux are read from the arguments for each row: the
	// super-block code needs the general registers.
	param := func(name string) operand.Mem {
		a, err := c.Param(name).Resolve()
		if err != nil {
			log.Fatal(err)
		}
		return a.Addr
	}
	stride := c.Load(c.Param("stride"), c.GP64())
	rows := c.Load(c.Param("rows"), c.GP64())
	w := c.Load(c.Param("w"), c.GP64())
	y := c.Load(c.Param("y"), c.GP64())
	setup(v)
	c.Label(p + "row")
	acc := []reg.VecVirtual{v.reg(), v.reg()}
	for _, a := range acc {
		v.zero(a)
	}
	pw, px, ps, n := c.GP64(), c.GP64(), c.GP64(), c.GP64()
	c.MOVQ(w, pw)
	c.MOVQ(param("x"), px)
	c.MOVQ(param("aux"), ps)
	c.MOVQ(param("blocks"), n)
	c.Label(p + "block")
	superBlock(v, pw, px, ps, acc)
	c.ADDQ(operand.U32(bytes), pw)
	c.ADDQ(operand.U32(1024), px)
	if auxPer > 0 {
		c.ADDQ(operand.U32(4*auxPer), ps)
	}
	c.DECQ(n)
	c.JNZ(operand.LabelRef(p + "block"))
	c.VADDPS(acc[1], acc[0], acc[0])
	sx := hsum(c, acc[0], avx512)
	c.VMOVSS(sx, operand.Mem{Base: y})
	c.ADDQ(operand.U8(4), y)
	c.ADDQ(stride, w)
	c.DECQ(rows)
	c.JNZ(operand.LabelRef(p + "row"))
	c.VZEROUPPER()
	c.RET()
}

// q4KKernel emits q4KDots512 or q4KDots256. The eight 6-bit scales and
// mins of a super-block are unpacked with ggml's 32-bit masks, scaled by
// d and dmin into float32 on the stack; each sub-block's sum of q*x is
// scaled by its d*sc, and the mins multiply the sub-block sums of x that
// aux holds: x = d*sc*q - dmin*m.
func q4KKernel(c *build.Context, avx512 bool) {
	width := 256
	if avx512 {
		width = 512
	}
	var mask reg.VecVirtual
	var local operand.Mem
	kKernel(c, fmt.Sprintf("q4KDots%d", width), []string{"aux holds the sums of x over each 32 elements."}, 144, 8, avx512,
		func(v vec) {
			mask = v.broadcastD(15)
			local = c.AllocLocal(48) // 16 bytes of scales and mins, 8 floats of d*sc
		},
		func(v vec, pw, px, ps reg.Register, acc []reg.VecVirtual) {
			mem := operand.Mem{Base: pw}
			a0, a1, a2 := c.GP32(), c.GP32(), c.GP32()
			c.MOVL(mem.Offset(4), a0)
			c.MOVL(mem.Offset(8), a1)
			c.MOVL(mem.Offset(12), a2)
			t, u := c.GP32(), c.GP32()
			// mins 4-7: (a2>>4)&0x0f0f0f0f | ((a1>>6)&0x03030303)<<4
			c.MOVL(a2, t)
			c.SHRL(operand.U8(4), t)
			c.ANDL(operand.U32(0x0f0f0f0f), t)
			c.MOVL(a1, u)
			c.SHRL(operand.U8(6), u)
			c.ANDL(operand.U32(0x03030303), u)
			c.SHLL(operand.U8(4), u)
			c.ORL(u, t)
			// scales 4-7: a2&0x0f0f0f0f | ((a0>>6)&0x03030303)<<4
			c.MOVL(a0, u)
			c.SHRL(operand.U8(6), u)
			c.ANDL(operand.U32(0x03030303), u)
			c.SHLL(operand.U8(4), u)
			c.ANDL(operand.U32(0x0f0f0f0f), a2)
			c.ORL(u, a2)
			// mins 0-3 and scales 0-3: the low six bits
			c.ANDL(operand.U32(0x3f3f3f3f), a1)
			c.ANDL(operand.U32(0x3f3f3f3f), a0)
			// One 8-byte store each for the scales and the mins, so that
			// the vector loads below are forwarded from the stores.
			// (32-bit operations cleared the upper halves.)
			c.SHLQ(operand.U8(32), a2.As64())
			c.ORQ(a2.As64(), a0.As64())
			c.MOVQ(a0.As64(), local)
			c.SHLQ(operand.U8(32), t.As64())
			c.ORQ(t.As64(), a1.As64())
			c.MOVQ(a1.As64(), local.Offset(8))
			// d*sc to the stack; dmin*m times the sums of x, subtracted.
			d, dmin := c.YMM(), c.YMM()
			c.VPBROADCASTW(mem, d.AsX())
			c.VCVTPH2PS(d.AsX(), d)
			c.VPBROADCASTW(mem.Offset(2), dmin.AsX())
			c.VCVTPH2PS(dmin.AsX(), dmin)
			// mn holds the eight dmin*m*sum(x), subtracted from acc[1]'s
			// low eight lanes: on ZMM, the VEX-encoded operations on its
			// YMM half clear the upper one.
			sc, mn := c.YMM(), v.reg()
			c.VPMOVZXBD(local, sc)
			c.VCVTDQ2PS(sc, sc)
			c.VMULPS(d, sc, sc)
			c.VMOVUPS(sc, local.Offset(16))
			my := mn.AsY()
			c.VPMOVZXBD(local.Offset(8), my)
			c.VCVTDQ2PS(my, my)
			c.VMULPS(dmin, my, my)
			c.VMULPS(operand.Mem{Base: ps}, my, my)
			c.VSUBPS(mn, acc[1], acc[1])
			xm := operand.Mem{Base: px}
			per := v.lanes()
			for ch := range 4 { // 32 bytes: sub-blocks 2ch (low nibbles), 2ch+1 (high)
				slo, shi := v.reg(), v.reg()
				for g := 0; g < 32/per; g++ {
					q, lo := v.reg(), v.reg()
					c.VPMOVZXBD(mem.Offset(16+32*ch+per*g), q)
					v.and(mask, q, lo)
					c.VPSRLD(operand.U8(4), q, q)
					c.VCVTDQ2PS(lo, lo)
					c.VCVTDQ2PS(q, q)
					xl := xm.Offset(4 * (64*ch + per*g))
					xh := xm.Offset(4 * (64*ch + 32 + per*g))
					if g == 0 {
						c.VMULPS(xl, lo, slo)
						c.VMULPS(xh, q, shi)
					} else {
						c.VFMADD231PS(xl, lo, slo)
						c.VFMADD231PS(xh, q, shi)
					}
				}
				b0, b1 := v.reg(), v.reg()
				c.VBROADCASTSS(local.Offset(16+4*2*ch), b0)
				c.VBROADCASTSS(local.Offset(16+4*(2*ch+1)), b1)
				c.VFMADD231PS(slo, b0, acc[0])
				c.VFMADD231PS(shi, b1, acc[1])
			}
		})
}

// q6KKernel emits q6KDots512 or q6KDots256: the sixteen int8 scales of a
// super-block, times d, go to the stack as float32; each group of lanes
// assembles four 6-bit quants from ql and qh (elements l, l+32, l+64,
// l+96 of a half), minus 32, and scales each sub-block's sum of q*x.
func q6KKernel(c *build.Context, avx512 bool) {
	width := 256
	if avx512 {
		width = 512
	}
	var m15, m48, k32 reg.VecVirtual
	var local operand.Mem
	kKernel(c, fmt.Sprintf("q6KDots%d", width), []string{"aux is unused."}, 210, 0, avx512,
		func(v vec) {
			m15, m48, k32 = v.broadcastD(15), v.broadcastD(0x30), v.broadcastD(32)
			local = c.AllocLocal(64) // sixteen floats of d*sc
		},
		func(v vec, pw, px, ps reg.Register, acc []reg.VecVirtual) {
			mem := operand.Mem{Base: pw}
			d := v.half(mem.Offset(208))
			if avx512 {
				sc := c.ZMM()
				c.VPMOVSXBD(mem.Offset(192), sc)
				c.VCVTDQ2PS(sc, sc)
				c.VMULPS(d, sc, sc)
				c.VMOVUPS(sc, local)
			} else {
				for i := range 2 {
					sc := c.YMM()
					c.VPMOVSXBD(mem.Offset(192+8*i), sc)
					c.VCVTDQ2PS(sc, sc)
					c.VMULPS(d, sc, sc)
					c.VMOVUPS(sc, local.Offset(32*i))
				}
			}
			xm := operand.Mem{Base: px}
			per := v.lanes()
			k := 0
			for half := range 2 {
				ql, qh := 64*half, 128+32*half
				for g := 0; g < 32/per; g++ {
					l := per * g
					is := 8*half + l/16
					a, b, h := v.reg(), v.reg(), v.reg()
					c.VPMOVZXBD(mem.Offset(ql+l), a)
					c.VPMOVZXBD(mem.Offset(ql+32+l), b)
					c.VPMOVZXBD(mem.Offset(qh+l), h)
					for j := range 4 {
						q, hb := v.reg(), v.reg()
						// low four bits
						switch j {
						case 0:
							v.and(m15, a, q)
						case 1:
							v.and(m15, b, q)
						case 2:
							c.VPSRLD(operand.U8(4), a, q)
						case 3:
							c.VPSRLD(operand.U8(4), b, q)
						}
						// high two bits, (h >> 2j) & 3, at bits 4-5
						switch j {
						case 0:
							c.VPSLLD(operand.U8(4), h, hb)
						case 1:
							c.VPSLLD(operand.U8(2), h, hb)
						case 2:
							hb = h
						case 3:
							c.VPSRLD(operand.U8(2), h, hb)
						}
						if j == 2 {
							t := v.reg()
							v.and(m48, hb, t)
							hb = t
						} else {
							v.and(m48, hb, hb)
						}
						v.or(hb, q, q)
						c.VPSUBD(k32, q, q)
						c.VCVTDQ2PS(q, q)
						c.VMULPS(xm.Offset(4*(128*half+32*j+l)), q, q)
						bs := v.reg()
						c.VBROADCASTSS(local.Offset(4*(is+2*j)), bs)
						c.VFMADD231PS(q, bs, acc[k%2])
						k++
					}
				}
			}
		})
}

// intDotsKernel emits <fn>IntDots256: for each of rows weight rows
// (stride bytes apart, blocks blocks each) the dot product with an
// activation row quantized to int8 blocks of 32 (xq, with scales xd and,
// for Q4_0, corrections xs), into y. Each block's 32 products are summed
// in int32 by VPMADDUBSW and VPMADDWD, then converted to float32 and
// scaled by the weight's float16 scale times the activation block's
// scale into one of two accumulators (even and odd blocks), which a row
// sums at its end.
//
// The byte products need one unsigned operand: a Q8_0 block gives |w| as
// unsigned and x with w's signs as signed; a Q4_0 block's quants are
// unsigned already (0..15), and its offset of 8 is taken off by xs: eight
// int32 a block, -8 times the sum of the four activations each lane of
// the products covers, added to the block's lanes.
func intDotsKernel(c *build.Context, t blockType) {
	suffix, req, vnni := "256", "AVX2, FMA and F16C", false
	name := fmt.Sprintf("%sIntDots%s", t.fn, suffix)
	c.Function(name)
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(blocks, stride, rows int, w *byte, xq *int8, xd *float32, xs *int32, y *float32)")
	c.Pragma("noescape")
	c.Doc(
		fmt.Sprintf("%s sets y[r] to the dot product of the int8-quantized activation", name),
		fmt.Sprintf("row (xq, xd, xs; 32*blocks values) with the %s row of blocks blocks at", t.name),
		fmt.Sprintf("w+r*stride, for r < rows. Requires %s.", req),
	)
	p := prefix(name)
	blocks := c.Load(c.Param("blocks"), c.GP64())
	stride := c.Load(c.Param("stride"), c.GP64())
	rows := c.Load(c.Param("rows"), c.GP64())
	w := c.Load(c.Param("w"), c.GP64())
	xq := c.Load(c.Param("xq"), c.GP64())
	xd := c.Load(c.Param("xd"), c.GP64())
	xs := c.Load(c.Param("xs"), c.GP64())
	y := c.Load(c.Param("y"), c.GP64())

	v := vec{c: c}
	var ones, mask reg.VecVirtual
	if !vnni {
		ones = c.YMM()
		t16 := c.GP32()
		c.MOVL(operand.U32(0x00010001), t16)
		c.VMOVD(t16, ones.AsX())
		c.VPBROADCASTD(ones.AsX(), ones)
	}
	if t.fn == "q4" {
		mask = c.YMM()
		t8 := c.GP32()
		c.MOVL(operand.U32(0x0f0f0f0f), t8)
		c.VMOVD(t8, mask.AsX())
		c.VPBROADCASTD(mask.AsX(), mask)
	}

	c.Label(p + "row")
	acc := [2]reg.VecVirtual{c.YMM(), c.YMM()}
	for _, a := range acc {
		v.zero(a)
	}
	pw, pq, pd, ps, n := c.GP64(), c.GP64(), c.GP64(), c.GP64(), c.GP64()
	c.MOVQ(w, pw)
	c.MOVQ(xq, pq)
	c.MOVQ(xd, pd)
	c.MOVQ(xs, ps)
	c.MOVQ(blocks, n)
	block := func(i int) {
		bp := operand.Mem{Base: pw}.Offset(i * t.bytes)
		qp := operand.Mem{Base: pq}.Offset(i * 32)
		// u: the unsigned bytes; s: the signed ones (a register or
		// memory); isum: the block's int32 sums, 8 lanes.
		u := c.YMM()
		var s operand.Op
		isum := c.YMM()
		switch t.fn {
		case "q8":
			wv, xv, sv := c.YMM(), c.YMM(), c.YMM()
			c.VMOVDQU(bp.Offset(2), wv)
			c.VPABSB(wv, u)
			c.VMOVDQU(qp, xv)
			c.VPSIGNB(wv, xv, sv)
			s = sv
		case "q4":
			lo, hi := c.XMM(), c.XMM()
			c.VMOVDQU(bp.Offset(2), lo)
			c.VPSRLW(operand.U8(4), lo, hi)
			c.VINSERTI128(operand.U8(1), hi, lo.AsY(), u)
			c.VPAND(mask, u, u)
			s = qp
		}
		if vnni {
			if t.fn == "q4" {
				c.VMOVDQU(operand.Mem{Base: ps}.Offset(32*i), isum)
			} else {
				c.VPXOR(isum, isum, isum)
			}
			c.Instruction(&ir.Instruction{
				Opcode:   "VPDPBUSD",
				Operands: []operand.Op{s, u, isum},
				Inputs:   []operand.Op{s, u, isum},
				Outputs:  []operand.Op{isum},
				ISA:      []string{"AVX512VL", "AVX512_VNNI"},
			})
		} else {
			p16 := c.YMM()
			c.VPMADDUBSW(s, u, p16)
			c.VPMADDWD(ones, p16, isum)
			if t.fn == "q4" {
				c.VPADDD(operand.Mem{Base: ps}.Offset(32*i), isum, isum)
			}
		}
		f, d, dx := c.YMM(), c.YMM(), c.YMM()
		c.VCVTDQ2PS(isum, f)
		h := c.XMM()
		c.VPBROADCASTW(bp, h)
		c.VCVTPH2PS(h, d)
		c.VBROADCASTSS(operand.Mem{Base: pd}.Offset(4*i), dx)
		c.VMULPS(dx, d, d)
		c.VFMADD231PS(f, d, acc[i])
	}
	c.Label(p + "pair")
	c.CMPQ(n, operand.U8(2))
	c.JL(operand.LabelRef(p + "single"))
	block(0)
	block(1)
	c.ADDQ(operand.U32(2*t.bytes), pw)
	c.ADDQ(operand.U8(64), pq)
	c.ADDQ(operand.U8(8), pd)
	c.ADDQ(operand.U8(64), ps)
	c.SUBQ(operand.U8(2), n)
	c.JMP(operand.LabelRef(p + "pair"))
	c.Label(p + "single")
	c.TESTQ(n, n)
	c.JZ(operand.LabelRef(p + "sum"))
	block(0)
	c.Label(p + "sum")
	c.VADDPS(acc[1], acc[0], acc[0])
	sx := hsum(c, acc[0], false)
	c.VMOVSS(sx, operand.Mem{Base: y})
	c.ADDQ(operand.U8(4), y)
	c.ADDQ(stride, w)
	c.DECQ(rows)
	c.JNZ(operand.LabelRef(p + "row"))
	c.VZEROUPPER()
	c.RET()
}

// vpdpbusd emits VPDPBUSD (avo does not know it): acc's int32 lanes plus
// the sums of four products of u's unsigned bytes with s's signed ones.
func vpdpbusd(c *build.Context, s, u, acc operand.Op) {
	c.Instruction(&ir.Instruction{
		Opcode:   "VPDPBUSD",
		Operands: []operand.Op{s, u, acc},
		Inputs:   []operand.Op{s, u, acc},
		Outputs:  []operand.Op{acc},
		ISA:      []string{"AVX512_VNNI"},
	})
}

// intDotsVNNI emits <fn>IntDotsVNNI, intDotsKernel's product with AVX-512
// VNNI: two blocks at a time in the halves of a ZMM register, their 32
// byte products summed into int32 lanes by one VPDPBUSD, then scaled by
// a vector of the two blocks' scales (weight's times activation's), each
// in its half. Q8_0's signs move onto the activations by a mask from
// VPMOVB2M; a block left over at a row's end runs in the low half alone.
func intDotsVNNI(c *build.Context, t blockType) {
	name := t.fn + "IntDotsVNNI"
	c.Function(name)
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(blocks, stride, rows int, w *byte, xq *int8, xd *float32, xs *int32, y *float32)")
	c.Pragma("noescape")
	c.Doc(
		fmt.Sprintf("%s sets y[r] to the dot product of the int8-quantized activation", name),
		fmt.Sprintf("row (xq, xd, xs; 32*blocks values) with the %s row of blocks blocks at", t.name),
		"w+r*stride, for r < rows. Requires AVX-512F, AVX-512BW, AVX-512 VNNI and F16C.",
	)
	p := prefix(name)
	blocks := c.Load(c.Param("blocks"), c.GP64())
	stride := c.Load(c.Param("stride"), c.GP64())
	rows := c.Load(c.Param("rows"), c.GP64())
	w := c.Load(c.Param("w"), c.GP64())
	xq := c.Load(c.Param("xq"), c.GP64())
	xd := c.Load(c.Param("xd"), c.GP64())
	xs := c.Load(c.Param("xs"), c.GP64())
	y := c.Load(c.Param("y"), c.GP64())

	// idx: lanes 0-7 take element 0, lanes 8-15 element 1 (VPERMPS).
	idx, zero := c.ZMM(), c.ZMM()
	c.VPXORD(zero, zero, zero)
	{
		one := c.YMM()
		g := c.GP32()
		c.MOVL(operand.U32(1), g)
		c.VMOVD(g, one.AsX())
		c.VPBROADCASTD(one.AsX(), one)
		c.VINSERTI64X4(operand.U8(1), one, zero, idx)
	}
	var mask, qperm reg.VecVirtual
	if t.fn == "q4" {
		mask = c.ZMM()
		g := c.GP32()
		c.MOVL(operand.U32(0x0f0f0f0f), g)
		c.VPBROADCASTD(g, mask)
		// qperm: the qwords of [b0, b1, b0>>4, b1>>4] in the order
		// [b0, b0>>4, b1, b1>>4].
		qperm = c.ZMM()
		g64, tx := c.GP64(), c.XMM()
		c.MOVQ(operand.U64(0x0706030205040100), g64)
		c.VMOVQ(g64, tx)
		c.VPMOVZXBQ(tx, qperm)
	}

	c.Label(p + "row")
	acc := [2]reg.VecVirtual{c.ZMM(), c.ZMM()}
	for _, a := range acc {
		c.VPXORD(a, a, a)
	}
	pw, pq, pd, ps, n := c.GP64(), c.GP64(), c.GP64(), c.GP64(), c.GP64()
	c.MOVQ(w, pw)
	c.MOVQ(xq, pq)
	c.MOVQ(xd, pd)
	c.MOVQ(xs, ps)
	c.MOVQ(blocks, n)
	// pair adds blocks j and j+1 into acc[a]; single adds block j alone
	// (the high half of every operand zero).
	step := func(j, a int, pair bool) {
		bp := operand.Mem{Base: pw}.Offset(j * t.bytes)
		qp := operand.Mem{Base: pq}.Offset(j * 32)
		u, isum := c.ZMM(), c.ZMM()
		var s operand.Op
		switch t.fn {
		case "q8":
			wv, sv := c.ZMM(), c.ZMM()
			k := c.K()
			c.VMOVDQU(bp.Offset(2), wv.AsY())
			if pair {
				c.VINSERTI64X4(operand.U8(1), bp.Offset(2+t.bytes), wv, wv)
				c.VMOVDQU64(qp, sv)
			} else {
				c.VMOVDQU(qp, sv.AsY())
			}
			c.VPABSB(wv, u)
			c.VPMOVB2M(wv, k)
			c.VPSUBB(sv, zero, k, sv)
			s = sv
			c.VPXORD(isum, isum, isum)
		case "q4":
			b := c.YMM()
			c.VMOVDQU(bp.Offset(2), b.AsX())
			if pair {
				c.VINSERTI128(operand.U8(1), bp.Offset(2+t.bytes), b, b)
			}
			h := c.YMM()
			c.VPSRLW(operand.U8(4), b, h)
			c.VINSERTI64X4(operand.U8(1), h, b.AsZ(), u)
			c.VPERMQ(u, qperm, u)
			c.VPANDD(mask, u, u)
			if pair {
				s = qp
				c.VMOVDQU64(operand.Mem{Base: ps}.Offset(32*j), isum)
			} else {
				sv := c.ZMM()
				c.VMOVDQU(qp, sv.AsY())
				s = sv
				c.VMOVDQU(operand.Mem{Base: ps}.Offset(32*j), isum.AsY())
			}
		}
		vpdpbusd(c, s, u, isum)
		f := c.ZMM()
		c.VCVTDQ2PS(isum, f)
		// The scales: dw (two float16s into words 0 and 1) times dx.
		h, d := c.XMM(), c.XMM()
		c.VPBROADCASTW(bp, h)
		if pair {
			c.VPINSRW(operand.U8(1), bp.Offset(t.bytes), h, h)
			c.VCVTPH2PS(h, d)
			dx := c.XMM()
			c.VMOVQ(operand.Mem{Base: pd}.Offset(4*j), dx)
			c.VMULPS(dx, d, d)
		} else {
			c.VCVTPH2PS(h, d)
			c.VMULSS(operand.Mem{Base: pd}.Offset(4*j), d, d)
		}
		sc := c.ZMM()
		c.VPERMPS(d.AsZ(), idx, sc)
		c.VFMADD231PS(f, sc, acc[a])
	}
	c.Label(p + "quad")
	c.CMPQ(n, operand.U8(4))
	c.JL(operand.LabelRef(p + "pair"))
	step(0, 0, true)
	step(2, 1, true)
	c.ADDQ(operand.U32(4*t.bytes), pw)
	c.ADDQ(operand.U32(128), pq)
	c.ADDQ(operand.U8(16), pd)
	c.ADDQ(operand.U32(128), ps)
	c.SUBQ(operand.U8(4), n)
	c.JMP(operand.LabelRef(p + "quad"))
	c.Label(p + "pair")
	c.CMPQ(n, operand.U8(2))
	c.JL(operand.LabelRef(p + "single"))
	step(0, 0, true)
	c.ADDQ(operand.U32(2*t.bytes), pw)
	c.ADDQ(operand.U8(64), pq)
	c.ADDQ(operand.U8(8), pd)
	c.ADDQ(operand.U8(64), ps)
	c.SUBQ(operand.U8(2), n)
	c.Label(p + "single")
	c.TESTQ(n, n)
	c.JZ(operand.LabelRef(p + "sum"))
	step(0, 1, false)
	c.Label(p + "sum")
	c.VADDPS(acc[1], acc[0], acc[0])
	sx := hsum(c, acc[0], true)
	c.VMOVSS(sx, operand.Mem{Base: y})
	c.ADDQ(operand.U8(4), y)
	c.ADDQ(stride, w)
	c.DECQ(rows)
	c.JNZ(operand.LabelRef(p + "row"))
	c.VZEROUPPER()
	c.RET()
}
