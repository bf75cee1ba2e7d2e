// Package safetensors reads and writes checkpoints in the safetensors format:
// an 8-byte little-endian header length, a JSON header describing every
// tensor (dtype, shape, byte offsets into the data section) and optional
// string metadata, then the raw little-endian tensor bytes.
//
// Files are memory-mapped and validated completely before use, so tensor data
// is served without copying; decoding to float32 reads the file instead and
// converts F16 and BF16 with AVX2 where the CPU has it. Sharded Hugging Face
// checkpoints (model.safetensors.index.json) are opened as one [Model]. The
// [Writer] streams tensors to disk and publishes each file atomically.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// MaxHeaderSize is the largest JSON header accepted, in bytes. It matches the
// limit of the reference implementation and keeps a hostile length field from
// making the reader allocate or scan gigabytes.
const MaxHeaderSize = 100 << 20

// MetadataKey is the reserved header entry that holds the string-to-string
// metadata instead of a tensor.
const MetadataKey = "__metadata__"

// Sentinel errors, to be checked with errors.Is.
var (
	// ErrInvalid marks a file or index that violates the format.
	ErrInvalid = errors.New("invalid safetensors data")
	// ErrNotFound marks a request for a tensor name that does not exist.
	ErrNotFound = errors.New("tensor not found")
	// ErrClosed marks a use of a File or Model after Close.
	ErrClosed = errors.New("safetensors file is closed")
)

// Reader is the method set shared by a single [File] and a sharded [Model],
// so callers can load tensors without caring how the checkpoint is split.
type Reader interface {
	// Names lists the tensors in file order.
	Names() []string
	// Len is the number of tensors.
	Len() int
	// Metadata returns the string metadata of the header.
	Metadata() map[string]string
	// Info describes a tensor without touching its data.
	Info(name string) (TensorInfo, error)
	// Tensor returns a tensor whose Data aliases the mapped file.
	Tensor(name string) (tensor.Tensor, error)
	// Float32 decodes a tensor into a new float32 slice.
	Float32(name string) ([]float32, error)
	// Float32Into decodes a tensor into dst, which must have exactly
	// the tensor's number of elements.
	Float32Into(name string, dst []float32) error
	// Close releases the mapping(s); tensors obtained earlier become invalid.
	Close() error
}

// Compile-time guards.
var (
	_ Reader = (*File)(nil)
	_ Reader = (*Model)(nil)
)

// TensorInfo describes one tensor entry of a header. Begin and End are byte
// offsets relative to the start of the data section.
type TensorInfo struct {
	Name  string
	DType tensor.DType
	Shape []int
	Begin int64
	End   int64
}

// NumElements returns the number of elements of the tensor.
func (ti TensorInfo) NumElements() int { return tensor.NumElements(ti.Shape) }

// Size returns the number of bytes of the tensor's data.
func (ti TensorInfo) Size() int64 { return ti.End - ti.Begin }

// File is a validated safetensors file, usually memory-mapped by [Open] or
// wrapping a caller's buffer via [Parse]. Its methods are safe for
// concurrent use, except Close, which must not race with the others.
type File struct {
	path      string
	buf       []byte // the whole file
	dataStart int64  // offset of the data section in buf
	infos     []TensorInfo
	index     map[string]int
	metadata  map[string]string
	release   func() error // unmaps the file; nil for Parse
	fh        *os.File     // the open file, which decoding reads; nil for Parse
	closed    bool
}

// Parse validates an in-memory safetensors file and returns a File whose
// tensors alias data. The caller must not modify data while the File is in
// use. Close on such a File only marks it closed.
func Parse(data []byte) (*File, error) {
	f, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return f, nil
}

func parse(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("file is %d bytes, shorter than the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("header length %d runs past the end of the file (%d bytes after the length field)", n, len(data)-8)
	}
	header := data[8 : 8+n]
	infos, meta, err := parseHeader(header)
	if err != nil {
		return nil, err
	}
	dataStart := int64(8 + n)
	dataLen := int64(len(data)) - dataStart
	if err := checkLayout(infos, dataLen); err != nil {
		return nil, err
	}
	f := &File{
		buf:       data,
		dataStart: dataStart,
		infos:     infos,
		index:     make(map[string]int, len(infos)),
		metadata:  meta,
	}
	for i, ti := range infos {
		f.index[ti.Name] = i
	}
	return f, nil
}

