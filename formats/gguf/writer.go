package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"reflect"

	"github.com/surgeon-ml/surgeon/internal/atomicfs"
)

// KV is one metadata entry to write. Value is a Go value of a GGUF type:
// uint8, int8, uint16, int16, uint32, int32, float32, bool, string,
// uint64, int64, float64, or a slice of one of them.
type KV struct {
	Key   string
	Value any
}

// WriteTensor is one tensor to write: its name, row-major shape (outermost
// first, as Shape reports; written reversed, innermost first), ggml type
// and encoded bytes (see Quantize), given as Data or produced by Source.
type WriteTensor struct {
	Name  string
	Shape []int
	Type  GGMLType
	Data  []byte
	// Source, when Data is nil, produces the tensor's bytes when the
	// writer reaches it, so that a file bigger than memory streams out
	// one tensor at a time. Write calls each Source once, in order, at
	// most two ahead of the tensor being written, and checks the length.
	Source func() ([]byte, error)
}

// size is the number of bytes the tensor's type and shape take.
func (t *WriteTensor) size() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n / t.Type.BlockSize() * t.Type.BlockBytes()
}

// Write writes a GGUF version 3 file with the metadata and tensors given,
// their data aligned to DefaultAlignment (or general.alignment when kvs
// sets it). The file is written under a temporary name and renamed into
// place. Each tensor's data length must match its type and shape.
func Write(path string, kvs []KV, tensors []WriteTensor) error {
	align := uint64(DefaultAlignment)
	seen := map[string]bool{}
	for _, kv := range kvs {
		if seen[kv.Key] {
			return fmt.Errorf("%s: metadata key %q given twice", path, kv.Key)
		}
		seen[kv.Key] = true
		if kv.Key == "general.alignment" {
			a, ok := kv.Value.(uint32)
			if !ok || a == 0 || a%8 != 0 {
				return fmt.Errorf("%s: general.alignment must be a uint32 multiple of 8, got %v", path, kv.Value)
			}
			align = uint64(a)
		}
	}
	offsets := make([]uint64, len(tensors))
	var off uint64
	names := map[string]bool{}
	for i, t := range tensors {
		if names[t.Name] {
			return fmt.Errorf("%s: tensor %q given twice", path, t.Name)
		}
		names[t.Name] = true
		if !t.Type.Known() {
			return fmt.Errorf("%s: tensor %q: unknown ggml type %d", path, t.Name, t.Type)
		}
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if len(t.Shape) == 0 || len(t.Shape) > 4 || n <= 0 {
			return fmt.Errorf("%s: tensor %q: bad shape %v", path, t.Name, t.Shape)
		}
		bs := t.Type.BlockSize()
		if t.Shape[len(t.Shape)-1]%bs != 0 {
			return fmt.Errorf("%s: tensor %q: rows of %d values do not divide into %s blocks of %d", path, t.Name, t.Shape[len(t.Shape)-1], t.Type, bs)
		}
		if want := t.size(); (t.Source == nil || t.Data != nil) && len(t.Data) != want {
			return fmt.Errorf("%s: tensor %q: %d bytes for %s %v, want %d", path, t.Name, len(t.Data), t.Type, t.Shape, want)
		}
		off = (off + align - 1) / align * align
		offsets[i] = off
		off += uint64(t.size())
	}
	return atomicfs.WriteFile(path, func(w io.Writer) error {
		datas, stop := produce(tensors)
		defer stop()
		bw := bufio.NewWriterSize(w, 1<<20)
		cw := &countWriter{w: bw}
		e := encoder{w: cw}
		e.raw([]byte(Magic))
		e.u32(3)
		e.u64(uint64(len(tensors)))
		e.u64(uint64(len(kvs)))
		for _, kv := range kvs {
			e.str(kv.Key)
			if err := e.value(kv.Value); err != nil {
				return fmt.Errorf("metadata %q: %w", kv.Key, err)
			}
		}
		for i, t := range tensors {
			e.str(t.Name)
			e.u32(uint32(len(t.Shape)))
			for k := len(t.Shape) - 1; k >= 0; k-- {
				e.u64(uint64(t.Shape[k]))
			}
			e.u32(uint32(t.Type))
			e.u64(offsets[i])
		}
		if e.err != nil {
			return e.err
		}
		pad := func() {
			if r := cw.n % align; r != 0 {
				e.raw(make([]byte, align-r))
			}
		}
		pad()
		start := cw.n
		for i, t := range tensors {
			if cw.n-start != offsets[i] {
				if r := (cw.n - start) % align; r != 0 {
					e.raw(make([]byte, align-r))
				}
			}
			d := <-datas
			if d.err != nil {
				return fmt.Errorf("tensor %q: %w", t.Name, d.err)
			}
			if want := t.size(); len(d.data) != want {
				return fmt.Errorf("tensor %q: %d bytes produced for %s %v, want %d", t.Name, len(d.data), t.Type, t.Shape, want)
			}
			e.raw(d.data)
		}
		if e.err != nil {
			return e.err
		}
		return bw.Flush()
	})
}

