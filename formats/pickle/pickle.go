// Package pickle reads PyTorch checkpoints (torch.save files: .bin, .pt,
// .pth) without running any Python: a restricted pickle machine rebuilds
// only dicts, lists, scalars and tensors, and refuses every other global.
//
// Both the zip format written by torch.save since PyTorch 1.6 (an archive
// holding data.pkl and one data/<key> entry per storage) and the legacy
// pre-1.6 format (consecutive pickles followed by raw storages) are read.
// Tensors are materialised lazily, in logical row-major order whatever their
// strides, and checked to lie inside their storage. Nested dicts are
// flattened into dotted names; leaves that are not tensors are listed by
// [File.Skipped].
package pickle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// Sentinel errors, to be checked with errors.Is.
var (
	// ErrInvalid marks a file that is not a well-formed checkpoint.
	ErrInvalid = errors.New("invalid PyTorch checkpoint")
	// ErrForbidden marks a pickle that names a global outside the
	// allowlist (see [GlobalError]); nothing of it was executed.
	ErrForbidden = errors.New("forbidden pickle global")
	// ErrUnsupported marks a valid file using a feature this reader lacks.
	ErrUnsupported = errors.New("unsupported PyTorch checkpoint feature")
	// ErrNotFound marks a request for a tensor name that does not exist.
	ErrNotFound = errors.New("tensor not found")
)

// maxPickleSize bounds the object pickle (data.pkl, or the pickles at the
// front of a legacy file). State-dict pickles are kilobytes to a few
// megabytes; tensor data never lives in the pickle.
const maxPickleSize = 256 << 20

// File is an opened PyTorch checkpoint. Its tensor data stays in the file
// until [File.Tensor] reads it; a File is safe for concurrent reads.
type File struct {
	path      string
	closer    io.Closer
	names     []string
	tensors   map[string]*tensorObj
	skipped   []string
	bigEndian bool
	legacy    bool
}

// Open opens and validates the checkpoint at path. The file stays open
// until [File.Close].
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	f, err := read(fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.path, f.closer = path, fh
	return f, nil
}

// Read validates the checkpoint of the given size held by r. r must stay
// readable while the File is used; Close does not close it.
func Read(r io.ReaderAt, size int64) (*File, error) {
	return read(r, size)
}

func read(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, malformed("negative size")
	}
	head := make([]byte, min(size, 512))
	if n, err := r.ReadAt(head, 0); n < len(head) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	f := &File{}
	var root any
	var pklSize int
	var err error
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")) || bytes.HasPrefix(head, []byte("PK\x05\x06")):
		root, pklSize, f.bigEndian, err = readZip(r, size)
	case bytes.HasPrefix(head, legacyMagic):
		f.legacy = true
		root, pklSize, err = readLegacy(r, size)
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return nil, fmt.Errorf("%w: tar checkpoint of torch < 0.1.10", ErrUnsupported)
	case len(head) > 0 && head[0] == 0x80:
		return nil, malformed("a bare pickle, not a torch.save checkpoint")
	default:
		return nil, malformed("not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save file)")
	}
	if err != nil {
		return nil, err
	}
	entries, skipped, err := flatten(root, pklSize)
	if err != nil {
		return nil, err
	}
	f.tensors = make(map[string]*tensorObj, len(entries))
	for _, e := range entries {
		if _, err := e.t.plan(); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", e.name, err)
		}
		f.names = append(f.names, e.name)
		f.tensors[e.name] = e.t
	}
	f.skipped = skipped
	return f, nil
}

// Path returns the path the file was opened from ("" for Read).
func (f *File) Path() string { return f.path }

// Len returns the number of tensors.
func (f *File) Len() int { return len(f.names) }

// Names returns the tensor names in the order the checkpoint's dicts hold
// them (a state_dict's own order). Nested dict keys are joined with '.'.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Skipped returns the dotted names of the leaves that are not tensors
// (step counters, strings, None, ...), in checkpoint order.
func (f *File) Skipped() []string { return slices.Clone(f.skipped) }

// Legacy reports whether the file uses the pre-1.6 (non-zip) format.
func (f *File) Legacy() bool { return f.legacy }

// Tensor reads the named tensor into a new little-endian, row-major
// contiguous buffer.
func (f *File) Tensor(name string) (tensor.Tensor, error) {
	t, ok := f.tensors[name]
	if !ok {
		return tensor.Tensor{}, f.errorf("tensor %q: %w", name, ErrNotFound)
	}
	data, err := t.materialize(f.bigEndian)
	if err != nil {
		return tensor.Tensor{}, f.errorf("tensor %q: %w", name, err)
	}
	return tensor.Tensor{Name: name, DType: t.dtype, Shape: slices.Clone(t.shape), Data: data}, nil
}

// Close closes the file opened by [Open]; it is a no-op for [Read].
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	c := f.closer
	f.closer = nil
	return c.Close()
}

