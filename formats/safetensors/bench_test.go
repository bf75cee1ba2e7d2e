package safetensors

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// benchShapes returns Llama-like tensors of a 2-byte dtype totalling at
// most target bytes:
// an embedding, then decoder layers (4 attention projections, 3 MLP
// projections, 2 norms), then the final norm. The hidden size shrinks for
// small targets so a few layers still fit.
func benchShapes(target int64, dtype tensor.DType) []Descriptor {
	h := 4096
	layer := func(h int) int64 { f := h * 43 / 16; return 2 * int64(4*h*h+3*h*f) }
	for h > 64 && layer(h) > target/2 {
		h /= 2
	}
	f := h * 43 / 16 // 11008 for 4096
	var out []Descriptor
	var total int64
	add := func(name string, shape ...int) bool {
		size := int64(2 * tensor.NumElements(shape))
		if total+size > target {
			return false
		}
		out = append(out, Descriptor{name, dtype, shape})
		total += size
		return true
	}
	add("model.embed_tokens.weight", 32000, h)
	for l := 0; ; l++ {
		p := "model.layers." + strconv.Itoa(l) + "."
		if !(add(p+"input_layernorm.weight", h) && add(p+"self_attn.q_proj.weight", h, h) &&
			add(p+"self_attn.k_proj.weight", h, h) && add(p+"self_attn.v_proj.weight", h, h) &&
			add(p+"self_attn.o_proj.weight", h, h) && add(p+"post_attention_layernorm.weight", h) &&
			add(p+"mlp.gate_proj.weight", f, h) && add(p+"mlp.up_proj.weight", f, h) &&
			add(p+"mlp.down_proj.weight", h, f)) {
			break
		}
	}
	add("model.norm.weight", h)
	return out
}