// parseHeader decodes the JSON header token by token, so that duplicate keys
// (which encoding/json would silently collapse) and non-string metadata are
// caught.
func parseHeader(header []byte) ([]TensorInfo, map[string]string, error) {
	if len(header) == 0 || header[0] != '{' {
		return nil, nil, errors.New("header does not start with '{'")
	}
	if !utf8.Valid(header) {
		return nil, nil, errors.New("header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, nil, fmt.Errorf("header is not a JSON object: %w", err)
	}
	var (
		infos []TensorInfo
		meta  map[string]string
		seen  = map[string]bool{}
	)
	for dec.More() {
		name, err := stringToken(dec)
		if err != nil {
			return nil, nil, fmt.Errorf("header is not valid JSON: %w", err)
		}
		if seen[name] {
			if name == MetadataKey {
				return nil, nil, fmt.Errorf("duplicate %s entry in header", MetadataKey)
			}
			return nil, nil, fmt.Errorf("duplicate tensor name %q in header", name)
		}
		seen[name] = true
		if name == MetadataKey {
			meta, err = parseMetadata(dec)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", MetadataKey, err)
			}
			continue
		}
		ti, err := parseEntry(dec)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		ti.Name = name
		infos = append(infos, ti)
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, nil, fmt.Errorf("header is not valid JSON: %w", err)
	}
	// Only whitespace (the writer's padding) may follow the object.
	rest := header[dec.InputOffset():]
	if len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return nil, nil, errors.New("header has trailing data after the JSON object")
	}
	if meta == nil {
		meta = map[string]string{}
	}
	return infos, meta, nil
}

// parseMetadata decodes the __metadata__ object; null counts as absent, as
// in the reference implementation.
func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return map[string]string{}, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("must be an object of strings, found %s", describeToken(tok))
	}
	meta := map[string]string{}
	for dec.More() {
		k, err := stringToken(dec)
		if err != nil {
			return nil, err
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		v, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("key %q: value %s is not a string", k, describeToken(tok))
		}
		if _, dup := meta[k]; dup {
			return nil, fmt.Errorf("duplicate key %q", k)
		}
		meta[k] = v
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	return meta, nil
}

