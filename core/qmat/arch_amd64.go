package qmat

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasAVX2 reports whether this CPU runs the AVX2 kernels: AVX2, FMA and
// F16C (which every AVX2 CPU has, but golang.org/x/sys/cpu does not
// report, so CPUID is asked).
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpuid1ECX()&(1<<29) != 0

// hasAVX512 reports whether this CPU also runs the AVX-512 kernels.
var hasAVX512 = hasAVX2 && cpu.X86.HasAVX512F

// asmDots returns the assembly dot kernel of type t on the current path,
// or nil when there is none.
func asmDots(t Type) dotsFunc {
	if !useAsm() {
		return nil
	}
	wide := useAVX512()
	bs, bb := t.BlockSize(), t.BlockBytes()
	check := func(w []byte, stride, rows int, x, aux, y []float32) int {
		blocks := len(x) / bs
		if rows <= 0 || blocks <= 0 || len(y) < rows || len(w) < (rows-1)*stride+blocks*bb ||
			t == Q4_K && len(aux) < 8*blocks {
			panic("qmat: dot kernel called with short operands")
		}
		return blocks
	}
	var k func(blocks, stride, rows int, w *byte, x, y *float32)
	var kAux func(blocks, stride, rows int, w *byte, x, aux, y *float32)
	switch {
	case t == Q8_0 && wide:
		k = q8Dots512
	case t == Q8_0:
		k = q8Dots256
	case t == Q4_0 && wide:
		k = q4Dots512
	case t == Q4_0:
		k = q4Dots256
	case t == Q4_K && wide:
		kAux = q4KDots512
	case t == Q4_K:
		kAux = q4KDots256
	case t == Q6_K && wide:
		kAux = q6KDots512
	case t == Q6_K:
		kAux = q6KDots256
	default:
		return nil
	}
	if k != nil {
		return func(w []byte, stride, rows int, x, aux, y []float32) {
			blocks := check(w, stride, rows, x, aux, y)
			k(blocks, stride, rows, unsafe.SliceData(w), unsafe.SliceData(x), unsafe.SliceData(y))
		}
	}
	return func(w []byte, stride, rows int, x, aux, y []float32) {
		blocks := check(w, stride, rows, x, aux, y)
		kAux(blocks, stride, rows, unsafe.SliceData(w), unsafe.SliceData(x), unsafe.SliceData(aux), unsafe.SliceData(y))
	}
}

// asmDequant returns the assembly dequantizer of type t on the current
// path, or nil (the K-quants: their portable decoders cost little next to
// the product that follows them).
func asmDequant(t Type) func(dst []float32, src []byte) {
	if !useAsm() {
		return nil
	}
	wide := useAVX512()
	var k func(blocks int, w *byte, y *float32)
	switch {
	case t == Q8_0 && wide:
		k = q8Dequant512
	case t == Q8_0:
		k = q8Dequant256
	case t == Q4_0 && wide:
		k = q4Dequant512
	case t == Q4_0:
		k = q4Dequant256
	default:
		return nil
	}
	bb := t.BlockBytes()
	return func(dst []float32, src []byte) {
		blocks := len(src) / bb
		if blocks == 0 {
			return
		}
		if len(src) != blocks*bb || len(dst) < 32*blocks {
			panic("qmat: dequantizer called with short operands")
		}
		k(blocks, unsafe.SliceData(src), unsafe.SliceData(dst))
	}
}

// hasVNNI reports whether this CPU runs the AVX-512 VNNI int8 kernels
// (VPDPBUSD, with AVX-512BW's byte operations).
var hasVNNI = hasAVX512 && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI

// asmIntDots returns the assembly int8-activation dot kernel of type t on
// the current path, or nil when there is none.
func asmIntDots(t Type) intDotsFunc {
	if !useAsm() {
		return nil
	}
	vnni := hasVNNI && useAVX512()
	var k func(blocks, stride, rows int, w *byte, xq *int8, xd *float32, xs *int32, y *float32)
	switch {
	case t == Q8_0 && vnni:
		k = q8IntDotsVNNI
	case t == Q8_0:
		k = q8IntDots256
	case t == Q4_0 && vnni:
		k = q4IntDotsVNNI
	case t == Q4_0:
		k = q4IntDots256
	default:
		return nil
	}
	bb := t.BlockBytes()
	return func(w []byte, stride, rows int, xq []int8, xd []float32, xs []int32, y []float32) {
		blocks := len(xd)
		if rows <= 0 || blocks <= 0 || len(xq) < 32*blocks || len(xs) < 8*blocks || len(y) < rows ||
			len(w) < (rows-1)*stride+blocks*bb {
			panic("qmat: int8 dot kernel called with short operands")
		}
		k(blocks, stride, rows, unsafe.SliceData(w), unsafe.SliceData(xq), unsafe.SliceData(xd), unsafe.SliceData(xs), unsafe.SliceData(y))
	}
}
