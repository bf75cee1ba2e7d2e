//go:build unix

package safetensors

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps size bytes of fh read-only and shared, so pages come straight
// from the page cache and are never copied.
func mapFile(fh *os.File, size int) ([]byte, func() error, error) {
	buf, err := unix.Mmap(int(fh.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	return buf, func() error {
		if err := unix.Munmap(buf); err != nil {
			return fmt.Errorf("munmap: %w", err)
		}
		return nil
	}, nil
}
