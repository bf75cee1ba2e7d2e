package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"unicode/utf8"

	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/internal/atomicfs"
)

// Descriptor announces one tensor to a [Writer] before its data is written.
type Descriptor struct {
	Name  string
	DType tensor.DType
	Shape []int
}

// Options tunes a [Writer].
type Options struct {
	// Metadata is written as the header's __metadata__ when not empty.
	Metadata map[string]string
	// Perm is the mode of a file made by Create, masked by the umask like
	// os.Create's (default 0o666).
	Perm os.FileMode
}

// Writer streams a safetensors file: the header is written first from the
// descriptors, then each tensor's data in descriptor order, in as many
// pieces as the caller likes. Byte counts are checked against dtype x shape.
//
// A Writer made by [Create] writes to a temporary file in the destination
// folder and renames it into place only when Close succeeds; on any failure,
// or on Abort, the temporary file is removed. After an error every further
// call fails and Close removes what was written.
type Writer struct {
	descs []Descriptor
	sizes []int64
	cur   int   // index of the tensor awaiting data
	done  int64 // bytes already written into descs[cur]

	bw      *bufio.Writer
	file    *os.File // nil for NewWriter
	tmpPath string
	path    string
	err     error // sticky
	closed  bool
	scratch []byte
}

// NewWriter writes the header for descs to w and returns a Writer for the
// tensor data. Close flushes but does not close w.
func NewWriter(w io.Writer, descs []Descriptor, opts *Options) (*Writer, error) {
	sw, header, err := newWriter(descs, opts)
	if err != nil {
		return nil, err
	}
	sw.bw = bufio.NewWriterSize(w, 1<<20)
	if _, err := sw.bw.Write(header); err != nil {
		return nil, fmt.Errorf("write header: %w", err)
	}
	return sw, nil
}

// Create starts writing a safetensors file at path (see [Writer] for the
// atomic-replace behaviour). The header is written immediately.
func Create(path string, descs []Descriptor, opts *Options) (*Writer, error) {
	sw, header, err := newWriter(descs, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sw.path = path
	perm := atomicfs.FilePerm
	if opts != nil && opts.Perm != 0 {
		perm = opts.Perm
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// The temporary file gets its final mode when created, so the kernel
	// applies the umask.
	f, err := atomicfs.CreateTempPerm(dir, "."+base+".*.tmp", perm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sw.file, sw.tmpPath = f, f.Name()
	sw.bw = bufio.NewWriterSize(f, 1<<20)
	if _, err := sw.bw.Write(header); err != nil {
		sw.fail(fmt.Errorf("write header: %w", err))
		return nil, errors.Join(sw.err, sw.discard())
	}
	return sw, nil
}

// newWriter validates descs and builds the padded header.
func newWriter(descs []Descriptor, opts *Options) (*Writer, []byte, error) {
	var meta map[string]string
	if opts != nil {
		meta = opts.Metadata
	}
	sw := &Writer{descs: make([]Descriptor, len(descs)), sizes: make([]int64, len(descs))}
	seen := map[string]bool{}
	var off int64
	for i, d := range descs {
		switch {
		case d.Name == "":
			return nil, nil, fmt.Errorf("tensor %d: empty name", i)
		case d.Name == MetadataKey:
			return nil, nil, fmt.Errorf("tensor %d: name %q is reserved", i, MetadataKey)
		case !utf8.ValidString(d.Name):
			return nil, nil, fmt.Errorf("tensor %d: name %q is not valid UTF-8", i, d.Name)
		case seen[d.Name]:
			return nil, nil, fmt.Errorf("tensor %q: duplicate name", d.Name)
		}
		seen[d.Name] = true
		if dt, err := tensor.ParseDType(string(d.DType)); err != nil || dt != d.DType {
			return nil, nil, fmt.Errorf("tensor %q: unknown dtype %q", d.Name, d.DType)
		}
		size, err := byteSize(d.DType, d.Shape)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", d.Name, err)
		}
		if off > math.MaxInt64-size {
			return nil, nil, fmt.Errorf("tensor %q: data section overflows", d.Name)
		}
		off += size
		sw.descs[i] = Descriptor{Name: d.Name, DType: d.DType, Shape: slices.Clone(d.Shape)}
		sw.sizes[i] = size
	}
	for k, v := range meta {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, nil, fmt.Errorf("metadata %q: not valid UTF-8", k)
		}
	}
	header := encodeHeader(sw.descs, sw.sizes, meta)
	if len(header)-8 > MaxHeaderSize {
		return nil, nil, fmt.Errorf("header of %d bytes exceeds the limit of %d", len(header)-8, MaxHeaderSize)
	}
	sw.skipEmpty()
	return sw, header, nil
}

// encodeHeader returns the length prefix and the JSON header, padded with
// spaces so the data section starts on an 8-byte boundary.
func encodeHeader(descs []Descriptor, sizes []int64, meta map[string]string) []byte {
	var b bytes.Buffer
	b.Write(make([]byte, 8))
	b.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			b.WriteByte(',')
		}
		first = false
	}
	if len(meta) > 0 {
		sep()
		writeJSONString(&b, MetadataKey)
		b.WriteString(":{")
		for i, k := range slices.Sorted(maps.Keys(meta)) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, meta[k])
		}
		b.WriteByte('}')
	}
	var off int64
	for i, d := range descs {
		sep()
		writeJSONString(&b, d.Name)
		b.WriteString(`:{"dtype":`)
		writeJSONString(&b, string(d.DType))
		b.WriteString(`,"shape":[`)
		for j, s := range d.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprint(&b, s)
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, off, off+sizes[i])
		off += sizes[i]
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	out := b.Bytes()
	binary.LittleEndian.PutUint64(out, uint64(len(out)-8))
	return out
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // cannot fail for a string
	b.Truncate(b.Len() - 1) // Encode appends a newline
}

