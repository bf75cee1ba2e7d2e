// Command asmgen writes the AVX2+FMA kernels of package vmath: the
// exponential, the shifted exponential with its sum (softmax), the maximum,
// scaling, the sigmoid, and GELU with its derivative.
//
// It is run by `go generate ./core/vmath`, which writes kernels_amd64.s and
// its Go declarations kernels_amd64.go. The output depends on nothing but
// this file and package coef, so regenerating reproduces the committed files
// byte for byte.
//
// Every kernel walks its slices 8 floats at a time and finishes with one
// masked step (VMASKMOVPS) over the remaining 1-7 floats, so no element is
// read or written twice and nothing outside the slices is touched.
package main

import (
	"flag"
	"fmt"
	"log"
	"math"

	"github.com/mmcloughlin/avo/attr"
	"github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"

	"github.com/surgeon-ml/surgeon/core/vmath/internal/coef"
	"github.com/surgeon-ml/surgeon/internal/asmout"
)

// VCMPPS predicates.
const (
	cmpUnord = 0x03 // unordered (either operand NaN), quiet
	cmpLT    = 0x11 // less than, ordered, quiet
	cmpGT    = 0x1e // greater than, ordered, quiet
)

// roundFloor is VROUNDPS's immediate for rounding down without raising the
// precision exception.
const roundFloor = 0x09

// gen wraps the avo context with the constant table.
type gen struct {
	*build.Context
	consts map[string]operand.Mem
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("asmgen: ")
	dir := flag.String("dir", ".", "directory to write kernels_amd64.s and kernels_amd64.go into")
	flag.Parse()

	g := &gen{Context: build.NewContext(), consts: map[string]operand.Mem{}}
	g.declareConstants()
	g.expKernel()
	g.expSumKernel()
	g.maxKernel()
	g.scaleKernel()
	g.sigmoidKernel()
	g.geluKernel()
	g.geluGradKernel()
	g.softmaxGradKernel()
	g.swigluGradKernel()

	if err := asmout.Write(g.Context, "vmath", *dir, "kernels_amd64"); err != nil {
		log.Fatal(err)
	}
}

// declareConstants emits the read-only tables: every constant is stored as
// eight copies so that it can be an m256 operand, and tailmask is eight
// all-ones words followed by eight zero words.
func (g *gen) declareConstants() {
	f32 := func(name string, v float32) { g.vec(name, math.Float32bits(v)) }
	f32("one", 1)
	f32("half", 0.5)
	f32("mhalf", -0.5)
	f32("inf", float32(math.Inf(1)))
	f32("neginf", float32(math.Inf(-1)))
	g.vec("signbit", 1<<31)
	g.vec("absmask", 1<<31-1)
	g.vec("bias", 127)
	f32("exphi", coef.ExpHi)
	f32("explo", coef.ExpLo)
	f32("log2e", coef.Log2e)
	f32("ln2hi", coef.Ln2Hi)
	f32("ln2lo", coef.Ln2Lo)
	for i, c := range coef.ExpPoly {
		f32(fmt.Sprintf("expp%d", i), c)
	}
	for i, c := range coef.ErfcPoly {
		// Halved (exactly) so that the polynomial gives erfc/2 directly.
		f32(fmt.Sprintf("erfcp%d", i), c/2)
	}
	for i, c := range coef.CentralPoly {
		f32(fmt.Sprintf("centralp%d", i), c)
	}
	f32("hsqrthalf", coef.HalfSqrtHalf)
	f32("invsqrt2pi", coef.InvSqrt2Pi)

	m := g.StaticGlobal("tailmask")
	g.DataAttributes(attr.RODATA | attr.NOPTR)
	for i := 0; i < 16; i++ {
		v := uint32(0)
		if i < 8 {
			v = math.MaxUint32
		}
		g.AppendDatum(operand.U32(v))
	}
	g.consts["tailmask"] = m
}

func (g *gen) vec(name string, bits uint32) {
	m := g.StaticGlobal(name)
	g.DataAttributes(attr.RODATA | attr.NOPTR)
	for i := 0; i < 8; i++ {
		g.AppendDatum(operand.U32(bits))
	}
	g.consts[name] = m
}

// k returns the m256 operand of a named constant.
func (g *gen) k(name string) operand.Mem {
	m, ok := g.consts[name]
	if !ok {
		log.Fatalf("no constant %q", name)
	}
	return m
}

// stream is one slice argument walked by a kernel loop.
type stream struct {
	base reg.Register
}

func (g *gen) slice(name string) stream {
	return stream{base: g.Load(g.Param(name).Base(), g.GP64())}
}

