package safetensors

// Evict tells the operating system that the named tensor's bytes will not
// be read again soon: for a memory-mapped file its pages leave the
// process's resident set (they stay in the page cache, and reading the
// tensor again maps them back). Streaming readers call it after each
// tensor so that a pass over a large checkpoint holds one tensor at a
// time. It is a no-op for a File made by Parse and on platforms without
// the advice.
func (f *File) Evict(name string) {
	if f.closed || f.release == nil {
		return
	}
	ti, err := f.Info(name)
	if err != nil || ti.Size() == 0 {
		return
	}
	evictRange(f.buf, f.dataStart+ti.Begin, f.dataStart+ti.End)
}

// Evict is File.Evict on the shard holding the named tensor.
func (m *Model) Evict(name string) {
	if f, err := m.file(name); err == nil {
		f.Evict(name)
	}
}
