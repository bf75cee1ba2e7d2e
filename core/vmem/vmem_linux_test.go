package vmem

import "testing"

// TestAdviseHuge checks that AdviseHuge marks the whole 2 MiB pages of a
// buffer for huge pages and that HugeAdvised sees it, and that a buffer too
// small to hold one is reported as not advised.
func TestAdviseHuge(t *testing.T) {
	if !HasTHP() {
		t.Skip("this kernel has no transparent huge pages (" + thpPath + " is missing)")
	}
	big := make([]float32, 3<<20) // 12 MiB: at least five whole 2 MiB pages
	if ok, err := HugeAdvised(big); err != nil || ok {
		t.Fatalf("fresh buffer: advised %v, %v; want false", ok, err)
	}
	AdviseHuge(big)
	if ok, err := HugeAdvised(big); err != nil || !ok {
		t.Fatalf("after AdviseHuge: advised %v, %v; want true", ok, err)
	}
	small := make([]float32, 1<<10)
	AdviseHuge(small)
	if ok, err := HugeAdvised(small); err != nil || ok {
		t.Fatalf("4 KiB buffer: advised %v, %v; want false", ok, err)
	}
}