// at is the address of element idx of the stream.
func (s stream) at(idx reg.GPVirtual) operand.Mem {
	return operand.Mem{Base: s.base, Index: idx, Scale: 4}
}

// load reads 8 floats at element idx, or the lanes of mask when mask is not
// nil (the others read as zero).
func (g *gen) load(s stream, idx reg.GPVirtual, mask reg.VecVirtual) reg.VecVirtual {
	r := g.YMM()
	if mask == nil {
		g.VMOVUPS(s.at(idx), r)
	} else {
		g.VMASKMOVPS(s.at(idx), mask, r)
	}
	return r
}

// store writes 8 floats at element idx, or the lanes of mask.
func (g *gen) store(r reg.VecVirtual, s stream, idx reg.GPVirtual, mask reg.VecVirtual) {
	if mask == nil {
		g.VMOVUPS(r, s.at(idx))
	} else {
		g.VMASKMOVPS(r, mask, s.at(idx))
	}
}

// forEach emits a loop calling step for every 8 elements of n (mask nil),
// then once with the lane mask of the 1-7 remaining elements, if any. idx
// is the element index step reads and writes at.
func (g *gen) forEach(prefix string, n reg.Register, step func(idx reg.GPVirtual, mask reg.VecVirtual)) {
	idx, rem := g.GP64(), g.GP64()
	g.XORQ(idx, idx)
	g.Label(prefix + "_loop")
	g.MOVQ(n, rem)
	g.SUBQ(idx, rem)
	g.CMPQ(rem, operand.U8(8))
	g.JL(operand.LabelRef(prefix + "_tail"))
	step(idx, nil)
	g.ADDQ(operand.U8(8), idx)
	g.JMP(operand.LabelRef(prefix + "_loop"))

	g.Label(prefix + "_tail")
	g.TESTQ(rem, rem)
	g.JZ(operand.LabelRef(prefix + "_done"))
	// The mask of rem lanes starts 8-rem words into tailmask.
	p := g.GP64()
	g.LEAQ(g.k("tailmask"), p)
	g.SHLQ(operand.U8(2), rem)
	g.SUBQ(rem, p)
	mask := g.YMM()
	g.VMOVUPS(operand.Mem{Base: p, Disp: 32}, mask)
	step(idx, mask)
	g.Label(prefix + "_done")
}

// exp returns exp(x) lane by lane, leaving x unchanged: the algorithm of
// package vmath's exp32 with fused multiply-adds.
func (g *gen) exp(x reg.VecVirtual) reg.VecVirtual {
	xc := g.YMM()
	g.VMAXPS(g.k("explo"), x, xc) // NaN lanes become explo; fixed below
	g.VMINPS(g.k("exphi"), xc, xc)
	// n = floor(x*log2e + 1/2)
	fn := g.YMM()
	g.VMOVUPS(g.k("half"), fn)
	g.VFMADD231PS(g.k("log2e"), xc, fn)
	g.VROUNDPS(operand.U8(roundFloor), fn, fn)
	// r = x - n*ln2hi + n*ln2lo
	r := g.YMM()
	g.VMOVAPS(xc, r)
	g.VFNMADD231PS(g.k("ln2hi"), fn, r)
	g.VFMADD231PS(g.k("ln2lo"), fn, r)
	// y = 1 + r + r^2*P(r)
	p := g.YMM()
	g.VMOVUPS(g.k("expp0"), p)
	for i := 1; i < len(coef.ExpPoly); i++ {
		g.VFMADD213PS(g.k(fmt.Sprintf("expp%d", i)), r, p)
	}
	r2 := g.YMM()
	g.VMULPS(r, r, r2)
	g.VFMADD213PS(r, r2, p)
	g.VADDPS(g.k("one"), p, p)
	// y * 2^(n>>1) * 2^(n-(n>>1)): two factors keep n = 128 in range.
	n := g.YMM()
	g.VCVTPS2DQ(fn, n)
	n1 := g.YMM()
	g.VPSRAD(operand.U8(1), n, n1)
	g.VPSUBD(n1, n, n)
	g.VPADDD(g.k("bias"), n1, n1)
	g.VPSLLD(operand.U8(23), n1, n1)
	g.VPADDD(g.k("bias"), n, n)
	g.VPSLLD(operand.U8(23), n, n)
	g.VMULPS(n1, p, p)
	g.VMULPS(n, p, p)
	// Out-of-range and NaN inputs.
	m := g.YMM()
	g.VCMPPS(operand.U8(cmpGT), g.k("exphi"), x, m)
	g.VBLENDVPS(m, g.k("inf"), p, p)
	g.VCMPPS(operand.U8(cmpLT), g.k("explo"), x, m)
	g.VANDNPS(p, m, p)
	g.VCMPPS(operand.U8(cmpUnord), x, x, m)
	g.VBLENDVPS(m, x, p, p)
	return p
}

