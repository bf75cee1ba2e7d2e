package main

import "golang.org/x/sys/cpu"

func fma512(n int)
func fma256(n int)
func dpbf16(n int)

// The loops: an FMA is 2 FLOP per lane; VDPBF16PS 4 (two products and
// their sum added) per float32 lane.
var (
	fmaAVX512 = loop{"fma-peak-avx512", "GFLOP/s", 2 * 16, fma512}
	fmaAVX2   = loop{"fma-peak-avx2", "GFLOP/s", 2 * 8, fma256}
	dotBF16   = loop{"vdpbf16ps-peak", "GFLOP/s (BF16 inputs)", 4 * 16, dpbf16}
)

// available returns the loops this CPU runs: the widest FMA, and VDPBF16PS
// where present.
func available() []loop {
	var out []loop
	switch {
	case cpu.X86.HasAVX512F:
		out = append(out, fmaAVX512)
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		out = append(out, fmaAVX2)
	}
	if cpu.X86.HasAVX512BF16 {
		out = append(out, dotBF16)
	}
	return out
}
