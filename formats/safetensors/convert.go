package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/core/vmem"
)

// parallelMin is the element count above which decoding is split across
// goroutines; below it the goroutine start-up costs more than it saves.
const parallelMin = 1 << 18

// pieceSize is the number of elements that decoding workers take at a time:
// 2 MiB of F16 input, 4 MiB of float32 output (two huge pages). Workers
// taking pieces in turn, rather than one fixed share each, keeps every core
// busy to the end when one of them is slowed by other work.
const pieceSize = 1 << 20

// readSize is the number of bytes a worker reads from a file at a time,
// small enough to stay in its core's L2 cache until it is decoded.
const readSize = 128 << 10

// prefaultMin is the output size, in bytes, from which the pages of the
// destination are allocated in one system call before decoding.
const prefaultMin = 256 << 10

// f16Table maps every binary16 bit pattern to its float32 value. At 256 KiB
// it stays in L2 cache, and a load beats the branchy bit manipulation for
// subnormals and specials.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = tensor.HalfToFloat32(uint16(i))
	}
	return &t
})

// checkFloat32 reports whether decodeFloat32 can decode dtype d.
func checkFloat32(d tensor.DType) error {
	switch d {
	case tensor.F32, tensor.F16, tensor.BF16, tensor.F64,
		tensor.I64, tensor.I32, tensor.I16, tensor.I8,
		tensor.U64, tensor.U32, tensor.U16, tensor.U8, tensor.Bool:
		return nil
	}
	return fmt.Errorf("dtype %s cannot be converted to float32", d)
}

// encoded is the stored bytes of a tensor: in memory, or a range of a file
// to be read in pieces.
type encoded struct {
	mem  []byte      // the bytes, when in memory
	file io.ReaderAt // else the file holding them
	off  int64       // the offset of the tensor in file
	n    int         // the number of bytes
}

// inMemory returns the encoded form of b.
func inMemory(b []byte) encoded { return encoded{mem: b, n: len(b)} }

// bytes returns bytes [lo, hi) of the tensor: a slice of the memory, or
// read into buf (hi-lo <= readSize).
func (e encoded) bytes(buf *[readSize]byte, lo, hi int) ([]byte, error) {
	if e.file == nil {
		return e.mem[lo:hi], nil
	}
	b := buf[:hi-lo]
	if err := readAt(e.file, b, e.off+int64(lo)); err != nil {
		return nil, err
	}
	return b, nil
}

// readAt fills b from r at off; a short read is io.ErrUnexpectedEOF.
func readAt(r io.ReaderAt, b []byte, off int64) error {
	if _, err := r.ReadAt(b, off); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the file shrank since it was opened
		}
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

var readBufs = sync.Pool{New: func() any { return new([readSize]byte) }}

// decodeFloat32 decodes len(dst) elements of dtype d from src, splitting
// large tensors across GOMAXPROCS goroutines.
//
// A tensor in a file is read with pread into a small buffer per worker
// and decoded from there, although the file is also memory-mapped: the
// first access to each 4 KiB page of a fresh mapping costs a page fault or
// at least a page-table walk, which on virtual machines takes longer than
// copying the page, while read serves the page cache through the kernel's
// own huge-page mapping of memory.
func decodeFloat32(dst []float32, d tensor.DType, src encoded) error {
	if err := checkFloat32(d); err != nil {
		return err
	}
	size := d.Size()
	if src.n != len(dst)*size {
		return fmt.Errorf("%d bytes for %d elements of %s", src.n, len(dst), d)
	}
	n := len(dst)
	stream := n >= streamMin
	// decode decodes elements [lo, hi).
	decode := func(lo, hi int) error {
		if 4*(hi-lo) >= prefaultMin {
			vmem.PrefaultWrite(dst[lo:hi])
		}
		buf, step := (*[readSize]byte)(nil), hi-lo
		if src.file != nil {
			buf, step = readBufs.Get().(*[readSize]byte), readSize/size
			defer readBufs.Put(buf)
		}
		for i := lo; i < hi; i += step {
			j := min(i+step, hi)
			b, err := src.bytes(buf, i*size, j*size)
			if err != nil {
				return err
			}
			if err := decodeChunk(dst[i:j], d, b, stream); err != nil {
				return err
			}
		}
		return nil
	}
	if 4*n >= prefaultMin {
		vmem.AdviseHuge(dst)
	}
	workers := runtime.GOMAXPROCS(0)
	if n < 2*parallelMin || workers < 2 {
		return decode(0, n)
	}
	piece := min(pieceSize, ((n+workers-1)/workers+4095)&^4095)
	pieces := (n + piece - 1) / piece
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
	)
	for range min(workers, pieces) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= pieces {
					return
				}
				if err := decode(i*piece, min((i+1)*piece, n)); err != nil {
					mu.Lock()
					ferr = err
					mu.Unlock()
					next.Store(int64(pieces)) // stop the others early
					return
				}
			}
		})
	}
	wg.Wait()
	return ferr
}