func (f *File) errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if f.path != "" {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	return err
}

// readZip reads a torch.save zip archive and returns its unpickled object
// with every storage resolved to its data/<key> entry.
func readZip(r io.ReaderAt, size int64) (root any, pklSize int, bigEndian bool, err error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, 0, false, fmt.Errorf("%w: zip: %w", ErrInvalid, err)
	}
	byName := make(map[string]*zip.File, len(zr.File))
	var prefix string
	for _, zf := range zr.File {
		if _, dup := byName[zf.Name]; dup {
			return nil, 0, false, malformed("zip entry %q appears twice", zf.Name)
		}
		byName[zf.Name] = zf
		dir, base := path.Split(zf.Name)
		if base == "data.pkl" && strings.Count(dir, "/") == 1 {
			if prefix != "" {
				return nil, 0, false, malformed("zip holds more than one data.pkl")
			}
			prefix = dir
		}
	}
	if prefix == "" {
		if _, ok := byName["constants.pkl"]; ok {
			return nil, 0, false, fmt.Errorf("%w: TorchScript archive", ErrUnsupported)
		}
		return nil, 0, false, malformed("zip has no <archive>/data.pkl entry")
	}
	if zf := byName[prefix+"byteorder"]; zf != nil {
		b, err := readEntry(zf, 16)
		if err != nil {
			return nil, 0, false, fmt.Errorf("%s: %w", zf.Name, err)
		}
		switch string(bytes.TrimSpace(b)) {
		case "little":
		case "big":
			bigEndian = true
		default:
			return nil, 0, false, malformed("%s: byte order %q", zf.Name, b)
		}
	}
	pklEntry := byName[prefix+"data.pkl"]
	pkl, err := readEntry(pklEntry, maxPickleSize)
	if err != nil {
		return nil, 0, false, fmt.Errorf("%s: %w", pklEntry.Name, err)
	}
	blobs := map[string]*blob{}
	load := func(pid any) (any, error) {
		st, err := storageFromPID(pid, false)
		if err != nil {
			return nil, err
		}
		b, ok := blobs[st.key]
		if !ok {
			name := prefix + "data/" + st.key
			zf := byName[name]
			if zf == nil {
				return nil, malformed("storage %q: zip entry %s is missing", st.key, name)
			}
			if b, err = entryBlob(r, size, zf); err != nil {
				return nil, fmt.Errorf("storage %q: %w", st.key, err)
			}
			blobs[st.key] = b
		}
		if st.nbytes > b.size {
			return nil, malformed("storage %q: %d bytes declared, entry holds %d", st.key, st.nbytes, b.size)
		}
		st.src = b
		return st, nil
	}
	root, _, err = unpickle(pkl, load)
	if err != nil {
		return nil, 0, false, fmt.Errorf("%s: %w", pklEntry.Name, err)
	}
	return root, len(pkl), bigEndian, nil
}

// readEntry reads a whole zip entry of at most limit bytes. The buffer grows
// with the data actually decompressed, not with the declared size.
func readEntry(zf *zip.File, limit int64) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(limit) {
		return nil, malformed("entry of %d bytes is larger than %d", zf.UncompressedSize64, limit)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, int64(zf.UncompressedSize64)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if uint64(len(b)) != zf.UncompressedSize64 {
		return nil, malformed("entry holds %d bytes, %d declared", len(b), zf.UncompressedSize64)
	}
	return b, nil
}

// entryBlob locates the bytes of a storage entry. Stored entries (what
// torch.save writes) are read in place; deflated ones are decompressed on
// demand.
func entryBlob(r io.ReaderAt, size int64, zf *zip.File) (*blob, error) {
	if zf.UncompressedSize64 > 1<<62 {
		return nil, malformed("entry %s declares %d bytes", zf.Name, zf.UncompressedSize64)
	}
	n := int64(zf.UncompressedSize64)
	switch zf.Method {
	case zip.Store:
		off, err := zf.DataOffset()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if zf.CompressedSize64 != zf.UncompressedSize64 || off < 0 || off > size || n > size-off {
			return nil, malformed("entry %s: %d bytes at %d do not fit the %d-byte archive", zf.Name, n, off, size)
		}
		return &blob{ra: r, base: off, size: n}, nil
	case zip.Deflate:
		return &blob{zf: zf, size: n}, nil
	}
	return nil, fmt.Errorf("%w: entry %s uses compression method %d", ErrUnsupported, zf.Name, zf.Method)
}

// The legacy format starts with the pickled magic number
// 0x1950a86a20f9469cfc6c (protocol 2, LONG1 of 10 bytes).
var (
	legacyMagic         = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e}
	legacyMagicValue, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)
)

// legacyProtocolVersion is the only legacy serialization version torch
// ever wrote.
const legacyProtocolVersion = 1001

// legacyPickles is what the pickles at the front of a legacy file hold.
type legacyPickles struct {
	root     any
	storages []*storage
	keys     []string
	dataOff  int64 // where the raw storages start
}

