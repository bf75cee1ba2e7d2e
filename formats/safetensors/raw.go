package safetensors

import (
	"errors"
	"runtime"
	"sync"
)

// rawSplit is the size from which RawInto reads a tensor in parallel
// pieces, one per GOMAXPROCS worker.
const rawSplit = 8 << 20

// RawInto copies the named tensor's stored bytes, unconverted, into dst,
// whose length must equal the tensor's size in bytes. A tensor of a file
// is read with pread (in parallel pieces when large) rather than through
// the mapping, for the reason decodeFloat32 gives. dst is left untouched
// when the tensor is unknown or the length is wrong.
func (f *File) RawInto(name string, dst []byte) error {
	ti, err := f.openInfo(name)
	if err != nil {
		return err
	}
	if int64(len(dst)) != ti.Size() {
		return f.errorf("tensor %q: destination has %d bytes, tensor has %d", name, len(dst), ti.Size())
	}
	lo := f.dataStart + ti.Begin
	if f.fh == nil {
		copy(dst, f.buf[lo:lo+ti.Size()])
		return nil
	}
	parts := 1
	if len(dst) >= rawSplit {
		parts = runtime.GOMAXPROCS(0)
	}
	piece := (len(dst) + parts - 1) / parts
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := 1; p < parts; p++ {
		a, b := min(p*piece, len(dst)), min((p+1)*piece, len(dst))
		wg.Go(func() { errs[p] = readAt(f.fh, dst[a:b], lo+int64(a)) })
	}
	errs[0] = readAt(f.fh, dst[:min(piece, len(dst))], lo)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return f.errorf("tensor %q: %w", name, err)
	}
	return nil
}

// openInfo describes the named tensor of a file still open.
func (f *File) openInfo(name string) (TensorInfo, error) {
	if f.closed {
		return TensorInfo{}, f.errorf("tensor %q: %w", name, ErrClosed)
	}
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, f.errorf("tensor %q: %w", name, ErrNotFound)
	}
	return f.infos[i], nil
}

// RawInto is File.RawInto on the shard holding the named tensor.
func (m *Model) RawInto(name string, dst []byte) error {
	f, err := m.file(name)
	if err != nil {
		return err
	}
	return f.RawInto(name, dst)
}