// cdfTerms returns the normal CDF Phi(x) and exp(-x*x/2), lane by lane.
func (g *gen) cdfTerms(x reg.VecVirtual) (cdf, e reg.VecVirtual) {
	tp, e, s := g.halfErfc(x)
	cdf = g.cdf(x, tp, e)
	// Central range: 1/2 + x*Q(x^2) where |x| < 1.
	q := g.YMM()
	g.VMOVUPS(g.k("centralp0"), q)
	for i := 1; i < len(coef.CentralPoly); i++ {
		g.VFMADD213PS(g.k(fmt.Sprintf("centralp%d", i)), s, q)
	}
	g.VFMADD213PS(g.k("half"), x, q)
	m := g.YMM()
	g.VANDPS(g.k("absmask"), x, m)
	g.VCMPPS(operand.U8(cmpLT), g.k("one"), m, m)
	g.VBLENDVPS(m, q, cdf, cdf)
	return cdf, e
}

// halfErfc returns t*P(t)/2 and exp(-x*x/2) for t = 1/(1+|x|/(2 sqrt 2)),
// so that their product is erfc(|x|/sqrt2)/2 = Phi(-|x|), and x*x.
func (g *gen) halfErfc(x reg.VecVirtual) (tp, e, s reg.VecVirtual) {
	t := g.YMM()
	g.VANDPS(g.k("absmask"), x, t)
	g.VMULPS(g.k("hsqrthalf"), t, t)
	g.VADDPS(g.k("one"), t, t)
	one := g.YMM()
	g.VMOVUPS(g.k("one"), one)
	g.VDIVPS(t, one, t)
	tp = g.YMM()
	g.VMOVUPS(g.k("erfcp0"), tp)
	for i := 1; i < len(coef.ErfcPoly); i++ {
		g.VFMADD213PS(g.k(fmt.Sprintf("erfcp%d", i)), t, tp)
	}
	g.VMULPS(t, tp, tp)
	s = g.YMM()
	g.VMULPS(x, x, s)
	q := g.YMM()
	g.VMULPS(g.k("mhalf"), s, q)
	return tp, g.exp(q), s
}

// cdf returns Phi(x) given x and the halfErfc terms.
func (g *gen) cdf(x, tp, e reg.VecVirtual) reg.VecVirtual {
	h := g.YMM()
	g.VMULPS(e, tp, h) // Phi(-|x|)
	c := g.YMM()
	g.VMOVUPS(g.k("one"), c)
	g.VSUBPS(h, c, c)       // Phi(|x|)
	g.VBLENDVPS(x, h, c, c) // sign of x selects Phi(-|x|)
	return c
}

// unary emits func name(dst, src []float32) applying body to len(src)
// elements.
func (g *gen) unary(name string, doc []string, body func(x reg.VecVirtual) reg.VecVirtual) {
	g.Function(name)
	g.Attributes(attr.NOSPLIT)
	g.SignatureExpr("func(dst, src []float32)")
	g.Pragma("noescape")
	g.Doc(doc...)
	dst, src := g.slice("dst"), g.slice("src")
	n := g.Load(g.Param("src").Len(), g.GP64())
	g.forEach(name, n, func(idx reg.GPVirtual, mask reg.VecVirtual) {
		g.store(body(g.load(src, idx, mask)), dst, idx, mask)
	})
	g.VZEROUPPER()
	g.RET()
}

func (g *gen) expKernel() {
	g.unary("expAVX2", []string{
		"expAVX2 sets dst[i] = exp(src[i]) for i < len(src); len(dst) >= len(src).",
		"Requires AVX2 and FMA.",
	}, g.exp)
}

func (g *gen) sigmoidKernel() {
	g.unary("sigmoidAVX2", []string{
		"sigmoidAVX2 sets dst[i] = 1/(1+exp(-src[i])) for i < len(src);",
		"len(dst) >= len(src). Requires AVX2 and FMA.",
	}, func(x reg.VecVirtual) reg.VecVirtual {
		nx := g.YMM()
		g.VXORPS(g.k("signbit"), x, nx)
		e := g.exp(nx)
		g.VADDPS(g.k("one"), e, e)
		y := g.YMM()
		g.VMOVUPS(g.k("one"), y)
		g.VDIVPS(e, y, y)
		return y
	})
}

