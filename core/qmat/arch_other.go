//go:build !amd64

package qmat

// hasAVX2 is false: only amd64 has assembly kernels.
const hasAVX2 = false

// hasAVX512 is false: only amd64 has assembly kernels.
const hasAVX512 = false

func asmDots(Type) dotsFunc { return nil }

func asmDequant(Type) func(dst []float32, src []byte) { return nil }

func asmIntDots(Type) intDotsFunc { return nil }
