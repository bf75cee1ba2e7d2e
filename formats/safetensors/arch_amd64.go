package safetensors

import "golang.org/x/sys/cpu"

// The assembly decoders of decode_amd64.s, when the CPU has what they need.
// Tests switch them off to compare with the portable Go.
var (
	asmF16  = cpu.X86.HasAVX2 && cpu.X86.HasF16C
	asmBF16 = cpu.X86.HasAVX2
)