func (g *gen) geluKernel() {
	g.unary("geluAVX2", []string{
		"geluAVX2 sets dst[i] = src[i]*Phi(src[i]) for i < len(src);",
		"len(dst) >= len(src). Requires AVX2 and FMA.",
	}, func(x reg.VecVirtual) reg.VecVirtual {
		c, _ := g.cdfTerms(x)
		g.VMULPS(x, c, c)
		return c
	})
}

func (g *gen) geluGradKernel() {
	g.Function("geluGradAVX2")
	g.Attributes(attr.NOSPLIT)
	g.SignatureExpr("func(dst, x, gy []float32)")
	g.Pragma("noescape")
	g.Doc(
		"geluGradAVX2 sets dst[i] = gy[i]*(Phi(x[i]) + x[i]*phi(x[i])) for i < len(x);",
		"dst and gy are at least as long as x. Requires AVX2 and FMA.",
	)
	dst, xs, gy := g.slice("dst"), g.slice("x"), g.slice("gy")
	n := g.Load(g.Param("x").Len(), g.GP64())
	g.forEach("gelugrad", n, func(idx reg.GPVirtual, mask reg.VecVirtual) {
		x := g.load(xs, idx, mask)
		c, e := g.cdfTerms(x)
		d := g.YMM()
		g.VMULPS(x, e, d)
		g.VFMADD132PS(g.k("invsqrt2pi"), c, d) // d = d*invsqrt2pi + c
		y := g.load(gy, idx, mask)
		g.VMULPS(y, d, d)
		g.store(d, dst, idx, mask)
	})
	g.VZEROUPPER()
	g.RET()
}

func (g *gen) expSumKernel() {
	g.Function("expSumAVX2")
	g.Attributes(attr.NOSPLIT)
	g.SignatureExpr("func(dst, src []float32, shift float32) float32")
	g.Pragma("noescape")
	g.Doc(
		"expSumAVX2 sets dst[i] = exp(src[i]-shift) for i < len(src) and returns their",
		"sum, accumulated in eight lanes (lane i%8) then reduced pairwise;",
		"len(dst) >= len(src). Requires AVX2 and FMA.",
	)
	dst, src := g.slice("dst"), g.slice("src")
	n := g.Load(g.Param("src").Len(), g.GP64())
	vs := g.param("shift")
	acc := g.YMM()
	g.VXORPS(acc, acc, acc)
	g.forEach("expsum", n, func(idx reg.GPVirtual, mask reg.VecVirtual) {
		x := g.load(src, idx, mask)
		g.VSUBPS(vs, x, x)
		e := g.exp(x)
		g.store(e, dst, idx, mask)
		if mask != nil {
			g.VANDPS(mask, e, e)
		}
		g.VADDPS(e, acc, acc)
	})
	s := g.reduceSum(acc)
	g.VZEROUPPER()
	g.Store(s, g.ReturnIndex(0))
	g.RET()
}

// reduceSum adds the eight lanes of acc as (l0+l4 + l1+l5) + (l2+l6 + l3+l7)
// and returns the XMM register holding the sum in its low lane.
func (g *gen) reduceSum(acc reg.VecVirtual) reg.VecVirtual {
	hi := g.XMM()
	g.VEXTRACTF128(operand.U8(1), acc, hi)
	s := acc.AsX()
	g.VADDPS(hi, s, s)
	g.VHADDPS(s, s, s)
	g.VHADDPS(s, s, s)
	return s.(reg.VecVirtual)
}

func (g *gen) maxKernel() {
	g.Function("maxAVX2")
	g.Attributes(attr.NOSPLIT)
	g.SignatureExpr("func(x []float32) float32")
	g.Pragma("noescape")
	g.Doc(
		"maxAVX2 returns the largest element of x ignoring NaNs, -Inf if there is",
		"none. Requires AVX2.",
	)
	xs := g.slice("x")
	n := g.Load(g.Param("x").Len(), g.GP64())
	acc := g.YMM()
	g.VMOVUPS(g.k("neginf"), acc)
	g.forEach("max", n, func(idx reg.GPVirtual, mask reg.VecVirtual) {
		x := g.load(xs, idx, mask)
		if mask != nil {
			// Lanes past the end take -Inf instead of the zeros read.
			ni := g.YMM()
			g.VMOVUPS(g.k("neginf"), ni)
			g.VBLENDVPS(mask, x, ni, x)
		}
		// VMAXPS returns its second source (acc) when either is NaN.
		g.VMAXPS(acc, x, acc)
	})
	hi := g.XMM()
	g.VEXTRACTF128(operand.U8(1), acc, hi)
	s := acc.AsX()
	g.VMAXPS(s, hi, s)
	t := g.XMM()
	g.VPERMILPS(operand.U8(0x4e), s, t)
	g.VMAXPS(s, t, s)
	g.VPERMILPS(operand.U8(0xb1), s, t)
	g.VMAXPS(s, t, s)
	g.VZEROUPPER()
	g.Store(s, g.ReturnIndex(0))
	g.RET()
}

