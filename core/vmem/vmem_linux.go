package vmem

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	pageSize = 4096
	hugeSize = 2 << 20
)

// AdviseHuge asks for transparent huge pages on the whole 2 MiB pages
// inside dst (MADV_HUGEPAGE), where the system grants them on request. A
// large destination then takes one page fault per 2 MiB instead of one per
// 4 KiB, and fewer TLB misses while it is written and read. Pages already
// in place are left as they are.
func AdviseHuge(dst []float32) {
	p, n := uintptr(unsafe.Pointer(unsafe.SliceData(dst))), 4*uintptr(len(dst))
	if lo, hi := (p+hugeSize-1)&^(hugeSize-1), (p+n)&^(hugeSize-1); hi > lo {
		madvise(lo, hi, unix.MADV_HUGEPAGE)
	}
	runtime.KeepAlive(dst)
}

// PrefaultWrite allocates every missing page of dst in one system call
// (MADV_POPULATE_WRITE, Linux 5.14) without changing the contents. Fresh
// memory otherwise takes a page fault on the first store to each page,
// which can cost more than decoding into it.
func PrefaultWrite(dst []float32) {
	p, n := uintptr(unsafe.Pointer(unsafe.SliceData(dst))), 4*uintptr(len(dst))
	madvise(p&^(pageSize-1), (p+n+pageSize-1)&^(pageSize-1), unix.MADV_POPULATE_WRITE)
	runtime.KeepAlive(dst)
}

// madvise gives advice on the pages [lo, hi), ignoring failure: every use
// is a hint that leaves the memory's contents alone.
func madvise(lo, hi uintptr, advice int) {
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, lo, hi-lo, uintptr(advice))
}

// HugeAdvised reports whether the whole 2 MiB pages inside p lie in
// mappings advised MADV_HUGEPAGE (the "hg" flag of /proc/self/smaps), and
// false when p holds no whole 2 MiB page.
func HugeAdvised(p []float32) (bool, error) {
	base, n := uintptr(unsafe.Pointer(unsafe.SliceData(p))), 4*uintptr(len(p))
	lo, hi := (base+hugeSize-1)&^(hugeSize-1), (base+n)&^(hugeSize-1)
	defer runtime.KeepAlive(p)
	if hi <= lo {
		return false, nil
	}
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return false, fmt.Errorf("huge page advice: %w", err)
	}
	covered := lo // the part of [lo, hi) seen in advised mappings so far
	var start, end uintptr
	for line := range strings.Lines(string(data)) {
		if a, b, ok := mappingRange(line); ok {
			start, end = a, b
			continue
		}
		flags, ok := strings.CutPrefix(line, "VmFlags:")
		if !ok || end <= covered || start > covered {
			continue
		}
		if !slices.Contains(strings.Fields(flags), "hg") {
			return false, nil
		}
		covered = end
		if covered >= hi {
			return true, nil
		}
	}
	return false, nil
}

// mappingRange parses the "start-end perms ..." header line of a mapping
// in /proc/self/smaps.
func mappingRange(line string) (start, end uintptr, ok bool) {
	field, _, _ := strings.Cut(line, " ")
	a, b, found := strings.Cut(field, "-")
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(a, 16, 64)
	e, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}

// thpPath is where a kernel with transparent huge pages shows its setting.
const thpPath = "/sys/kernel/mm/transparent_hugepage/enabled"

// HasTHP reports whether the kernel has transparent huge pages, whatever
// their setting: without them AdviseHuge does nothing.
func HasTHP() bool {
	_, err := os.Stat(thpPath)
	return err == nil
}