// produced is one tensor's bytes, or why they could not be made.
type produced struct {
	data []byte
	err  error
}

// produce yields the tensors' bytes in order: Data as given, Source called
// in a goroutine that runs at most two tensors ahead of the writer, so that
// making the next tensor (quantizing, say) overlaps writing this one. stop
// ends the goroutine early.
func produce(tensors []WriteTensor) (<-chan produced, func()) {
	out := make(chan produced, 1)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for _, t := range tensors {
			d := produced{data: t.Data}
			if d.data == nil && t.Source != nil {
				d.data, d.err = t.Source()
			}
			select {
			case out <- d:
			case <-done:
				return
			}
			if d.err != nil {
				return
			}
		}
	}()
	return out, func() { close(done) }
}

// countWriter counts the bytes written.
type countWriter struct {
	w io.Writer
	n uint64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}

// encoder writes little-endian GGUF fields, keeping the first error.
type encoder struct {
	w   io.Writer
	err error
	buf [8]byte
}

func (e *encoder) raw(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:4], v)
	e.raw(e.buf[:4])
}

func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:8], v)
	e.raw(e.buf[:8])
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	e.raw([]byte(s))
}

// value writes a metadata value with its type tag.
func (e *encoder) value(v any) error {
	switch x := v.(type) {
	case []string:
		e.u32(uint32(Array))
		e.u32(uint32(String))
		e.u64(uint64(len(x)))
		for _, s := range x {
			e.str(s)
		}
		return nil
	case []float32:
		e.u32(uint32(Array))
		e.u32(uint32(Float32))
		e.u64(uint64(len(x)))
		for _, f := range x {
			e.u32(math.Float32bits(f))
		}
		return nil
	case []int32:
		e.u32(uint32(Array))
		e.u32(uint32(Int32))
		e.u64(uint64(len(x)))
		for _, i := range x {
			e.u32(uint32(i))
		}
		return nil
	case []uint32:
		e.u32(uint32(Array))
		e.u32(uint32(Uint32))
		e.u64(uint64(len(x)))
		for _, i := range x {
			e.u32(i)
		}
		return nil
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice {
		et, ok := scalarType(reflect.Zero(rv.Type().Elem()).Interface())
		if !ok {
			return fmt.Errorf("%T is not a GGUF array type", v)
		}
		e.u32(uint32(Array))
		e.u32(uint32(et))
		e.u64(uint64(rv.Len()))
		for i := 0; i < rv.Len(); i++ {
			e.scalar(rv.Index(i).Interface())
		}
		return nil
	}
	t, ok := scalarType(v)
	if !ok {
		return fmt.Errorf("%T is not a GGUF value type", v)
	}
	e.u32(uint32(t))
	e.scalar(v)
	return nil
}

func scalarType(v any) (ValueType, bool) {
	switch v.(type) {
	case uint8:
		return Uint8, true
	case int8:
		return Int8, true
	case uint16:
		return Uint16, true
	case int16:
		return Int16, true
	case uint32:
		return Uint32, true
	case int32:
		return Int32, true
	case float32:
		return Float32, true
	case bool:
		return Bool, true
	case string:
		return String, true
	case uint64:
		return Uint64, true
	case int64:
		return Int64, true
	case float64:
		return Float64, true
	}
	return 0, false
}

func (e *encoder) scalar(v any) {
	switch x := v.(type) {
	case uint8:
		e.raw([]byte{x})
	case int8:
		e.raw([]byte{byte(x)})
	case uint16:
		binary.LittleEndian.PutUint16(e.buf[:2], x)
		e.raw(e.buf[:2])
	case int16:
		binary.LittleEndian.PutUint16(e.buf[:2], uint16(x))
		e.raw(e.buf[:2])
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		if x {
			e.raw([]byte{1})
		} else {
			e.raw([]byte{0})
		}
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	}
}

// ValueOf returns a read value as a Go value Write accepts (for copying
// metadata such as tokenizer.ggml.* from one file to another).
func ValueOf(v Value) any { return v.v }
