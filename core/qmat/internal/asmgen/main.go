// Command asmgen writes the assembly kernels of package qmat: dot products
// of quantized weight rows (Q8_0, Q4_0) with float32 activations, in an
// AVX-512 and an AVX2+FMA+F16C version each, and the CPUID probe for F16C.
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
	}
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
	s := acc[0].AsY()
	if avx512 {
		hi := c.YMM()
		c.VEXTRACTF64X4(operand.U8(1), acc[0], hi)
		c.VADDPS(hi, s, s)
	}
	sx, hx := acc[0].AsX(), c.XMM()
	c.VEXTRACTF128(operand.U8(1), s, hx)
	c.VADDPS(hx, sx, sx)
	c.VHADDPS(sx, sx, sx)
	c.VHADDPS(sx, sx, sx)
	c.VMOVSS(sx, operand.Mem{Base: y})
	c.ADDQ(operand.U8(4), y)
	c.ADDQ(stride, w)
	c.DECQ(rows)
	c.JNZ(operand.LabelRef(p + "row"))
	c.VZEROUPPER()
	c.RET()
}

func prefix(name string) string { return name + "_" }