// decodeChunk decodes len(dst) elements of dtype d from src, with
// non-temporal stores for F16 and BF16 when stream is set.
func decodeChunk(dst []float32, d tensor.DType, src []byte, stream bool) error {
	switch d {
	case tensor.F16:
		f16ToF32(dst, src, stream)
	case tensor.BF16:
		bf16ToF32(dst, src, stream)
	case tensor.F32:
		f32ToF32(dst, src)
	default:
		return tensor.ToFloat32(dst, d, src)
	}
	return nil
}

// streamMin is the output size, in elements, from which decoding uses
// non-temporal stores: 1 MiB of float32, about one core's L2 cache. A
// destination that large would not stay in cache anyway, and streaming
// stores save the read of every destination line before it is written (a
// third of the memory traffic of an F16 decode).
const streamMin = 1 << 18

// f16ToF32 decodes len(dst) binary16 elements of src, with non-temporal
// stores if stream is set and the CPU has them.
func f16ToF32(dst []float32, src []byte, stream bool) {
	if asmF16 {
		decodeAsm(dst, src, stream, f16ToF32AVX2, f16ToF32AVX2NT, f16ToF32Go)
		return
	}
	f16ToF32Go(dst, src)
}

// bf16ToF32 decodes len(dst) bfloat16 elements of src, with non-temporal
// stores if stream is set and the CPU has them.
func bf16ToF32(dst []float32, src []byte, stream bool) {
	if asmBF16 {
		decodeAsm(dst, src, stream, bf16ToF32AVX2, bf16ToF32AVX2NT, bf16ToF32Go)
		return
	}
	bf16ToF32Go(dst, src)
}

// decodeAsm runs an assembly kernel over dst (the streaming one, after the
// Go decoder has brought dst to a 32-byte boundary, if stream is set) and
// finishes the last 0-7 elements in Go.
func decodeAsm(dst []float32, src []byte, stream bool, kernel, streaming func([]float32, []byte) int, tail func([]float32, []byte)) {
	src = src[:2*len(dst)]
	if stream {
		head := min(int(-uintptr(unsafe.Pointer(unsafe.SliceData(dst)))&31/4), len(dst))
		tail(dst[:head], src[:2*head])
		dst, src = dst[head:], src[2*head:]
		kernel = streaming
	}
	k := kernel(dst, src)
	tail(dst[k:], src[2*k:])
}

// f16ToF32Go decodes eight elements per step from two 64-bit loads, which
// halves the cost of bounds checks and byte assembly against a plain loop.
func f16ToF32Go(dst []float32, src []byte) {
	tab := f16Table()
	n := len(dst)
	src = src[:2*n]
	i := 0
	for ; i+8 <= n; i += 8 {
		s := src[2*i : 2*i+16 : 2*i+16]
		v := binary.LittleEndian.Uint64(s)
		w := binary.LittleEndian.Uint64(s[8:])
		d := dst[i : i+8 : i+8]
		d[0] = tab[uint16(v)]
		d[1] = tab[uint16(v>>16)]
		d[2] = tab[uint16(v>>32)]
		d[3] = tab[uint16(v>>48)]
		d[4] = tab[uint16(w)]
		d[5] = tab[uint16(w>>16)]
		d[6] = tab[uint16(w>>32)]
		d[7] = tab[uint16(w>>48)]
	}
	for ; i < n; i++ {
		dst[i] = tab[binary.LittleEndian.Uint16(src[2*i:])]
	}
}

// bf16ToF32Go decodes bfloat16, the upper half of a float32, by shifting.
func bf16ToF32Go(dst []float32, src []byte) {
	n := len(dst)
	src = src[:2*n]
	i := 0
	for ; i+4 <= n; i += 4 {
		v := binary.LittleEndian.Uint64(src[2*i : 2*i+8 : 2*i+8])
		d := dst[i : i+4 : i+4]
		d[0] = math.Float32frombits(uint32(v) << 16)
		d[1] = math.Float32frombits(uint32(v>>16) << 16)
		d[2] = math.Float32frombits(uint32(v>>32) << 16)
		d[3] = math.Float32frombits(uint32(v>>48) << 16)
	}
	for ; i < n; i++ {
		dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
	}
}

func f32ToF32(dst []float32, src []byte) {
	src = src[:4*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}
