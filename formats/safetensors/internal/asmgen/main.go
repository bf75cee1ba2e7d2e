// Command asmgen writes the AVX2 half-precision decoders of package
// safetensors: F16 -> float32 with F16C's VCVTPH2PS and BF16 -> float32 as
// a zero-extend and 16-bit shift, each with ordinary stores and with
// non-temporal (streaming) stores.
//
// It is run by `go generate ./formats/safetensors`, which writes
// decode_amd64.s and its Go declarations decode_amd64.go. The output
// depends on nothing but this file, so regenerating reproduces the
// committed files byte for byte.
//
// Every kernel decodes the largest multiple of 8 elements that fits both
// slices and returns how many it decoded; the caller finishes the 0-7
// remaining ones in Go. Nothing outside the slices is read or written.
//
// The results are those of the portable Go decoders bit for bit, for all
// 65536 inputs: VCVTPH2PS quiets signalling NaNs (sets the top mantissa
// bit), which the F16 kernels undo for the lanes whose input had that bit
// clear, so that a NaN keeps its payload as core/tensor.HalfToFloat32
// keeps it.
package main

import (
	"flag"
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
	dir := flag.String("dir", ".", "directory to write decode_amd64.s and decode_amd64.go into")
	flag.Parse()

	c := build.NewContext()
	for _, stream := range []bool{false, true} {
		kernel(c, "f16", stream)
		kernel(c, "bf16", stream)
	}
	if err := asmout.Write(c, "safetensors", *dir, "decode_amd64"); err != nil {
		log.Fatal(err)
	}
}

// cmpUnord is VCMPPS's predicate for "either operand is NaN", quiet.
const cmpUnord = 0x03

// unroll is the number of 8-element vectors of the main loop: 32 elements,
// one 64-byte cache line of source and two of output per iteration.
const unroll = 4

// kernel emits func <from>ToF32AVX2[NT](dst []float32, src []byte) int.
func kernel(c *build.Context, from string, stream bool) {
	name := from + "ToF32AVX2"
	what, needs := "binary16", "AVX2 and F16C"
	if from == "bf16" {
		what, needs = "bfloat16", "AVX2"
	}
	doc := []string{
		name + " decodes little-endian " + what + " elements of src into dst,",
		"the largest multiple of 8 that fits both, and returns that count.",
	}
	if stream {
		name += "NT"
		doc = []string{
			name + " is " + from + "ToF32AVX2 with non-temporal stores, which",
			"bypass the cache and skip reading the destination lines first;",
			"dst must be 32-byte aligned.",
		}
	}
	doc = append(doc, "Requires "+needs+".")
	c.Function(name)
	c.Attributes(attr.NOSPLIT)
	c.SignatureExpr("func(dst []float32, src []byte) int")
	c.Pragma("noescape")
	c.Doc(doc...)

	d := c.Load(c.Param("dst").Base(), c.GP64())
	s := c.Load(c.Param("src").Base(), c.GP64())
	n := c.Load(c.Param("dst").Len(), c.GP64())
	ns := c.Load(c.Param("src").Len(), c.GP64())
	c.SHRQ(operand.U8(1), ns)
	c.CMPQ(ns, n)
	c.CMOVQLT(ns, n)
	c.ANDQ(operand.I32(-8), n) // whole vectors only
	i := c.GP64()
	c.XORQ(i, i)
	var quiet reg.VecVirtual
	if from == "f16" {
		// 0x00400000 in every lane: the float32 quiet-NaN bit.
		quiet = c.YMM()
		c.VPCMPEQD(quiet, quiet, quiet)
		c.VPSRLD(operand.U8(31), quiet, quiet)
		c.VPSLLD(operand.U8(22), quiet, quiet)
	}

	// decode converts 8 elements at element index i+8*k.
	decode := func(k int) {
		x := c.YMM()
		src := operand.Mem{Base: s, Index: i, Scale: 2, Disp: 16 * k}
		if from == "f16" {
			c.VCVTPH2PS(src, x)
			// Clear the quiet bit of NaN lanes whose input's top mantissa
			// bit (bit 9, bit 22 once shifted by 13) is clear.
			h, m := c.YMM(), c.YMM()
			c.VPMOVZXWD(src, h)
			c.VPSLLD(operand.U8(13), h, h)
			c.VCMPPS(operand.U8(cmpUnord), x, x, m)
			c.VPANDN(m, h, m) // m &^ h
			c.VPAND(quiet, m, m)
			c.VPXOR(m, x, x)
		} else {
			c.VPMOVZXWD(src, x)
			c.VPSLLD(operand.U8(16), x, x)
		}
		dst := operand.Mem{Base: d, Index: i, Scale: 4, Disp: 32 * k}
		if stream {
			c.VMOVNTPS(x, dst)
		} else {
			c.VMOVUPS(x, dst)
		}
	}
	loop := func(label string, width int) {
		rem := c.GP64()
		c.Label(name + "_" + label)
		c.MOVQ(n, rem)
		c.SUBQ(i, rem)
		c.CMPQ(rem, operand.U8(8*width))
		next := "one"
		if label == "one" {
			next = "done"
		}
		c.JL(operand.LabelRef(name + "_" + next))
		for k := 0; k < width; k++ {
			decode(k)
		}
		c.ADDQ(operand.U8(8*width), i)
		c.JMP(operand.LabelRef(name + "_" + label))
	}
	loop("wide", unroll)
	loop("one", 1)
	c.Label(name + "_done")
	if stream {
		c.SFENCE() // order the streaming stores before anything after
	}
	c.VZEROUPPER()
	c.Store(n, c.ReturnIndex(0))
	c.RET()
}
