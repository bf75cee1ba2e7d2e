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

// asmDequant returns the assembly dequantizer of type t, or nil: the
// portable ones cost little next to the product that follows them.
func asmDequant(Type) func(dst []float32, src []byte) { return nil }
