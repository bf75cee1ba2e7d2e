package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// parallelMin is the element count above which decoding is split across
// goroutines; below it the goroutine start-up costs more than it saves.
const parallelMin = 1 << 18

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

// decodeFloat32 decodes len(dst) elements of dtype d from src, splitting
// large tensors across GOMAXPROCS goroutines.
func decodeFloat32(dst []float32, d tensor.DType, src []byte) error {
	if err := checkFloat32(d); err != nil {
		return err
	}
	size := d.Size()
	if len(src) != len(dst)*size {
		return fmt.Errorf("%d bytes for %d elements of %s", len(src), len(dst), d)
	}
	n := len(dst)
	workers := runtime.GOMAXPROCS(0)
	if n < 2*parallelMin || workers < 2 {
		return decodeChunk(dst, d, src)
	}
	workers = min(workers, n/parallelMin)
	chunk := (n + workers - 1) / workers
	chunk = (chunk + 4095) &^ 4095 // whole pages of output
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
	)
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Go(func() {
			if err := decodeChunk(dst[lo:hi], d, src[lo*size:hi*size]); err != nil {
				mu.Lock()
				ferr = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ferr
}

func decodeChunk(dst []float32, d tensor.DType, src []byte) error {
	switch d {
	case tensor.F16:
		f16ToF32(dst, src)
	case tensor.BF16:
		bf16ToF32(dst, src)
	case tensor.F32:
		f32ToF32(dst, src)
	default:
		return tensor.ToFloat32(dst, d, src)
	}
	return nil
}

// f16ToF32 decodes eight elements per step from two 64-bit loads, which
// halves the cost of bounds checks and byte assembly against a plain loop.
func f16ToF32(dst []float32, src []byte) {
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

func bf16ToF32(dst []float32, src []byte) {
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
