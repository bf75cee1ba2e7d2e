package pickle

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"math"
	"math/bits"
)

// maxExpansion bounds how much larger than the storage bytes it reads a
// materialised tensor may be. Only overlapping views (stride 0, as made by
// expand) exceed 1; without a bound a few pickle bytes could ask for
// terabytes.
const maxExpansion = 1024

// minExpansionBudget is the size any tensor may reach regardless of
// maxExpansion, so that small broadcast tensors still load.
const minExpansionBudget = 1 << 20

// blob is a byte range of the checkpoint that holds one or more storages: a
// zip entry or a legacy storage record.
type blob struct {
	ra   io.ReaderAt
	base int64 // offset of the first byte in ra (stored entries, legacy)
	size int64
	zf   *zip.File // set for compressed zip entries, read sequentially
}

// read returns n bytes starting at off. Compressed entries are decompressed
// into a buffer that grows only as data actually arrives.
func (b *blob) read(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > b.size || n > b.size-off {
		return nil, malformed("read of %d bytes at %d past the %d-byte storage", n, off, b.size)
	}
	if b.zf == nil {
		buf := make([]byte, n)
		if _, err := b.ra.ReadAt(buf, b.base+off); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return buf, nil
	}
	rc, err := b.zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, off); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, rc, n); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return buf.Bytes(), nil
}

// layout is a validated tensor: element count, byte size and the byte range
// of its storage that it touches.
type layout struct {
	numel      int64
	bytes      int64 // of the materialised, contiguous tensor
	lo, hi     int64 // byte range within the storage
	contiguous bool
}

// mul and add return ok=false on int64 overflow; all inputs are >= 0.
func mul(a, b int64) (int64, bool) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	return int64(lo), true
}

func add(a, b int64) (int64, bool) {
	s := a + b
	if s < a {
		return 0, false
	}
	return s, true
}

// plan validates t against its storage: the shape must be representable, the
// dtype known, and every element the strides reach must lie inside the
// storage.
func (t *tensorObj) plan() (layout, error) {
	es := int64(t.dtype.Size())
	if es == 0 {
		return layout{}, fmt.Errorf("%w: dtype %q", ErrUnsupported, t.dtype)
	}
	var l layout
	l.numel = 1
	last := int64(0) // offset of the last element, relative to t.offset
	ok := true
	for i, d := range t.shape {
		if l.numel, ok = mul(l.numel, int64(d)); !ok {
			return layout{}, malformed("shape %v overflows", t.shape)
		}
		if d > 0 {
			step, ok1 := mul(int64(d-1), t.stride[i])
			if last, ok = add(last, step); !ok1 || !ok {
				return layout{}, malformed("strides %v overflow", t.stride)
			}
		}
	}
	if l.bytes, ok = mul(l.numel, es); !ok || l.bytes > math.MaxInt-1 {
		return layout{}, malformed("shape %v is too large", t.shape)
	}
	l.contiguous = true
	want := int64(1)
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] != 1 && t.stride[i] != want {
			l.contiguous = false
			break
		}
		want *= int64(t.shape[i])
	}
	if l.numel == 0 {
		return l, nil
	}
	end, ok1 := add(t.offset, last)
	end, ok2 := add(end, 1)
	lo, ok3 := mul(t.offset, es)
	hi, ok4 := mul(end, es)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return layout{}, malformed("storage offset %d with strides %v overflows", t.offset, t.stride)
	}
	if hi > t.st.nbytes {
		return layout{}, malformed("elements up to byte %d of storage %q, which has only %d bytes", hi, t.st.key, t.st.nbytes)
	}
	l.lo, l.hi = lo, hi
	if !l.contiguous {
		budget := int64(math.MaxInt64)
		if hi-lo <= math.MaxInt64/maxExpansion {
			budget = max(minExpansionBudget, (hi-lo)*maxExpansion)
		}
		if l.bytes > budget {
			return layout{}, malformed("view of %d storage bytes would expand to %d bytes", hi-lo, l.bytes)
		}
	}
	return l, nil
}

// materialize reads the tensor's elements in logical row-major order.
// bigEndian data is converted to little-endian.
func (t *tensorObj) materialize(bigEndian bool) ([]byte, error) {
	l, err := t.plan()
	if err != nil {
		return nil, err
	}
	if l.numel == 0 {
		return []byte{}, nil
	}
	if t.st.src == nil {
		return nil, malformed("storage %q has no data", t.st.key)
	}
	es := t.dtype.Size()
	var out []byte
	if l.contiguous {
		out, err = t.st.src.read(t.st.off+l.lo, l.bytes)
		if err != nil {
			return nil, fmt.Errorf("storage %q: %w", t.st.key, err)
		}
	} else {
		src, err := t.st.src.read(t.st.off+l.lo, l.hi-l.lo)
		if err != nil {
			return nil, fmt.Errorf("storage %q: %w", t.st.key, err)
		}
		out = gather(src, es, t.shape, t.stride, l.bytes)
	}
	if bigEndian && es > 1 {
		swapBytes(out, es)
	}
	return out, nil
}

// gather copies the strided elements of src (element 0 at src[0]) into a
// new row-major buffer of size bytes. plan has checked every index.
func gather(src []byte, es int, shape []int, stride []int64, size int64) []byte {
	out := make([]byte, size)
	rank := len(shape)
	idx := make([]int, rank)
	inner, istride := shape[rank-1], int(stride[rank-1])*es
	o, w := 0, 0 // byte offset in src of the current row, write position
	for {
		p := o
		for range inner {
			copy(out[w:w+es], src[p:p+es])
			p += istride
			w += es
		}
		d := rank - 2
		for ; d >= 0; d-- {
			idx[d]++
			o += int(stride[d]) * es
			if idx[d] < shape[d] {
				break
			}
			o -= int(stride[d]) * es * shape[d]
			idx[d] = 0
		}
		if d < 0 {
			return out
		}
	}
}

// swapBytes reverses the bytes of every es-byte element of b in place.
func swapBytes(b []byte, es int) {
	for i := 0; i+es <= len(b); i += es {
		for j, k := i, i+es-1; j < k; j, k = j+1, k-1 {
			b[j], b[k] = b[k], b[j]
		}
	}
}
