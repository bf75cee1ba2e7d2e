package main

import (
	"testing"

	"golang.org/x/sys/cpu"
)

// TestLoops runs every loop this CPU can, the AVX2 one included where
// AVX-512 is preferred, and checks that rate reports a positive rate.
func TestLoops(t *testing.T) {
	loops := available()
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX2 && cpu.X86.HasFMA { // available chose AVX-512
		loops = append(loops, fmaAVX2)
	}
	if len(loops) == 0 {
		t.Skip("no FMA on this CPU")
	}
	for _, l := range loops {
		if r := rate(l, 2, 1000); !(r > 0) {
			t.Errorf("%s: rate %v, want > 0", l.name, r)
		}
	}
}
