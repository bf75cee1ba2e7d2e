//go:build !linux

package safetensors

// adviseHuge is a no-op where there is no MADV_HUGEPAGE.
func adviseHuge(dst []float32) {}

// prefaultWrite is a no-op where there is no MADV_POPULATE_WRITE.
func prefaultWrite(dst []float32) {}