// skipEmpty advances past tensors that are complete (including zero-sized).
func (w *Writer) skipEmpty() {
	for w.cur < len(w.descs) && w.done == w.sizes[w.cur] {
		w.cur++
		w.done = 0
	}
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

func (w *Writer) check() error {
	if w.closed {
		return errors.New("safetensors writer is closed")
	}
	return w.err
}

// Next returns the descriptor of the tensor awaiting data, and false once
// all tensors are complete.
func (w *Writer) Next() (Descriptor, bool) {
	if w.cur >= len(w.descs) {
		return Descriptor{}, false
	}
	return w.descs[w.cur], true
}

// Write writes raw tensor bytes. Data flows through the tensors in
// descriptor order and may cross tensor boundaries, so a whole data section
// can be copied with io.Copy. Writing more than the declared total fails.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.check(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		if w.cur >= len(w.descs) {
			return written, w.fail(fmt.Errorf("%d bytes written past the end of the last tensor", len(p)))
		}
		n := int(min(int64(len(p)), w.sizes[w.cur]-w.done))
		if err := w.emit(p[:n]); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
		w.done += int64(n)
		w.skipEmpty()
	}
	return written, nil
}

func (w *Writer) emit(p []byte) error {
	if _, err := w.bw.Write(p); err != nil {
		return w.fail(fmt.Errorf("tensor %q: %w", w.descs[w.cur].Name, err))
	}
	return nil
}