// param loads a float32 parameter broadcast to every lane.
func (g *gen) param(name string) reg.VecVirtual {
	p, err := g.Param(name).Resolve()
	if err != nil {
		log.Fatal(err)
	}
	v := g.YMM()
	g.VBROADCASTSS(p.Addr, v)
	return v
}

func (g *gen) softmaxGradKernel() {
	g.Function("softmaxGradAVX2")
	g.Attributes(attr.NOSPLIT)
	g.SignatureExpr("func(d, p []float32, dot, scale float32)")
	g.Pragma("noescape")
	g.Doc(
		"softmaxGradAVX2 sets d[i] = p[i]*(d[i]-dot)*scale for i < len(p), in that",
		"order of operations; d is at least as long as p. Requires AVX2.",
	)
	ds, ps := g.slice("d"), g.slice("p")
	n := g.Load(g.Param("p").Len(), g.GP64())
	vdot, vscale := g.param("dot"), g.param("scale")
	g.forEach("smgrad", n, func(idx reg.GPVirtual, mask reg.VecVirtual) {
		d := g.load(ds, idx, mask)
		p := g.load(ps, idx, mask)
		g.VSUBPS(vdot, d, d)
		g.VMULPS(d, p, d)
		g.VMULPS(vscale, d, d)
		g.store(d, ds, idx, mask)
	})
	g.VZEROUPPER()
	g.RET()
}

func (g *gen) swigluGradKernel() {
	g.Function("swigluGradAVX2")
	g.Attributes(attr.NOSPLIT)
	g.SignatureExpr("func(gg, gu, gate, up, sig, dy []float32)")
	g.Pragma("noescape")
	g.Doc(
		"swigluGradAVX2 sets, for i < len(gate), gu[i] = dy[i]*gate[i]*sig[i] and",
		"gg[i] = dy[i]*up[i]*sig[i]*(1+gate[i]*(1-sig[i])), in those orders of",
		"operations; the other slices are at least as long as gate. Requires AVX2.",
	)
	ggs, gus, zs, us, ss, dys := g.slice("gg"), g.slice("gu"), g.slice("gate"), g.slice("up"), g.slice("sig"), g.slice("dy")
	n := g.Load(g.Param("gate").Len(), g.GP64())
	one := g.YMM()
	g.VBROADCASTSS(g.k("one"), one)
	g.forEach("swiglugrad", n, func(idx reg.GPVirtual, mask reg.VecVirtual) {
		dy := g.load(dys, idx, mask)
		z := g.load(zs, idx, mask)
		s := g.load(ss, idx, mask)
		u := g.load(us, idx, mask)
		t := g.YMM()
		g.VMULPS(z, dy, t)
		g.VMULPS(s, t, t)
		g.store(t, gus, idx, mask)
		w := g.YMM()
		g.VMULPS(u, dy, w)
		g.VMULPS(s, w, w)
		v := g.YMM()
		g.VSUBPS(s, one, v) // 1-s
		g.VMULPS(v, z, v)   // z*(1-s)
		g.VADDPS(one, v, v) // 1+z*(1-s)
		g.VMULPS(v, w, w)
		g.store(w, ggs, idx, mask)
	})
	g.VZEROUPPER()
	g.RET()
}

func (g *gen) scaleKernel() {
	g.Function("scaleAVX2")
	g.Attributes(attr.NOSPLIT)
	g.SignatureExpr("func(x []float32, a float32)")
	g.Pragma("noescape")
	g.Doc("scaleAVX2 multiplies every element of x by a. Requires AVX2.")
	xs := g.slice("x")
	n := g.Load(g.Param("x").Len(), g.GP64())
	va := g.param("a")
	g.forEach("scale", n, func(idx reg.GPVirtual, mask reg.VecVirtual) {
		x := g.load(xs, idx, mask)
		g.VMULPS(va, x, x)
		g.store(x, xs, idx, mask)
	})
	g.VZEROUPPER()
	g.RET()
}
