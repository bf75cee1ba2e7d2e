package safetensors

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// benchShapes returns Llama-like F16 tensors totalling at most target bytes:
// an embedding, then decoder layers (4 attention projections, 3 MLP
// projections, 2 norms), then the final norm. The hidden size shrinks for
// small targets so a few layers still fit.
func benchShapes(target int64) []Descriptor {
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
		out = append(out, Descriptor{name, tensor.F16, shape})
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

// benchFile returns a cached F16 checkpoint of about SURGEON_BENCH_BYTES
// (default 1 GiB) in the OS temp folder, writing it on first use.
func benchFile(b *testing.B) (string, int64) {
	b.Helper()
	target := int64(1 << 30)
	if s := os.Getenv("SURGEON_BENCH_BYTES"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 1<<20 {
			b.Fatalf("SURGEON_BENCH_BYTES=%q: want an integer >= 1048576", s)
		}
		target = v
	}
	descs := benchShapes(target)
	dir := filepath.Join(os.TempDir(), "surgeon-bench")
	path := filepath.Join(dir, fmt.Sprintf("f16-llama-%d.safetensors", target))
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

// BenchmarkReadF16ToF32 measures Open plus F16 -> float32 decoding of every
// tensor of a ~1 GiB Llama-shaped checkpoint (file bytes per second; the
// file is in the page cache after the first run). "alloc" uses Float32,
// which allocates each result; "reuse" decodes into one recycled buffer.
func BenchmarkReadF16ToF32(b *testing.B) {
	path, size := benchFile(b)
	for _, mode := range []string{"alloc", "reuse"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(size)
			var buf []float32
			for b.Loop() {
				f, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				for _, name := range f.Names() {
					info, _ := f.Info(name)
					if mode == "alloc" {
						if _, err := f.Float32(name); err != nil {
							b.Fatal(err)
						}
						continue
					}
					n := info.NumElements()
					if cap(buf) < n {
						buf = make([]float32, n)
					}
					if err := f.Float32Into(name, buf[:n]); err != nil {
						b.Fatal(err)
					}
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

// BenchmarkDecodeF16 measures the F16 -> float32 kernel on an in-memory
// buffer: "serial" is one goroutine, "parallel" the split used by Float32.
func BenchmarkDecodeF16(b *testing.B) {
	const n = 1 << 24
	src := make([]byte, 2*n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		h := tensor.Float32ToHalf(float32(rng.NormFloat64() * 0.02))
		src[2*i], src[2*i+1] = byte(h), byte(h>>8)
	}
	dst := make([]float32, n)
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(2 * n)
		for b.Loop() {
			f16ToF32(dst, src)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(2 * n)
		for b.Loop() {
			if err := decodeFloat32(dst, tensor.F16, src); err != nil {
				b.Fatal(err)
			}
		}
	})
}