// WriteFloat32 encodes values as the current tensor's dtype (F32, F16 or
// BF16; F16 and BF16 round to nearest even) and writes them. The values must
// fit in what remains of the current tensor; a tensor may be filled by
// several calls.
func (w *Writer) WriteFloat32(values []float32) error {
	if err := w.check(); err != nil {
		return err
	}
	if len(values) == 0 {
		return nil
	}
	if w.cur >= len(w.descs) {
		return w.fail(fmt.Errorf("%d values written past the end of the last tensor", len(values)))
	}
	d := w.descs[w.cur]
	size := int64(d.DType.Size())
	switch d.DType {
	case tensor.F32, tensor.F16, tensor.BF16:
	default:
		return w.fail(fmt.Errorf("tensor %q: cannot encode float32 values as %s", d.Name, d.DType))
	}
	if w.done%size != 0 {
		return w.fail(fmt.Errorf("tensor %q: float32 values after %d raw bytes, not a whole number of %s elements", d.Name, w.done, d.DType))
	}
	if rest := (w.sizes[w.cur] - w.done) / size; int64(len(values)) > rest {
		return w.fail(fmt.Errorf("tensor %q: %d values written but only %d remain of %d", d.Name, len(values), rest, w.sizes[w.cur]/size))
	}
	const chunk = 16 << 10
	if w.scratch == nil {
		w.scratch = make([]byte, 4*chunk)
	}
	for len(values) > 0 {
		n := min(len(values), chunk)
		buf := w.scratch[:n*int(size)]
		encodeFloat32(buf, d.DType, values[:n])
		if err := w.emit(buf); err != nil {
			return err
		}
		w.done += int64(len(buf))
		values = values[n:]
	}
	w.skipEmpty()
	return nil
}

func encodeFloat32(dst []byte, d tensor.DType, src []float32) {
	le := binary.LittleEndian
	switch d {
	case tensor.F32:
		for i, v := range src {
			le.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case tensor.F16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], tensor.Float32ToHalf(v))
		}
	case tensor.BF16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], tensor.Float32ToBF16(v))
		}
	}
}

// WriteTensor writes all of t's data as the next tensor. t must match the
// current descriptor's name, dtype and shape, and none of that tensor's
// bytes may have been written yet.
func (w *Writer) WriteTensor(t tensor.Tensor) error {
	if err := w.check(); err != nil {
		return err
	}
	if w.cur >= len(w.descs) {
		// Zero-sized tensors are complete before they are "written".
		if w.matchesZeroSized(t) {
			return nil
		}
		return w.fail(fmt.Errorf("tensor %q written after the last tensor", t.Name))
	}
	d := w.descs[w.cur]
	if w.done == 0 && t.Name != d.Name && w.matchesZeroSized(t) {
		return nil
	}
	switch {
	case t.Name != d.Name:
		return w.fail(fmt.Errorf("tensor %q written where %q is expected", t.Name, d.Name))
	case t.DType != d.DType || !slices.Equal(t.Shape, d.Shape):
		return w.fail(fmt.Errorf("tensor %q: %s%v written where %s%v was declared", t.Name, t.DType, t.Shape, d.DType, d.Shape))
	case w.done != 0:
		return w.fail(fmt.Errorf("tensor %q: already partly written", t.Name))
	case int64(len(t.Data)) != w.sizes[w.cur]:
		return w.fail(fmt.Errorf("tensor %q: %d bytes of data, %s%v needs %d", t.Name, len(t.Data), d.DType, d.Shape, w.sizes[w.cur]))
	}
	_, err := w.Write(t.Data)
	return err
}

// matchesZeroSized reports whether t is a declared, zero-byte tensor that
// skipEmpty has already passed.
func (w *Writer) matchesZeroSized(t tensor.Tensor) bool {
	if len(t.Data) != 0 {
		return false
	}
	for i := range w.cur {
		d := w.descs[i]
		if d.Name == t.Name && w.sizes[i] == 0 && d.DType == t.DType && slices.Equal(d.Shape, t.Shape) {
			return true
		}
	}
	return false
}

// Abort discards the output: for Create, the temporary file is removed and
// nothing appears at the destination. Aborting a closed Writer is a no-op.
func (w *Writer) Abort() error {
	if w.closed {
		return nil
	}
	w.fail(errors.New("aborted"))
	return w.discard()
}

// discard closes and removes the temporary file.
func (w *Writer) discard() error {
	w.closed = true
	if w.file == nil {
		return nil
	}
	err := w.file.Close()
	if rerr := os.Remove(w.tmpPath); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("%s: discard: %w", w.path, err)
	}
	return nil
}

