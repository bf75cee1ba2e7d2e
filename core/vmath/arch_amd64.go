package vmath

import "golang.org/x/sys/cpu"

// hasAsm reports whether this CPU runs the AVX2+FMA kernels of
// kernels_amd64.s.
var hasAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA
