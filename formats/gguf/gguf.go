// Package gguf reads GGUF files, the single-file checkpoint format of ggml
// and llama.cpp: typed metadata, tensor infos and tensor data.
//
// Open memory-maps a file and Parse reads an in-memory buffer; either way the
// whole structure is validated up front (counts and lengths bounded by the
// bytes that remain, every tensor's byte range inside the file, no duplicate
// names), so a malformed or hostile file yields an error, never a panic or a
// huge allocation. Tensor data is not copied: tensors returned by File.Tensor
// alias the mapping and stay valid until Close.
//
// Tensors of the common ggml types are decoded to float32 exactly as ggml's
// reference dequantize_row_* functions decode them: F32, F16, BF16, Q4_0,
// Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS
// (see Dequantize, which works on any block range, and File.Float32Rows).
// Quantize encodes the same types as ggml's quantize_row_*_ref. Other
// types ggml knows are sized and validated, so such files open and list
// their tensors, but reading those tensors is an error naming the type.
//
// GGUF versions 2 and 3 are supported, little-endian only. The model
// helpers (ModelConfig, ModelTensors, WeightInto, Tokenizer) translate a
// llama.cpp model of any architecture Architectures lists into Hugging Face
// names, layouts and conventions, and WriteModel writes one as llama.cpp's
// converter would.
package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"sort"

	"golang.org/x/sys/unix"
)

// Magic is the four bytes every GGUF file starts with.
const Magic = "GGUF"

// DefaultAlignment is the alignment of the tensor data section and of every
// tensor's offset when the file sets no general.alignment.
const DefaultAlignment = 32

// MaxDims is the largest number of dimensions a tensor may have (ggml's
// GGML_MAX_DIMS).
const MaxDims = 4

// maxNesting bounds how deeply metadata arrays may nest.
const maxNesting = 16

// Errors reported while reading a file, for use with errors.Is.
var (
	// ErrMalformed means the bytes are not a well-formed GGUF file.
	ErrMalformed = errors.New("malformed GGUF")
	// ErrUnsupportedVersion means the file is GGUF, but a version or byte
	// order this package does not read.
	ErrUnsupportedVersion = errors.New("unsupported GGUF version")
	// ErrNotFound means no tensor has the requested name.
	ErrNotFound = errors.New("tensor not found")
	// ErrUnsupportedType means a tensor's ggml type cannot be decoded
	// (see DequantizableTypes) or has no plain dtype.
	ErrUnsupportedType = errors.New("unsupported ggml type")
	// ErrClosed means the File was closed.
	ErrClosed = errors.New("file closed")
)

// TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	// Name is the tensor's name, such as "blk.0.attn_q.weight".
	Name string
	// Dims are the dimensions as stored in the file: innermost
	// (fastest-varying) first, so a 512 x 64 matrix reads [64, 512].
	Dims []uint64
	// Type is the ggml element type.
	Type GGMLType
	// Offset is the byte offset of the data from the start of the data
	// section.
	Offset uint64
	// Size is the byte length of the data.
	Size uint64
}

// Shape returns the dimensions in row-major order (outermost first), the
// reverse of Dims: a GGUF [64, 512] is Shape [512, 64].
func (ti *TensorInfo) Shape() []int {
	s := make([]int, len(ti.Dims))
	for i, d := range ti.Dims {
		s[len(ti.Dims)-1-i] = int(d)
	}
	return s
}

// NumElements returns the number of elements of the tensor.
func (ti *TensorInfo) NumElements() uint64 {
	n := uint64(1)
	for _, d := range ti.Dims {
		n *= d // bounded by validation at parse time
	}
	return n
}

// File is a parsed GGUF file. Its methods are safe for concurrent use, except
// Close.
type File struct {
	name       string
	data       []byte
	mapped     bool
	closed     bool
	version    uint32
	alignment  uint64
	dataOffset uint64
	kv         map[string]Value
	keys       []string
	tensors    []TensorInfo
	byName     map[string]int
}

// Open memory-maps and parses the GGUF file at path. Call Close when done;
// tensor data aliases the mapping.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	size := st.Size()
	if size == 0 {
		return nil, fmt.Errorf("%s: %w: empty file", path, ErrMalformed)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("%s: file of %d bytes is too large to map", path, size)
	}
	data, err := unix.Mmap(int(fd.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	f, err := parse(path, data)
	if err != nil {
		_ = unix.Munmap(data)
		return nil, err
	}
	f.mapped = true
	return f, nil
}

// Parse parses a GGUF file held in memory. Tensor data aliases data, which
// must not be modified while the File is in use.
func Parse(data []byte) (*File, error) {
	return parse("gguf data", data)
}

// Close releases the memory mapping of a File from Open. Tensors obtained
// from the File must not be used afterwards. Closing twice is harmless.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	data := f.data
	f.data = nil
	if f.mapped {
		if err := unix.Munmap(data); err != nil {
			return fmt.Errorf("%s: munmap: %w", f.name, err)
		}
	}
	return nil
}

// Name returns the path given to Open, or "gguf data" for Parse.
func (f *File) Name() string { return f.name }

// Version returns the GGUF format version (2 or 3).
func (f *File) Version() int { return int(f.version) }

// Alignment returns the alignment of the data section and tensor offsets.
func (f *File) Alignment() int { return int(f.alignment) }

// DataOffset returns the absolute byte offset of the tensor data section.
func (f *File) DataOffset() int64 { return int64(f.dataOffset) }

// Tensors returns the tensor infos in file order.
func (f *File) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(f.tensors))
	copy(out, f.tensors)
	for i := range out {
		out[i].Dims = append([]uint64(nil), out[i].Dims...)
	}
	return out
}

// TensorInfo returns the info of the named tensor.
func (f *File) TensorInfo(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	ti := f.tensors[i]
	ti.Dims = append([]uint64(nil), ti.Dims...)
	return ti, true
}

// reader decodes little-endian GGUF primitives from a byte slice, bounds
// checked, reporting ErrMalformed on truncation.
type reader struct {
	data []byte
	pos  uint64
}

func (r *reader) remaining() uint64 { return uint64(len(r.data)) - r.pos }

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func (r *reader) need(n uint64, what string) error {
	if n > r.remaining() {
		return malformed("file truncated at offset %d reading %s (%d bytes needed, %d left)", r.pos, what, n, r.remaining())
	}
	return nil
}

func (r *reader) bytes(n uint64, what string) ([]byte, error) {
	if err := r.need(n, what); err != nil {
		return nil, err
	}
	b := r.data[r.pos : r.pos+n]
	r.pos += n
	return b, nil
}