// readLegacy reads a pre-1.6 torch.save file: magic, protocol version and
// system info pickles, the object pickle, the pickled list of storage keys,
// then for each key an int64 element count and the raw little-endian data.
func readLegacy(r io.ReaderAt, size int64) (any, int, error) {
	chunk := min(size, 1<<20)
	var lp *legacyPickles
	for {
		buf := make([]byte, chunk)
		if n, err := r.ReadAt(buf, 0); n < len(buf) {
			return nil, 0, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		var err error
		lp, err = parseLegacy(buf)
		if err == nil {
			break
		}
		if !errors.Is(err, errTruncated) || chunk == size {
			return nil, 0, err
		}
		if chunk >= maxPickleSize {
			return nil, 0, malformed("legacy pickles larger than %d bytes", maxPickleSize)
		}
		chunk = min(size, chunk*4)
	}
	blobs := map[string]*blob{}
	esOf := map[string]int64{}
	for _, st := range lp.storages {
		root := st.key
		if st.root != "" {
			root = st.root
		}
		es := int64(st.dtype.Size())
		if old, ok := esOf[root]; ok && old != es {
			return nil, 0, malformed("storage %q is used with different element sizes", root)
		}
		esOf[root] = es
	}
	off := lp.dataOff
	var hdr [8]byte
	for _, key := range lp.keys {
		if _, dup := blobs[key]; dup {
			return nil, 0, malformed("storage key %q listed twice", key)
		}
		es, ok := esOf[key]
		if !ok {
			return nil, 0, malformed("storage %q is listed but never used", key)
		}
		if off > size-8 {
			return nil, 0, malformed("storage %q: file ends before its size", key)
		}
		if _, err := r.ReadAt(hdr[:], off); err != nil {
			return nil, 0, fmt.Errorf("storage %q: %w", key, err)
		}
		numel := int64(binary.LittleEndian.Uint64(hdr[:]))
		off += 8
		if numel < 0 || numel > (size-off)/es {
			return nil, 0, malformed("storage %q: %d elements do not fit in the file", key, numel)
		}
		blobs[key] = &blob{ra: r, base: off, size: numel * es}
		off += numel * es
	}
	for _, st := range lp.storages {
		root := st.key
		if st.root != "" {
			root = st.root
		}
		b, ok := blobs[root]
		if !ok {
			return nil, 0, malformed("storage %q has no data", root)
		}
		if st.viewOff > b.size || st.nbytes > b.size-st.viewOff {
			return nil, 0, malformed("storage %q: %d bytes declared at %d, data holds %d", st.key, st.nbytes, st.viewOff, b.size)
		}
		st.src, st.off = b, st.viewOff
	}
	return lp.root, int(lp.dataOff), nil
}

// parseLegacy decodes the pickles at the front of a legacy file held in buf
// (possibly only its beginning: then the error wraps errTruncated).
func parseLegacy(buf []byte) (*legacyPickles, error) {
	pos := 0
	next := func(what string, load func(any) (any, error)) (any, error) {
		v, n, err := unpickle(buf[pos:], load)
		if err != nil {
			return nil, fmt.Errorf("legacy %s pickle: %w", what, err)
		}
		pos += n
		return v, nil
	}
	v, err := next("magic", nil)
	if err != nil {
		return nil, err
	}
	if b, ok := v.(*big.Int); !ok || b.Cmp(legacyMagicValue) != 0 {
		return nil, malformed("legacy magic number mismatch")
	}
	if v, err = next("protocol version", nil); err != nil {
		return nil, err
	}
	if v != int64(legacyProtocolVersion) {
		return nil, fmt.Errorf("%w: legacy serialization protocol %v", ErrUnsupported, v)
	}
	if v, err = next("system info", nil); err != nil {
		return nil, err
	}
	if info, ok := v.(*dict); ok {
		if le, ok := info.get("little_endian"); ok && le == false {
			return nil, fmt.Errorf("%w: big-endian legacy checkpoint", ErrUnsupported)
		}
	} else {
		return nil, malformed("legacy system info is %s", typeName(v))
	}
	lp := &legacyPickles{}
	load := func(pid any) (any, error) {
		st, err := storageFromPID(pid, true)
		if err != nil {
			return nil, err
		}
		lp.storages = append(lp.storages, st)
		return st, nil
	}
	if lp.root, err = next("object", load); err != nil {
		return nil, err
	}
	if v, err = next("storage keys", nil); err != nil {
		return nil, err
	}
	l, ok := v.(*list)
	if !ok {
		return nil, malformed("legacy storage keys are %s, not a list", typeName(v))
	}
	for _, k := range l.items {
		s, err := storageKey(k)
		if err != nil {
			return nil, err
		}
		lp.keys = append(lp.keys, s)
	}
	lp.dataOff = int64(pos)
	return lp, nil
}
