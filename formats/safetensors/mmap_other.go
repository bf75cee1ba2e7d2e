//go:build !unix

package safetensors

import (
	"fmt"
	"io"
	"os"
)

// mapFile reads the file into memory on platforms without mmap support.
func mapFile(fh *os.File, size int) ([]byte, func() error, error) {
	buf := make([]byte, size)
	if _, err := io.ReadFull(fh, buf); err != nil {
		return nil, nil, fmt.Errorf("read: %w", err)
	}
	return buf, func() error { return nil }, nil
}
