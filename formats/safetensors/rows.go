package safetensors

// RowsInto decodes rows ids of the named 2-D tensor (an embedding table,
// [rows, cols]) into dst, one after another: dst must hold len(ids)*cols
// float32 values. Each row is read with pread on its own, so a lookup of a
// few hundred tokens touches a few hundred rows of the file and nothing
// else. The dtype must be one Float32Into converts. With no ids it only
// checks that the tensor can be read by rows.
func (f *File) RowsInto(name string, ids []int, dst []float32) error {
	ti, err := f.openInfo(name)
	if err != nil {
		return err
	}
	if len(ti.Shape) != 2 {
		return f.errorf("tensor %q: shape %v: rows are read from 2-D tensors only", name, ti.Shape)
	}
	if err := checkFloat32(ti.DType); err != nil {
		return f.errorf("tensor %q: %w", name, err)
	}
	rows, cols := ti.Shape[0], ti.Shape[1]
	if len(dst) != len(ids)*cols {
		return f.errorf("tensor %q: destination has %d values, %d rows of %d need %d", name, len(dst), len(ids), cols, len(ids)*cols)
	}
	rowBytes := int64(cols * ti.DType.Size())
	var buf []byte
	if f.fh != nil && len(ids) > 0 {
		buf = make([]byte, rowBytes)
	}
	for k, id := range ids {
		if id < 0 || id >= rows {
			return f.errorf("tensor %q: row %d out of range [0, %d)", name, id, rows)
		}
		lo := f.dataStart + ti.Begin + int64(id)*rowBytes
		src := buf
		if f.fh == nil {
			src = f.buf[lo : lo+rowBytes]
		} else if err := readAt(f.fh, buf, lo); err != nil {
			return f.errorf("tensor %q: row %d: %w", name, id, err)
		}
		if err := decodeChunk(dst[k*cols:(k+1)*cols], ti.DType, src, false); err != nil {
			return f.errorf("tensor %q: %w", name, err)
		}
	}
	return nil
}

// RowsInto is File.RowsInto on the shard holding the named tensor.
func (m *Model) RowsInto(name string, ids []int, dst []float32) error {
	f, err := m.file(name)
	if err != nil {
		return err
	}
	return f.RowsInto(name, ids, dst)
}
