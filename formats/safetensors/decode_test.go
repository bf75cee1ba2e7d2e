package safetensors

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/internal/asmout"
)

// impl is one set of half-precision decoders: the portable Go ones, or the
// assembly ones where the CPU has them.
type impl struct {
	name string
	use  func() (restore func())
}

func implementations() []impl {
	out := []impl{{"go", func() func() {
		f, bf := asmF16, asmBF16
		asmF16, asmBF16 = false, false
		return func() { asmF16, asmBF16 = f, bf }
	}}}
	if asmF16 && asmBF16 {
		out = append(out, impl{"asm", func() func() { return func() {} }})
	}
	return out
}

// halfReference is the float32 value of every 16-bit pattern of dtype d,
// as core/tensor decodes it.
func halfReference(d tensor.DType) []float32 {
	want := make([]float32, 1<<16)
	for i := range want {
		if d == tensor.F16 {
			want[i] = tensor.HalfToFloat32(uint16(i))
		} else {
			want[i] = math.Float32frombits(uint32(i) << 16)
		}
	}
	return want
}

// TestHalfDecodersAllValues decodes all 65536 patterns of F16 and BF16 with
// each implementation, with ordinary and streaming stores and from every
// alignment of the destination, and wants the reference bits, NaN
// payloads included.
func TestHalfDecodersAllValues(t *testing.T) {
	src := make([]byte, 2<<16)
	for i := range 1 << 16 {
		binary.LittleEndian.PutUint16(src[2*i:], uint16(i))
	}
	for _, d := range []tensor.DType{tensor.F16, tensor.BF16} {
		want := halfReference(d)
		for _, im := range implementations() {
			for _, stream := range []bool{false, true} {
				for shift := range 8 {
					name := string(d) + "/" + im.name
					if stream {
						name += "/stream"
					}
					t.Run(name, func(t *testing.T) {
						defer im.use()()
						// The destination starts shift floats past a
						// 32-byte boundary, so the streaming path has
						// a head to decode first.
						mem := make([]float32, 1<<16+16)
						off := int(-uintptr(unsafeAddr(mem))&31/4) + shift
						got := mem[off : off+1<<16]
						if err := decodeChunk(got, d, src, stream); err != nil {
							t.Fatal(err)
						}
						for i, v := range got {
							if math.Float32bits(v) != math.Float32bits(want[i]) {
								t.Fatalf("shift %d: %#04x decodes to %#08x, want %#08x", shift, i, math.Float32bits(v), math.Float32bits(want[i]))
							}
						}
						for i, v := range mem {
							if (i < off || i >= off+1<<16) && v != 0 {
								t.Fatalf("shift %d: element %d outside the destination written", shift, i-off)
							}
						}
					})
				}
			}
		}
	}
}

// TestHalfDecodersLengths covers every tail length of the assembly loops
// (32 elements a step, then 8, then the rest in Go) against the reference.
func TestHalfDecodersLengths(t *testing.T) {
	for _, d := range []tensor.DType{tensor.F16, tensor.BF16} {
		want := halfReference(d)
		for _, im := range implementations() {
			t.Run(string(d)+"/"+im.name, func(t *testing.T) {
				defer im.use()()
				for n := 0; n <= 80; n++ {
					for _, stream := range []bool{false, true} {
						src := make([]byte, 2*n+2)
						for i := range n {
							binary.LittleEndian.PutUint16(src[2*i:], uint16(0x3c00+977*i))
						}
						got := make([]float32, n+1)
						got[n] = 42
						if err := decodeChunk(got[:n], d, src[:2*n], stream); err != nil {
							t.Fatal(err)
						}
						for i := range n {
							if w := want[uint16(0x3c00+977*i)]; math.Float32bits(got[i]) != math.Float32bits(w) {
								t.Fatalf("n=%d stream=%v: element %d = %v, want %v", n, stream, i, got[i], w)
							}
						}
						if got[n] != 42 {
							t.Fatalf("n=%d stream=%v: wrote past the end", n, stream)
						}
					}
				}
			})
		}
	}
}

// TestDecodeFromFile decodes large tensors read from a file in pieces
// (the path Open'ed files take) and wants the in-memory result; a file
// that shrank since is an error, not a crash.
func TestDecodeFromFile(t *testing.T) {
	n := 3*parallelMin + 4099
	for _, d := range []tensor.DType{tensor.F16, tensor.BF16, tensor.F32, tensor.I8} {
		t.Run(string(d), func(t *testing.T) {
			src := make([]byte, 8+n*d.Size())
			for i := range src {
				src[i] = byte(i*131 + i>>9)
			}
			path := filepath.Join(t.TempDir(), "raw")
			if err := os.WriteFile(path, src, 0o644); err != nil {
				t.Fatal(err)
			}
			fh, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			want := make([]float32, n)
			if err := decodeFloat32(want, d, inMemory(src[8:])); err != nil {
				t.Fatal(err)
			}
			got := make([]float32, n)
			e := encoded{file: fh, off: 8, n: n * d.Size()}
			if err := decodeFloat32(got, d, e); err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("element %d: %v, want %v", i, got[i], want[i])
				}
			}
			if err := os.Truncate(path, int64(len(src)-1)); err != nil {
				t.Fatal(err)
			}
			if err := decodeFloat32(got, d, e); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("truncated file: %v, want %v", err, io.ErrUnexpectedEOF)
			}
		})
	}
}

// TestGeneratedUpToDate regenerates the assembly into a temporary directory
// and checks that the committed files are its output, byte for byte.
func TestGeneratedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the generator")
	}
	stale, err := asmout.Stale("decode_amd64", t.TempDir())
	if errors.Is(err, asmout.ErrNoGo) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range stale {
		t.Errorf("%s differs from the generator's output: run go generate ./formats/safetensors", name)
	}
}