// parseEntry decodes {"dtype":..., "shape":[...], "data_offsets":[b,e]}.
// Unknown keys are skipped, as the reference implementation does.
func parseEntry(dec *json.Decoder) (TensorInfo, error) {
	var ti TensorInfo
	if err := expectDelim(dec, '{'); err != nil {
		return ti, fmt.Errorf("entry must be an object: %w", err)
	}
	var hasDType, hasShape, hasOffsets bool
	for dec.More() {
		k, err := stringToken(dec)
		if err != nil {
			return ti, err
		}
		switch k {
		case "dtype":
			if hasDType {
				return ti, errors.New("duplicate key \"dtype\"")
			}
			hasDType = true
			tok, err := dec.Token()
			if err != nil {
				return ti, fmt.Errorf("dtype: %w", err)
			}
			s, ok := tok.(string)
			if !ok {
				return ti, fmt.Errorf("dtype: %s is not a string", describeToken(tok))
			}
			d, err := tensor.ParseDType(s)
			if err != nil || d != tensor.DType(s) {
				return ti, fmt.Errorf("unknown dtype %q", s)
			}
			ti.DType = d
		case "shape":
			if hasShape {
				return ti, errors.New("duplicate key \"shape\"")
			}
			hasShape = true
			dims, err := uintArray(dec, "shape")
			if err != nil {
				return ti, err
			}
			ti.Shape = make([]int, len(dims))
			for i, d := range dims {
				if d > math.MaxInt64 || int64(d) > int64(math.MaxInt) {
					return ti, fmt.Errorf("shape dimension %d too large", d)
				}
				ti.Shape[i] = int(d)
			}
		case "data_offsets":
			if hasOffsets {
				return ti, errors.New("duplicate key \"data_offsets\"")
			}
			hasOffsets = true
			offs, err := uintArray(dec, "data_offsets")
			if err != nil {
				return ti, err
			}
			if len(offs) != 2 {
				return ti, fmt.Errorf("data_offsets must have 2 elements, has %d", len(offs))
			}
			if offs[0] > math.MaxInt64 || offs[1] > math.MaxInt64 {
				return ti, fmt.Errorf("data_offsets %v out of range", offs)
			}
			ti.Begin, ti.End = int64(offs[0]), int64(offs[1])
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return ti, fmt.Errorf("key %q: %w", k, err)
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return ti, err
	}
	switch {
	case !hasDType:
		return ti, errors.New("missing dtype")
	case !hasShape:
		return ti, errors.New("missing shape")
	case !hasOffsets:
		return ti, errors.New("missing data_offsets")
	}
	if ti.Begin > ti.End {
		return ti, fmt.Errorf("data_offsets [%d,%d]: begin after end", ti.Begin, ti.End)
	}
	want, err := byteSize(ti.DType, ti.Shape)
	if err != nil {
		return ti, err
	}
	if got := ti.End - ti.Begin; got != want {
		return ti, fmt.Errorf("data_offsets [%d,%d] span %d bytes, but %s%v needs %d", ti.Begin, ti.End, got, ti.DType, ti.Shape, want)
	}
	return ti, nil
}

// checkLayout verifies that the tensors, in offset order, tile the data
// section exactly: no gap, no overlap, nothing out of range. It sorts infos
// into file order.
func checkLayout(infos []TensorInfo, dataLen int64) error {
	for _, ti := range infos {
		if ti.End > dataLen {
			return fmt.Errorf("tensor %q: data_offsets [%d,%d] out of range of the %d-byte data section", ti.Name, ti.Begin, ti.End, dataLen)
		}
	}
	slices.SortStableFunc(infos, func(a, b TensorInfo) int {
		if a.Begin != b.Begin {
			return cmpInt64(a.Begin, b.Begin)
		}
		return cmpInt64(a.End, b.End)
	})
	var pos int64
	prev := ""
	for _, ti := range infos {
		switch {
		case ti.Begin < pos:
			return fmt.Errorf("tensor %q: data_offsets [%d,%d] overlap tensor %q ending at %d", ti.Name, ti.Begin, ti.End, prev, pos)
		case ti.Begin > pos:
			if prev == "" {
				return fmt.Errorf("tensor %q: data_offsets [%d,%d] leave a gap of %d bytes at the start of the data section", ti.Name, ti.Begin, ti.End, ti.Begin-pos)
			}
			return fmt.Errorf("tensor %q: data_offsets [%d,%d] leave a gap of %d bytes after tensor %q", ti.Name, ti.Begin, ti.End, ti.Begin-pos, prev)
		}
		pos = ti.End
		prev = ti.Name
	}
	if pos != dataLen {
		return fmt.Errorf("tensors cover %d bytes but the data section has %d", pos, dataLen)
	}
	return nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// dtypeBits is the width of one element in bits.
func dtypeBits(d tensor.DType) int64 {
	switch d {
	case tensor.F4:
		return 4
	case tensor.F6E2M3, tensor.F6E3M2:
		return 6
	}
	return int64(d.Size()) * 8
}

// byteSize returns the number of bytes of a dtype x shape tensor, rejecting
// overflow and sub-byte types whose bits do not fill whole bytes.
func byteSize(d tensor.DType, shape []int) (int64, error) {
	bits := dtypeBits(d)
	if bits == 0 {
		return 0, fmt.Errorf("unknown dtype %q", d)
	}
	total := bits
	for _, s := range shape {
		if s < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if s != 0 && total > math.MaxInt64/int64(s) {
			return 0, fmt.Errorf("shape %v of %s overflows", shape, d)
		}
		total *= int64(s)
	}
	if total%8 != 0 {
		return 0, fmt.Errorf("shape %v of %s is %d bits, not a whole number of bytes", shape, d, total)
	}
	return total / 8, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q, found %s", string(want), describeToken(tok))
	}
	return nil
}

func stringToken(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("expected a key, found %s", describeToken(tok))
	}
	return s, nil
}

// uintArray reads a JSON array of non-negative integers.
func uintArray(dec *json.Decoder, what string) ([]uint64, error) {
	if err := expectDelim(dec, '['); err != nil {
		return nil, fmt.Errorf("%s must be an array: %w", what, err)
	}
	var out []uint64
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not an integer", what, describeToken(tok))
		}
		s := num.String()
		if strings.HasPrefix(s, "-") {
			if _, err := strconv.ParseInt(s, 10, 64); err == nil {
				return nil, fmt.Errorf("%s: negative value %s", what, s)
			}
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s is not a non-negative 64-bit integer", what, s)
		}
		out = append(out, v)
	}
	if err := expectDelim(dec, ']'); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		return fmt.Sprintf("%q", string(v))
	case string:
		return fmt.Sprintf("string %q", v)
	case json.Number:
		return "number " + v.String()
	case bool:
		return fmt.Sprintf("boolean %v", v)
	}
	return fmt.Sprintf("%v", tok)
}

// Path returns the path the file was opened from ("" for Parse).
func (f *File) Path() string { return f.path }

// Len returns the number of tensors.
func (f *File) Len() int { return len(f.infos) }

