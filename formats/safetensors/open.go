package safetensors

import (
	"fmt"
	"os"
)

// Open memory-maps the safetensors file at path read-only and validates its
// header and layout. Tensor data returned by the File aliases the mapping
// until Close. As with any mapping, the file must not be truncated while it
// is open: reading the vanished pages would crash the process. The file
// also stays open until Close, for Float32 and Float32Into, which read it
// (a file truncated meanwhile is then an error).
func Open(path string) (_ *File, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err // already names the path
	}
	// The descriptor stays open for decoding, which reads rather than
	// touching the mapping (see decodeFloat32).
	defer func() {
		if err != nil {
			fh.Close()
		}
	}()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file", path, ErrInvalid)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("%s: %w: file is %d bytes, shorter than the 8-byte header length", path, ErrInvalid, size)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%s: file of %d bytes is too large to map", path, size)
	}
	buf, release, err := mapFile(fh, int(size))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f, err := Parse(buf)
	if err != nil {
		if rerr := release(); rerr != nil {
			err = fmt.Errorf("%w (and unmapping failed: %w)", err, rerr)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.path = path
	f.release = release
	f.fh = fh
	return f, nil
}
