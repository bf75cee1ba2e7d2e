package safetensors

import (
	"fmt"
	"io"
	"os"
)

// Section returns where the named tensor's bytes lie in its file: the
// open file, the offset and the length. It lets a writer copy them file
// to file (Writer.CopyRange) without reading them into memory. The file
// is owned by f and valid until Close; ok is false for a File made by
// Parse.
func (f *File) Section(name string) (fh *os.File, off, n int64, ok bool) {
	if f.closed || f.fh == nil {
		return nil, 0, 0, false
	}
	ti, err := f.Info(name)
	if err != nil {
		return nil, 0, 0, false
	}
	return f.fh, f.dataStart + ti.Begin, ti.Size(), true
}

// Section is File.Section on the shard holding the named tensor.
func (m *Model) Section(name string) (*os.File, int64, int64, bool) {
	f, err := m.file(name)
	if err != nil {
		return nil, 0, 0, false
	}
	return f.Section(name)
}

// CopyRange writes n bytes of src starting at off as raw tensor data, as
// Write would, but file to file: on Linux the kernel copies them
// (copy_file_range) without the pages passing through this process. The
// bytes must not run past the current tensor. It moves src's file offset.
func (w *Writer) CopyRange(src *os.File, off, n int64) error {
	if err := w.check(); err != nil {
		return err
	}
	if w.cur >= len(w.descs) || n > w.sizes[w.cur]-w.done {
		return w.fail(fmt.Errorf("%d bytes copied past the end of the current tensor", n))
	}
	if w.file == nil {
		if _, err := io.Copy(w, io.NewSectionReader(src, off, n)); err != nil {
			return w.fail(err)
		}
		return nil
	}
	if err := w.bw.Flush(); err != nil {
		return w.fail(fmt.Errorf("flush: %w", err))
	}
	if _, err := src.Seek(off, io.SeekStart); err != nil {
		return w.fail(err)
	}
	got, err := w.file.ReadFrom(&io.LimitedReader{R: src, N: n})
	if err == nil && got != n {
		err = fmt.Errorf("%d of %d bytes copied (the source is shorter)", got, n)
	}
	if err != nil {
		return w.fail(fmt.Errorf("tensor %q: %w", w.descs[w.cur].Name, err))
	}
	w.done += n
	w.skipEmpty()
	return nil
}

// CopyRange is Writer.CopyRange on the shard being written; the bytes
// must not run past the current tensor.
func (w *ShardedWriter) CopyRange(src *os.File, off, n int64) error {
	if err := w.check(); err != nil {
		return err
	}
	if err := w.cur.CopyRange(src, off, n); err != nil {
		return w.fail(err)
	}
	return w.advance()
}