// Names returns the tensor names in file order (ascending offsets).
func (f *File) Names() []string {
	names := make([]string, len(f.infos))
	for i, ti := range f.infos {
		names[i] = ti.Name
	}
	return names
}

// Metadata returns a copy of the header's __metadata__ (empty if absent).
func (f *File) Metadata() map[string]string {
	m := make(map[string]string, len(f.metadata))
	for k, v := range f.metadata {
		m[k] = v
	}
	return m
}

// Infos returns the descriptions of all tensors in file order.
func (f *File) Infos() []TensorInfo {
	out := make([]TensorInfo, len(f.infos))
	for i, ti := range f.infos {
		ti.Shape = slices.Clone(ti.Shape)
		out[i] = ti
	}
	return out
}

// Info describes the named tensor.
func (f *File) Info(name string) (TensorInfo, error) {
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, f.errorf("tensor %q: %w", name, ErrNotFound)
	}
	ti := f.infos[i]
	ti.Shape = slices.Clone(ti.Shape)
	return ti, nil
}

// Tensor returns the named tensor. Its Data aliases the file's memory
// (read-only when mapped) and is valid until Close.
func (f *File) Tensor(name string) (tensor.Tensor, error) {
	if f.closed {
		return tensor.Tensor{}, f.errorf("tensor %q: %w", name, ErrClosed)
	}
	ti, err := f.Info(name)
	if err != nil {
		return tensor.Tensor{}, err
	}
	lo, hi := f.dataStart+ti.Begin, f.dataStart+ti.End
	return tensor.Tensor{
		Name:  ti.Name,
		DType: ti.DType,
		Shape: ti.Shape,
		Data:  f.buf[lo:hi:hi],
	}, nil
}

// Float32 decodes the named tensor into a new float32 slice. F32, F16, BF16,
// F64 and the integer and BOOL dtypes are supported; F8 and sub-byte types
// are readable only as raw bytes through Tensor.
func (f *File) Float32(name string) ([]float32, error) {
	ti, src, err := f.encoded(name)
	if err != nil {
		return nil, err
	}
	out := make([]float32, ti.NumElements())
	if err := decodeFloat32(out, ti.DType, src); err != nil {
		return nil, f.errorf("tensor %q: %w", name, err)
	}
	return out, nil
}

// Float32Into decodes the named tensor into dst, whose length must equal the
// tensor's number of elements. It lets loaders reuse buffers, or decode
// straight into the memory where the values are wanted. dst is left
// untouched when the tensor cannot be decoded (unknown name, wrong length,
// unsupported dtype); a read error part way leaves it partly written.
func (f *File) Float32Into(name string, dst []float32) error {
	ti, src, err := f.encoded(name)
	if err != nil {
		return err
	}
	if n := ti.NumElements(); n != len(dst) {
		return f.errorf("tensor %q: destination has %d elements, tensor has %d", name, len(dst), n)
	}
	if err := decodeFloat32(dst, ti.DType, src); err != nil {
		return f.errorf("tensor %q: %w", name, err)
	}
	return nil
}

// encoded describes the named tensor and where decoding finds its bytes,
// checking that its dtype can be decoded to float32.
func (f *File) encoded(name string) (TensorInfo, encoded, error) {
	if f.closed {
		return TensorInfo{}, encoded{}, f.errorf("tensor %q: %w", name, ErrClosed)
	}
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, encoded{}, f.errorf("tensor %q: %w", name, ErrNotFound)
	}
	ti := f.infos[i]
	if err := checkFloat32(ti.DType); err != nil {
		return TensorInfo{}, encoded{}, f.errorf("tensor %q: %w", name, err)
	}
	lo, hi := f.dataStart+ti.Begin, f.dataStart+ti.End
	e := inMemory(f.buf[lo:hi:hi])
	if f.fh != nil {
		e.file, e.off = f.fh, lo
	}
	return ti, e, nil
}

// Close releases the memory mapping and the file. Tensors obtained from f
// must not be used afterwards. Closing twice is a no-op.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	f.buf = nil
	var errs []error
	if f.release != nil {
		rel := f.release
		f.release = nil
		if err := rel(); err != nil {
			errs = append(errs, err)
		}
	}
	if f.fh != nil {
		if err := f.fh.Close(); err != nil {
			errs = append(errs, err)
		}
		f.fh = nil
	}
	if err := errors.Join(errs...); err != nil {
		return f.errorf("close: %w", err)
	}
	return nil
}

// errorf formats an error prefixed with the file's path, if any.
func (f *File) errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if f.path != "" {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	return err
}
