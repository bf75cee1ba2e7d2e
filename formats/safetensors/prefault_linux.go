package safetensors

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	pageSize = 4096
	hugeSize = 2 << 20
)

// adviseHuge asks for transparent huge pages on the whole 2 MiB pages
// inside dst (MADV_HUGEPAGE), where the system grants them on request. A
// large destination then takes one page fault per 2 MiB instead of one per
// 4 KiB, and fewer TLB misses while it is written and read. Pages already
// in place are left as they are.
func adviseHuge(dst []float32) {
	p, n := uintptr(unsafe.Pointer(unsafe.SliceData(dst))), 4*uintptr(len(dst))
	if lo, hi := (p+hugeSize-1)&^(hugeSize-1), (p+n)&^(hugeSize-1); hi > lo {
		madvise(lo, hi, unix.MADV_HUGEPAGE)
	}
	runtime.KeepAlive(dst)
}

// prefaultWrite allocates every missing page of dst in one system call
// (MADV_POPULATE_WRITE, Linux 5.14) without changing the contents. Fresh
// memory otherwise takes a page fault on the first store to each page,
// which can cost more than decoding into it.
func prefaultWrite(dst []float32) {
	p, n := uintptr(unsafe.Pointer(unsafe.SliceData(dst))), 4*uintptr(len(dst))
	madvise(p&^(pageSize-1), (p+n+pageSize-1)&^(pageSize-1), unix.MADV_POPULATE_WRITE)
	runtime.KeepAlive(dst)
}

// madvise gives advice on the pages [lo, hi), ignoring failure: every use
// is a hint that leaves the memory's contents alone.
func madvise(lo, hi uintptr, advice int) {
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, uintptr(advice))
}