func (r *reader) u8(what string) (uint8, error) {
	b, err := r.bytes(1, what)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (r *reader) u16(what string) (uint16, error) {
	b, err := r.bytes(2, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (r *reader) u32(what string) (uint32, error) {
	b, err := r.bytes(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (r *reader) u64(what string) (uint64, error) {
	b, err := r.bytes(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (r *reader) str(what string) (string, error) {
	n, err := r.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > r.remaining() {
		return "", malformed("%s length %d at offset %d exceeds the %d bytes left", what, n, r.pos-8, r.remaining())
	}
	b, _ := r.bytes(n, what)
	return string(b), nil
}

// count reads a uint64 element count and checks that n elements of at least
// minSize bytes each fit in the remaining bytes.
func (r *reader) count(what string, minSize int) (uint64, error) {
	n, err := r.u64(what)
	if err != nil {
		return 0, err
	}
	if minSize > 0 && n > r.remaining()/uint64(minSize) {
		return 0, malformed("%s %d at offset %d is impossible: it needs at least %d bytes per entry and only %d bytes are left", what, n, r.pos-8, minSize, r.remaining())
	}
	return n, nil
}

func parse(name string, data []byte) (*File, error) {
	f, err := parseFile(name, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

func parseFile(name string, data []byte) (*File, error) {
	r := &reader{data: data}
	if len(data) < 4 {
		return nil, malformed("file of %d bytes is too short to be GGUF", len(data))
	}
	switch string(data[:4]) {
	case Magic:
	case "FUGG":
		return nil, fmt.Errorf("%w: byte-swapped magic %q: big-endian GGUF is not supported", ErrUnsupportedVersion, data[:4])
	default:
		return nil, malformed("bad magic %q, want %q", data[:4], Magic)
	}
	r.pos = 4
	version, err := r.u32("version")
	if err != nil {
		return nil, err
	}
	switch {
	case version == 2 || version == 3:
	case version == 1:
		return nil, fmt.Errorf("%w: GGUF version 1 is not supported (only versions 2 and 3); re-convert the model with a current llama.cpp", ErrUnsupportedVersion)
	case version == 0:
		return nil, malformed("version 0")
	case version&0xffff == 0 && bits.ReverseBytes32(version) <= 0xffff:
		return nil, fmt.Errorf("%w: version bytes read as %d little-endian, %d big-endian: big-endian GGUF is not supported", ErrUnsupportedVersion, version, bits.ReverseBytes32(version))
	default:
		return nil, fmt.Errorf("%w: GGUF version %d (only versions 2 and 3 are supported)", ErrUnsupportedVersion, version)
	}

	f := &File{name: name, data: data, version: version, alignment: DefaultAlignment}

	// A tensor info needs at least a name length, n_dims, type and offset.
	const minTensorInfo = 8 + 4 + 4 + 8
	// A key-value pair needs at least a key length, a type and one byte.
	const minKV = 8 + 4 + 1
	nTensors, err := r.count("tensor count", minTensorInfo)
	if err != nil {
		return nil, err
	}
	nKV, err := r.count("metadata key-value count", minKV)
	if err != nil {
		return nil, err
	}

	f.kv = make(map[string]Value, nKV)
	f.keys = make([]string, 0, nKV)
	for i := range nKV {
		key, err := r.str(fmt.Sprintf("metadata key %d", i))
		if err != nil {
			return nil, err
		}
		if _, dup := f.kv[key]; dup {
			return nil, malformed("duplicate metadata key %q", key)
		}
		t, err := r.u32(fmt.Sprintf("type of metadata key %q", key))
		if err != nil {
			return nil, err
		}
		v, err := r.value(ValueType(t), 0)
		if err != nil {
			return nil, fmt.Errorf("metadata key %q: %w", key, err)
		}
		f.kv[key] = v
		f.keys = append(f.keys, key)
	}

	if v, ok := f.kv["general.alignment"]; ok {
		a, isU32 := v.v.(uint32)
		if !isU32 {
			return nil, malformed("general.alignment is %s, want uint32", v.typ)
		}
		if a == 0 || a&(a-1) != 0 {
			return nil, malformed("general.alignment %d is not a power of two", a)
		}
		f.alignment = uint64(a)
	}

	f.tensors = make([]TensorInfo, 0, nTensors)
	f.byName = make(map[string]int, nTensors)
	for i := range nTensors {
		ti, err := r.tensorInfo(i)
		if err != nil {
			return nil, err
		}
		if _, dup := f.byName[ti.Name]; dup {
			return nil, malformed("duplicate tensor name %q", ti.Name)
		}
		f.byName[ti.Name] = len(f.tensors)
		f.tensors = append(f.tensors, ti)
	}

	// The data section starts at the next multiple of the alignment. A file
	// without tensors may end before it.
	f.dataOffset = alignUp(r.pos, f.alignment)
	fileSize := uint64(len(data))
	var avail uint64
	if f.dataOffset <= fileSize {
		avail = fileSize - f.dataOffset
	}
	for i := range f.tensors {
		ti := &f.tensors[i]
		if ti.Offset%f.alignment != 0 {
			return nil, malformed("tensor %q: offset %d is not a multiple of the alignment %d", ti.Name, ti.Offset, f.alignment)
		}
		if ti.Offset > avail || ti.Size > avail-ti.Offset {
			return nil, malformed("tensor %q: data [%d, %d) relative to the data section at %d lies past the end of the %d-byte file", ti.Name, ti.Offset, ti.Offset+ti.Size, f.dataOffset, fileSize)
		}
	}
	if err := checkOverlap(f.tensors); err != nil {
		return nil, err
	}
	return f, nil
}

func alignUp(x, a uint64) uint64 {
	if r := x % a; r != 0 {
		return x + a - r
	}
	return x
}

// checkOverlap reports tensors whose byte ranges overlap.
func checkOverlap(ts []TensorInfo) error {
	idx := make([]int, 0, len(ts))
	for i := range ts {
		if ts[i].Size > 0 {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return ts[idx[a]].Offset < ts[idx[b]].Offset })
	for k := 1; k < len(idx); k++ {
		p, q := &ts[idx[k-1]], &ts[idx[k]]
		if p.Offset+p.Size > q.Offset {
			return malformed("tensors %q and %q overlap", p.Name, q.Name)
		}
	}
	return nil
}

func (r *reader) tensorInfo(i uint64) (TensorInfo, error) {
	var ti TensorInfo
	name, err := r.str(fmt.Sprintf("name of tensor %d", i))
	if err != nil {
		return ti, err
	}
	if name == "" {
		return ti, malformed("tensor %d has an empty name", i)
	}
	ti.Name = name
	nDims, err := r.u32(fmt.Sprintf("dimension count of tensor %q", name))
	if err != nil {
		return ti, err
	}
	if nDims > MaxDims {
		return ti, malformed("tensor %q has %d dimensions, at most %d are allowed", name, nDims, MaxDims)
	}
	if err := r.need(uint64(nDims)*8+4+8, fmt.Sprintf("info of tensor %q", name)); err != nil {
		return ti, err
	}
	ti.Dims = make([]uint64, nDims)
	for d := range ti.Dims {
		ti.Dims[d], _ = r.u64("dimension")
	}
	t, _ := r.u32("type")
	ti.Type = GGMLType(t)
	ti.Offset, _ = r.u64("offset")

	tr, known := ggmlTypes[ti.Type]
	if !known {
		if old, ok := removedTypes[ti.Type]; ok {
			return ti, malformed("tensor %q: ggml type %d (%s) has been removed from ggml (supported: %s)", name, t, old, supportedList())
		}
		return ti, malformed("tensor %q: unknown ggml type %d (supported: %s)", name, t, supportedList())
	}
	// Every dimension, and the element count, is bounded by what the whole
	// file could hold, which also rules out overflow below.
	limit := uint64(len(r.data)) * tr.blockSize
	n := uint64(1)
	for d, dim := range ti.Dims {
		if dim > limit || dim > math.MaxInt64 {
			return ti, malformed("tensor %q: dimension %d is %d, more than a %d-byte file can hold", name, d, dim, len(r.data))
		}
		if dim != 0 && n > limit/dim {
			return ti, malformed("tensor %q: %v elements are more than a %d-byte file can hold", name, ti.Dims, len(r.data))
		}
		n *= dim
	}
	if len(ti.Dims) > 0 && ti.Dims[0]%tr.blockSize != 0 {
		return ti, malformed("tensor %q: innermost dimension %d is not a multiple of the %s block size %d", name, ti.Dims[0], tr.name, tr.blockSize)
	}
	if len(ti.Dims) == 0 && tr.blockSize != 1 {
		return ti, malformed("tensor %q: scalar of block type %s", name, tr.name)
	}
	ti.Size = n / tr.blockSize * tr.blockBytes
	return ti, nil
}

// value decodes one metadata value of type t.
func (r *reader) value(t ValueType, depth int) (Value, error) {
	v := Value{typ: t}
	var err error
	switch t {
	case Uint8:
		v.v, err = r.u8("uint8")
	case Int8:
		var x uint8
		x, err = r.u8("int8")
		v.v = int8(x)
	case Uint16:
		v.v, err = r.u16("uint16")
	case Int16:
		var x uint16
		x, err = r.u16("int16")
		v.v = int16(x)
	case Uint32:
		v.v, err = r.u32("uint32")
	case Int32:
		var x uint32
		x, err = r.u32("int32")
		v.v = int32(x)
	case Float32:
		var x uint32
		x, err = r.u32("float32")
		v.v = math.Float32frombits(x)
	case Bool:
		var x uint8
		x, err = r.u8("bool")
		v.v = x != 0
	case String:
		v.v, err = r.str("string")
	case Uint64:
		v.v, err = r.u64("uint64")
	case Int64:
		var x uint64
		x, err = r.u64("int64")
		v.v = int64(x)
	case Float64:
		var x uint64
		x, err = r.u64("float64")
		v.v = math.Float64frombits(x)
	case Array:
		return r.array(depth)
	default:
		return v, malformed("unknown value type %d at offset %d", uint32(t), r.pos-4)
	}
	return v, err
}

// array decodes an array value after its type tag.
func (r *reader) array(depth int) (Value, error) {
	if depth >= maxNesting {
		return Value{}, malformed("arrays nested more than %d deep", maxNesting)
	}
	et, err := r.u32("array element type")
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if !elem.valid() {
		return Value{}, malformed("unknown array element type %d at offset %d", et, r.pos-4)
	}
	n, err := r.count("array length", elem.minSize())
	if err != nil {
		return Value{}, err
	}
	v := Value{typ: Array, elem: elem}
	if sz := elem.fixedSize(); sz > 0 {
		raw, _ := r.bytes(n*uint64(sz), "array") // bounded by count
		v.v, err = decodeFixed(elem, raw, int(n))
		if err != nil {
			return Value{}, malformed("array at offset %d: %v", r.pos-uint64(len(raw)), err)
		}
		return v, nil
	}
	switch elem {
	case String:
		s := make([]string, n)
		for i := range s {
			if s[i], err = r.str("array string"); err != nil {
				return Value{}, fmt.Errorf("element %d: %w", i, err)
			}
		}
		v.v = s
	case Array:
		s := make([]Value, n)
		for i := range s {
			if s[i], err = r.array(depth + 1); err != nil {
				return Value{}, fmt.Errorf("element %d: %w", i, err)
			}
		}
		v.v = s
	}
	return v, nil
}

// decodeFixed decodes n little-endian scalars of type t into a typed slice.
func decodeFixed(t ValueType, b []byte, n int) (any, error) {
	le := binary.LittleEndian
	switch t {
	case Uint8:
		return append([]uint8(nil), b...), nil
	case Int8:
		s := make([]int8, n)
		for i := range s {
			s[i] = int8(b[i])
		}
		return s, nil
	case Bool:
		s := make([]bool, n)
		for i := range s {
			s[i] = b[i] != 0
		}
		return s, nil
	case Uint16:
		s := make([]uint16, n)
		for i := range s {
			s[i] = le.Uint16(b[2*i:])
		}
		return s, nil
	case Int16:
		s := make([]int16, n)
		for i := range s {
			s[i] = int16(le.Uint16(b[2*i:]))
		}
		return s, nil
	case Uint32:
		s := make([]uint32, n)
		for i := range s {
			s[i] = le.Uint32(b[4*i:])
		}
		return s, nil
	case Int32:
		s := make([]int32, n)
		for i := range s {
			s[i] = int32(le.Uint32(b[4*i:]))
		}
		return s, nil
	case Float32:
		s := make([]float32, n)
		for i := range s {
			s[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return s, nil
	case Uint64:
		s := make([]uint64, n)
		for i := range s {
			s[i] = le.Uint64(b[8*i:])
		}
		return s, nil
	case Int64:
		s := make([]int64, n)
		for i := range s {
			s[i] = int64(le.Uint64(b[8*i:]))
		}
		return s, nil
	case Float64:
		s := make([]float64, n)
		for i := range s {
			s[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
		return s, nil
	}
	return nil, fmt.Errorf("type %s is not a fixed-size scalar", t)
}