// benchFile returns a cached checkpoint of dtype (F16 or BF16) of about
// SURGEON_BENCH_BYTES (default 1 GiB) in the OS temp folder, writing it on
// first use: tools/bench/run.sh times `cat` on the same files.
func benchFile(b *testing.B, dtype tensor.DType) (string, int64) {
	b.Helper()
	target := int64(1 << 30)
	if s := os.Getenv("SURGEON_BENCH_BYTES"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 1<<20 {
			b.Fatalf("SURGEON_BENCH_BYTES=%q: want an integer >= 1048576", s)
		}
		target = v
	}
	descs := benchShapes(target, dtype)
	dir := filepath.Join(os.TempDir(), "surgeon-bench")
	path := filepath.Join(dir, fmt.Sprintf("%s-llama-%d.safetensors", strings.ToLower(string(dtype)), target))
	if f, err := Open(path); err == nil {
		ok := f.Len() == len(descs)
		st, _ := os.Stat(path)
		if err := f.Close(); err == nil && ok {
			return path, st.Size()
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	w, err := Create(path, descs, &Options{Metadata: map[string]string{"format": "pt", "generator": "surgeon benchmark"}})
	if err != nil {
		b.Fatal(err)
	}
	// Weights ~ N(0, 0.02), drawn once and replayed from shifting offsets.
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([]float32, 1<<22)
	for i := range pool {
		pool[i] = float32(rng.NormFloat64() * 0.02)
	}
	const chunk = 1 << 20
	for _, d := range descs {
		for n := tensor.NumElements(d.Shape); n > 0; {
			k := min(n, chunk)
			off := rng.IntN(len(pool) - chunk)
			if err := w.WriteFloat32(pool[off : off+k]); err != nil {
				b.Fatal(errJoinAbort(err, w))
			}
			n -= k
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return path, st.Size()
}

func errJoinAbort(err error, w *Writer) error {
	if aerr := w.Abort(); aerr != nil {
		return fmt.Errorf("%w (abort: %v)", err, aerr)
	}
	return err
}

// BenchmarkReadToF32 measures Open plus decoding every tensor of a ~1 GiB
// Llama-shaped F16 or BF16 checkpoint to float32, against reading the same
// file with a plain read loop (128 KiB reads, as `cat FILE > /dev/null`
// does) in the same iterations; the file is in the page cache after the
// first run. "alloc" uses Float32, which allocates each result (fresh
// memory is part of the cost); "reuse" decodes with Float32Into into one
// buffer, used once before timing starts.
//
// Metrics: GB/s is file bytes decoded per second, read-GB/s the read
// loop's, x-read their ratio; ns/op covers both.
func BenchmarkReadToF32(b *testing.B) {
	for _, dtype := range []tensor.DType{tensor.F16, tensor.BF16} {
		path, size := benchFile(b, dtype)
		for _, mode := range []string{"alloc", "reuse"} {
			b.Run(string(dtype)+"/"+mode, func(b *testing.B) {
				var buf []float32
				if mode == "reuse" {
					buf = make([]float32, maxElements(b, path))
					decodeFile(b, path, buf)
				}
				var decode, read time.Duration
				for b.Loop() {
					t0 := time.Now()
					readFile(b, path)
					t1 := time.Now()
					decodeFile(b, path, buf)
					decode += time.Since(t1)
					read += t1.Sub(t0)
				}
				n := float64(size) * float64(b.N)
				b.ReportMetric(n/decode.Seconds()/1e9, "GB/s")
				b.ReportMetric(n/read.Seconds()/1e9, "read-GB/s")
				b.ReportMetric(read.Seconds()/decode.Seconds(), "x-read")
			})
		}
	}
}

// maxElements returns the element count of the largest tensor in path.
func maxElements(b *testing.B, path string) int {
	f, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	n := 0
	for _, ti := range f.Infos() {
		n = max(n, ti.NumElements())
	}
	return n
}

// decodeFile opens path and decodes every tensor, with Float32 if buf is
// nil, else with Float32Into into buf.
func decodeFile(b *testing.B, path string, buf []float32) {
	f, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, ti := range f.Infos() {
		if buf == nil {
			_, err = f.Float32(ti.Name)
		} else {
			err = f.Float32Into(ti.Name, buf[:ti.NumElements()])
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// readFile reads path to the end 128 KiB at a time, like cat.
func readFile(b *testing.B, path string) {
	fh, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, 128<<10)
	for {
		_, err := fh.Read(buf)
		if err == io.EOF {
			return
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode measures the F16 and BF16 -> float32 kernels on
// in-memory buffers of 2^24 elements (32 MiB in, 64 MiB out): "serial" is
// one goroutine, "parallel" the split used by Float32; "go" is the
// portable decoder, "asm" the assembly one where the CPU has it.
func BenchmarkDecode(b *testing.B) {
	const n = 1 << 24
	src := make([]byte, 2*n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		h := tensor.Float32ToHalf(float32(rng.NormFloat64() * 0.02))
		src[2*i], src[2*i+1] = byte(h), byte(h>>8)
	}
	dst := make([]float32, n)
	clear(dst)
	for _, dtype := range []tensor.DType{tensor.F16, tensor.BF16} {
		for _, impl := range implementations() {
			b.Run(string(dtype)+"/serial/"+impl.name, func(b *testing.B) {
				defer impl.use()()
				b.SetBytes(2 * n)
				for b.Loop() {
					if err := decodeChunk(dst, dtype, src, true); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(string(dtype)+"/parallel/"+impl.name, func(b *testing.B) {
				defer impl.use()()
				b.SetBytes(2 * n)
				for b.Loop() {
					if err := decodeFloat32(dst, dtype, inMemory(src)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkWeightAccess compares the ways a product can read a stored
// (frozen) weight of a ~1 GiB BF16 checkpoint in the page cache, one tensor
// at a time, the consumer reading every byte:
//
//   - "pread": RawInto into one reused buffer, then the buffer is read; what
//     ops.StoredLinear does, and its memory is one tensor whatever the file.
//   - "mapped-evicted": the tensor read through the file's mapping, its
//     pages then dropped from the process (MADV_DONTNEED), so that, like
//     "pread", the process keeps about one tensor resident; every pass
//     faults the pages in again.
//   - "mapped-resident": the mapping read with its pages left mapped after
//     a first pass, as llama.cpp does: no cost per pass, but the whole file
//     counts in the process's resident memory.
//
// GB/s is file bytes per second.
func BenchmarkWeightAccess(b *testing.B) {
	path, size := benchFile(b, tensor.BF16)
	f, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	largest := int64(0)
	for _, ti := range f.Infos() {
		largest = max(largest, ti.Size())
	}
	buf := make([]byte, largest)
	var sink uint64
	pass := func(mode string) {
		for _, ti := range f.Infos() {
			lo := f.dataStart + ti.Begin
			switch mode {
			case "pread":
				if err := f.RawInto(ti.Name, buf[:ti.Size()]); err != nil {
					b.Fatal(err)
				}
				sink += readEvery(buf[:ti.Size()])
			default:
				sink += readEvery(f.buf[lo : lo+ti.Size()])
				if mode == "mapped-evicted" {
					evictRange(f.buf, lo, lo+ti.Size())
				}
			}
		}
	}
	for _, mode := range []string{"pread", "mapped-evicted", "mapped-resident"} {
		b.Run(mode, func(b *testing.B) {
			pass(mode) // the page cache filled, buffers touched
			b.SetBytes(size)
			for b.Loop() {
				pass(mode)
			}
			evictRange(f.buf, 0, int64(len(f.buf)))
		})
	}
	if sink == 1 {
		b.Log(sink) // keeps the reads
	}
}

// readEvery sums p eight bytes at a time, reading every byte once.
func readEvery(p []byte) uint64 {
	var s uint64
	for len(p) >= 64 {
		s += binary.LittleEndian.Uint64(p) ^ binary.LittleEndian.Uint64(p[8:]) ^
			binary.LittleEndian.Uint64(p[16:]) ^ binary.LittleEndian.Uint64(p[24:]) ^
			binary.LittleEndian.Uint64(p[32:]) ^ binary.LittleEndian.Uint64(p[40:]) ^
			binary.LittleEndian.Uint64(p[48:]) ^ binary.LittleEndian.Uint64(p[56:])
		p = p[64:]
	}
	for _, c := range p {
		s += uint64(c)
	}
	return s
}
