//go:build !linux

package vmem

// AdviseHuge is a no-op where there is no MADV_HUGEPAGE.
func AdviseHuge(dst []float32) {}

// PrefaultWrite is a no-op where there is no MADV_POPULATE_WRITE.
func PrefaultWrite(dst []float32) {}

// HugeAdvised reports false: there is no huge page advice here.
func HugeAdvised(p []float32) (bool, error) { return false, nil }

// HasTHP reports false: there are no transparent huge pages here.
func HasTHP() bool { return false }
