//go:build unix

package safetensors

import "golang.org/x/sys/unix"

// evictRange advises MADV_DONTNEED on the whole pages covering buf[lo:hi];
// neighbouring data sharing a page is simply read back from the page cache
// when needed.
func evictRange(buf []byte, lo, hi int64) {
	page := int64(unix.Getpagesize())
	lo = lo &^ (page - 1)
	hi = min((hi+page-1)&^(page-1), int64(len(buf)))
	if lo >= hi {
		return
	}
	_ = unix.Madvise(buf[lo:hi], unix.MADV_DONTNEED)
}