// Close checks that every tensor got all its bytes, flushes, and for Create
// syncs the file and renames it into place. If anything failed before or
// during Close, the temporary file is removed and the error returned.
func (w *Writer) Close() error {
	if w.closed {
		return errors.New("safetensors writer already closed")
	}
	if w.err == nil && w.cur < len(w.descs) {
		d := w.descs[w.cur]
		w.fail(fmt.Errorf("tensor %q: %d of %d bytes written", d.Name, w.done, w.sizes[w.cur]))
	}
	if w.err == nil {
		if err := w.bw.Flush(); err != nil {
			w.fail(fmt.Errorf("flush: %w", err))
		}
	}
	if w.file == nil {
		w.closed = true
		return w.err
	}
	if w.err == nil {
		if err := w.file.Sync(); err != nil {
			w.fail(err)
		}
	}
	if w.err != nil {
		return errors.Join(fmt.Errorf("%s: %w", w.path, w.err), w.discard())
	}
	w.closed = true
	if err := w.file.Close(); err != nil {
		_ = os.Remove(w.tmpPath)
		return fmt.Errorf("%s: %w", w.path, err)
	}
	if err := os.Rename(w.tmpPath, w.path); err != nil {
		_ = os.Remove(w.tmpPath)
		return err
	}
	return nil
}

// WriteFile writes tensors, in the given order, and metadata to a new
// safetensors file at path, atomically.
func WriteFile(path string, tensors []tensor.Tensor, metadata map[string]string) error {
	descs := make([]Descriptor, len(tensors))
	for i, t := range tensors {
		descs[i] = Descriptor{Name: t.Name, DType: t.DType, Shape: t.Shape}
	}
	w, err := Create(path, descs, &Options{Metadata: metadata})
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if err := w.WriteTensor(t); err != nil {
			return errors.Join(fmt.Errorf("%s: %w", path, err), w.Abort())
		}
	}
	return w.Close()
}

// ShardFileName returns the Hugging Face name of shard i (1-based) of n:
// basename-0000i-of-0000n.safetensors.
func ShardFileName(basename string, i, n int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.safetensors", basename, i, n)
}

// WriteSharded writes tensors into dir as Hugging Face does: when they fit
// in maxShardBytes (or maxShardBytes <= 0) as one basename.safetensors,
// otherwise as basename-0000i-of-0000N.safetensors shards filled greedily in
// order (a tensor larger than the limit gets a shard of its own) plus
// basename.safetensors.index.json with total_size and the weight map,
// written last. Each file is replaced atomically. Files of a previous save
// under the same basename that the new set does not use are then removed,
// so that a reader cannot pick up a stale single file or index.
func WriteSharded(dir, basename string, tensors []tensor.Tensor, metadata map[string]string, maxShardBytes int64) error {
	descs := make([]Descriptor, len(tensors))
	for i, t := range tensors {
		size, err := byteSize(t.DType, t.Shape)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if int64(len(t.Data)) != size {
			return fmt.Errorf("tensor %q: %d bytes of data, %s%v needs %d", t.Name, len(t.Data), t.DType, t.Shape, size)
		}
		descs[i] = Descriptor{Name: t.Name, DType: t.DType, Shape: t.Shape}
	}
	w, err := CreateSharded(dir, basename, descs, metadata, maxShardBytes)
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if len(t.Data) == 0 {
			continue
		}
		if _, err := w.Write(t.Data); err != nil {
			return errors.Join(err, w.Abort())
		}
	}
	return w.Close()
}

// removeStale deletes basename.safetensors, its index and its numbered
// shards in dir, except those in keep.
func removeStale(dir, basename string, keep map[string]bool) error {
	shardRE := regexp.MustCompile(`^` + regexp.QuoteMeta(basename) + `-\d{5,}-of-\d{5,}\.safetensors$`)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("remove stale shards: %w", err)
	}
	var errs []error
	for _, e := range entries {
		n := e.Name()
		if keep[n] || e.IsDir() {
			continue
		}
		if n == basename+".safetensors" || n == basename+".safetensors.index.json" || shardRE.MatchString(n) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// writeFileAtomic writes data to a temporary file next to path, syncs it and
// renames it into place.
func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := atomicfs.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return nil
}
