//go:build unix

package layer

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapLazy maps n zero float32s of private anonymous memory without
// reserving swap; pages become resident only when written.
func mapLazy(n int) ([]float32, bool) {
	b, err := unix.Mmap(-1, 0, 4*n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
	if err != nil {
		return nil, false
	}
	// Transparent huge pages, where enabled for madvise: a parameter
	// filled once and released costs one fault per 2 MiB, not per 4 KiB.
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n), true
}

// unmapLazy drops the resident pages of a mapping made by mapLazy; it
// stays mapped and reads as zero.
func unmapLazy(data []float32) bool {
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), 4*len(data))
	return unix.Madvise(b, unix.MADV_DONTNEED) == nil
}
