package safetensors

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// readAll opens every tensor of r, decodes the numeric ones, and returns the
// number of tensors; it fails the test on any error.
func readAll(t *testing.T, r Reader) int {
	t.Helper()
	for _, name := range r.Names() {
		tt, err := r.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if checkFloat32(tt.DType) != nil {
			continue
		}
		v, err := r.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != tt.NumElements() {
			t.Fatalf("tensor %q: %d values for shape %v", name, len(v), tt.Shape)
		}
	}
	return r.Len()
}

// roundTrip rewrites every tensor of f with WriteFile and checks the copy has
// the same tensors, metadata and, since file order is kept, the same data
// section.
func roundTrip(t *testing.T, f *File) {
	t.Helper()
	var ts []tensor.Tensor
	for _, n := range f.Names() {
		tt, err := f.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tt)
	}
	p := filepath.Join(t.TempDir(), "copy.safetensors")
	if err := WriteFile(p, ts, f.Metadata()); err != nil {
		t.Fatal(err)
	}
	g, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if !slices.Equal(g.Names(), f.Names()) || !mapsEqual(g.Metadata(), f.Metadata()) {
		t.Fatalf("round trip changed names or metadata")
	}
	if !bytes.Equal(g.buf[g.dataStart:], f.buf[f.dataStart:]) {
		t.Fatal("round trip changed the data section")
	}
	if g.dataStart%8 != 0 {
		t.Errorf("data section starts at %d, not 8-byte aligned", g.dataStart)
	}
	for _, n := range f.Names() {
		a, _ := f.Info(n)
		b, _ := g.Info(n)
		if a.DType != b.DType || !slices.Equal(a.Shape, b.Shape) || a.Begin != b.Begin || a.End != b.End {
			t.Fatalf("tensor %q: %+v became %+v", n, a, b)
		}
	}
}

func mustOpen(t *testing.T, path string) *File {
	t.Helper()
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	return f
}

func mustFloat32(t *testing.T, r Reader, name string) []float32 {
	t.Helper()
	v, err := r.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// jlDTypes maps gendata.py's key prefixes to safetensors dtypes.
var jlDTypes = map[string]tensor.DType{
	"float16": tensor.F16, "float32": tensor.F32, "float64": tensor.F64, "bfloat16": tensor.BF16,
	"bool": tensor.Bool, "uint8": tensor.U8, "int8": tensor.I8, "int16": tensor.I16,
	"int32": tensor.I32, "int64": tensor.I64, "float8_e4m3fn": tensor.F8E4M3, "float8_e5m2": tensor.F8E5M2,
}

// jlKey splits "int16_357" into its dtype and shape [3 5 7].
func jlKey(t *testing.T, key string) (tensor.DType, []int) {
	i := strings.LastIndexByte(key, '_')
	d, ok := jlDTypes[key[:i]]
	if !ok {
		t.Fatalf("unexpected tensor %q", key)
	}
	var shape []int
	for _, c := range key[i+1:] {
		shape = append(shape, int(c-'0'))
	}
	return d, shape
}

func TestFixturesSafetensorsJL(t *testing.T) {
	dir := fixturesDir(t, "safetensors-jl-fixtures")
	ref := mustOpen(t, filepath.Join(dir, "non_sharded", "model.safetensors"))

	t.Run("numpy arange", func(t *testing.T) {
		// gendata.py: np.arange(prod(shape)) per dtype; bool is arange % 2.
		f := mustOpen(t, filepath.Join(dir, "non_sharded", "model.numpy.safetensors"))
		if f.Len() != 27 {
			t.Errorf("%d tensors, want 27 (9 dtypes x 3 shapes)", f.Len())
		}
		for _, name := range f.Names() {
			d, shape := jlKey(t, name)
			info, _ := f.Info(name)
			if info.DType != d || !slices.Equal(info.Shape, shape) {
				t.Errorf("%s: %s%v, want %s%v", name, info.DType, info.Shape, d, shape)
			}
			for i, v := range mustFloat32(t, f, name) {
				want := float32(i)
				if d == tensor.Bool {
					want = float32(i % 2)
				}
				if v != want {
					t.Fatalf("%s[%d] = %v, want %v", name, i, v, want)
				}
			}
		}
		roundTrip(t, f)
	})

	t.Run("torch dtypes", func(t *testing.T) {
		// gendata.py overwrites the numpy keys with torch tensors: bools
		// from randint(0, 1) (all false), ints from randint(0, 100), floats
		// from randn, F8 cast from randn.
		if ref.Len() != 36 {
			t.Errorf("%d tensors, want 36 (12 dtypes x 3 shapes)", ref.Len())
		}
		for _, name := range ref.Names() {
			d, shape := jlKey(t, name)
			tt, err := ref.Tensor(name)
			if err != nil {
				t.Fatal(err)
			}
			if tt.DType != d || !slices.Equal(tt.Shape, shape) {
				t.Errorf("%s: %s%v, want %s%v", name, tt.DType, tt.Shape, d, shape)
			}
			if d == tensor.F8E4M3 || d == tensor.F8E5M2 {
				if len(tt.Data) != tt.NumElements() {
					t.Errorf("%s: %d raw bytes", name, len(tt.Data))
				}
				if _, err := ref.Float32(name); err == nil {
					t.Errorf("%s: Float32 of F8 should fail", name)
				}
				continue
			}
			for i, v := range mustFloat32(t, ref, name) {
				switch {
				case d == tensor.Bool && v != 0,
					strings.Contains(name, "int") && (v < 0 || v >= 100 || v != float32(int(v))),
					d.IsFloat() && !(math.Abs(float64(v)) < 10): // randn: NaN, Inf or 10 sigma is wrong
					t.Fatalf("%s[%d] = %v out of the generated range", name, i, v)
				}
			}
		}
		if got := mustFloat32(t, ref, "float32_3"); !slices.Equal(got, []float32{0.01330372504889965, 0.581986665725708, 0.4747563302516937}) {
			t.Errorf("float32_3 = %v", got)
		}
		if got := mustFloat32(t, ref, "int64_3"); !slices.Equal(got, []float32{64, 64, 30}) {
			t.Errorf("int64_3 = %v", got)
		}
		// bfloat16_3 bytes 53bf bfbe 583f; float8_e4m3fn_3 bytes ae a9 b8.
		want := []float32{math.Float32frombits(0xbf53 << 16), math.Float32frombits(0xbebf << 16), math.Float32frombits(0x3f58 << 16)}
		if got := mustFloat32(t, ref, "bfloat16_3"); !slices.Equal(got, want) {
			t.Errorf("bfloat16_3 = %v, want %v", got, want)
		}
		if tt, _ := ref.Tensor("float8_e4m3fn_3"); !bytes.Equal(tt.Data, []byte{0xae, 0xa9, 0xb8}) {
			t.Errorf("float8_e4m3fn_3 bytes = %x", tt.Data)
		}
		if got := ref.Metadata(); len(got) != 0 {
			t.Errorf("metadata = %v, want none", got)
		}
		roundTrip(t, ref)
	})

	t.Run("with metadata", func(t *testing.T) {
		f := mustOpen(t, filepath.Join(dir, "non_sharded", "model.with_metadata.safetensors"))
		if got := f.Metadata(); !mapsEqual(got, map[string]string{"test": "metadata", "version": "2.2"}) {
			t.Errorf("metadata = %v", got)
		}
		sameTensors(t, f, ref)
		roundTrip(t, f)
	})

	t.Run("sharded", func(t *testing.T) {
		m, err := OpenModel(filepath.Join(dir, "sharded"))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if len(m.Shards()) != 6 {
			t.Errorf("%d shards, want 6", len(m.Shards()))
		}
		if got := m.Metadata(); !mapsEqual(got, map[string]string{"format": "pt"}) {
			t.Errorf("metadata = %v", got)
		}
		if m.Index() == nil || m.Index().Metadata["total_size"] != float64(4305) {
			t.Errorf("index = %+v", m.Index())
		}
		// The shards hold the same tensors as non_sharded/model.safetensors.
		sameTensors(t, m, ref)
		var total int64
		for _, n := range m.Names() {
			info, _ := m.Info(n)
			total += info.Size()
			sh, err := m.Shard(n)
			if err != nil || filepath.Base(sh.Path()) != m.Index().WeightMap[n] {
				t.Errorf("tensor %s in %v, index says %s (%v)", n, sh, m.Index().WeightMap[n], err)
			}
		}
		if total != 4305 {
			t.Errorf("total tensor bytes %d, index total_size 4305", total)
		}
		if got := readAll(t, m); got != 36 {
			t.Errorf("read %d tensors", got)
		}
		for _, sh := range m.Shards() {
			roundTrip(t, sh)
		}
	})

	t.Run("OpenModel single", func(t *testing.T) {
		m, err := OpenModel(filepath.Join(dir, "non_sharded"))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if m.Index() != nil || len(m.Shards()) != 1 || filepath.Base(m.Shards()[0].Path()) != SingleFileName {
			t.Errorf("folder with model.safetensors opened as %v", m.Shards())
		}
		sameTensors(t, m, ref)
	})
}

// sameTensors checks that a and b have the same set of tensors, with equal
// dtype, shape and bytes.
func sameTensors(t *testing.T, a, b Reader) {
	t.Helper()
	an, bn := slices.Sorted(slices.Values(a.Names())), slices.Sorted(slices.Values(b.Names()))
	if !slices.Equal(an, bn) {
		t.Fatalf("names differ:\n%q\n%q", an, bn)
	}
	for _, n := range an {
		x, err := a.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		y, err := b.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		if x.DType != y.DType || !slices.Equal(x.Shape, y.Shape) || !bytes.Equal(x.Data, y.Data) {
			t.Errorf("tensor %s differs", n)
		}
	}
}

func TestFixturesHFSamples(t *testing.T) {
	dir := fixturesDir(t, "hf-safetensors-samples")
	// generate.py: one file per numpy type code, each tensor [6] =
	// range(-3, 3), metadata {"test": "a"}; unsigned types wrap around.
	files := map[string]tensor.DType{
		"B": tensor.U8, "H": tensor.U16, "I": tensor.U32, "b": tensor.I8, "d": tensor.F64,
		"e": tensor.F16, "f": tensor.F32, "h": tensor.I16, "i": tensor.I32,
	}
	want := func(d tensor.DType) []float32 {
		out := make([]float32, 6)
		for i := range out {
			v := float64(i - 3)
			if v < 0 && strings.HasPrefix(string(d), "U") {
				v += math.Ldexp(1, 8*d.Size())
			}
			out[i] = float32(v)
		}
		return out
	}
	overall := mustOpen(t, filepath.Join(dir, "overall.safetensors"))
	if overall.Len() != len(files) {
		t.Errorf("overall has %d tensors, want %d", overall.Len(), len(files))
	}
	for code, d := range files {
		t.Run(code, func(t *testing.T) {
			f := mustOpen(t, filepath.Join(dir, code+".safetensors"))
			if !slices.Equal(f.Names(), []string{code}) {
				t.Fatalf("names %q", f.Names())
			}
			if !mapsEqual(f.Metadata(), map[string]string{"test": "a"}) {
				t.Errorf("metadata %v", f.Metadata())
			}
			info, _ := f.Info(code)
			if info.DType != d || !slices.Equal(info.Shape, []int{6}) {
				t.Errorf("%s%v, want %s[6]", info.DType, info.Shape, d)
			}
			if got := mustFloat32(t, f, code); !slices.Equal(got, want(d)) {
				t.Errorf("values %v, want %v", got, want(d))
			}
			if got := mustFloat32(t, overall, code); !slices.Equal(got, want(d)) {
				t.Errorf("overall values %v, want %v", got, want(d))
			}
			roundTrip(t, f)
		})
	}
	roundTrip(t, overall)
}

func TestFixturesCandle(t *testing.T) {
	dir := fixturesDir(t, "candle-fixtures")
	tests := []struct {
		file  string
		check func(t *testing.T, f *File)
	}{
		{"mel_filters.safetensors", func(t *testing.T, f *File) {
			info, _ := f.Info("mel_80")
			if info.DType != tensor.F32 || !slices.Equal(info.Shape, []int{80, 201}) {
				t.Errorf("mel_80 is %s%v", info.DType, info.Shape)
			}
			v := mustFloat32(t, f, "mel_80")
			var sum float64
			for _, x := range v {
				sum += float64(x)
			}
			if v[1] != 0.02486259490251541 || math.Abs(sum-1.999024092387117) > 1e-6 {
				t.Errorf("mel_80[1] = %v, sum = %v", v[1], sum)
			}
		}},
		{"jfk-codes.safetensors", func(t *testing.T, f *File) {
			info, _ := f.Info("codes")
			if info.DType != tensor.I64 || !slices.Equal(info.Shape, []int{1, 2, 828}) {
				t.Errorf("codes is %s%v", info.DType, info.Shape)
			}
			if v := mustFloat32(t, f, "codes"); !slices.Equal(v[:4], []float32{865, 62, 408, 408}) {
				t.Errorf("codes[:4] = %v", v[:4])
			}
		}},
		{"voices.safetensors", func(t *testing.T, f *File) {
			if !slices.Equal(f.Names(), []string{"tokens", "mask"}) {
				t.Errorf("names %q", f.Names())
			}
			var ones int
			for _, x := range mustFloat32(t, f, "mask") {
				if x != 0 && x != 1 {
					t.Fatalf("mask value %v", x)
				}
				ones += int(x)
			}
			if ones != 24294 {
				t.Errorf("mask has %d ones, want 24294", ones)
			}
			tok, _ := f.Tensor("tokens")
			if tok.DType != tensor.I64 || !slices.Equal(tok.Shape, []int{1, 982, 33}) {
				t.Errorf("tokens is %s%v", tok.DType, tok.Shape)
			}
			if mx := slices.Max(mustFloat32(t, f, "tokens")); mx != 128001 {
				t.Errorf("max token %v, want 128001", mx)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			f := mustOpen(t, filepath.Join(dir, tc.file))
			readAll(t, f)
			tc.check(t, f)
			roundTrip(t, f)
		})
	}
}

func TestFixturesCloneofsimoLoRAs(t *testing.T) {
	dir := fixturesDir(t, "cloneofsimo-sd-loras")
	tests := []struct {
		file   string
		n      int
		dtypes []tensor.DType
		meta   map[string]string
	}{
		{"analog_svd_rank4.safetensors", 384, []tensor.DType{tensor.F16}, map[string]string{"text_encoder:0:rank": "4", "text_encoder": `["CLIPAttention"]`}},
		{"lora_disney.safetensors", 386, []tensor.DType{tensor.F32}, map[string]string{"<s1>": "<embed>", "text_encoder:0:rank": "1"}},
		{"lora_disney_inpainting.safetensors", 386, []tensor.DType{tensor.F16, tensor.F32}, map[string]string{"<s2>": "<embed>"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			f := mustOpen(t, filepath.Join(dir, tc.file))
			if got := readAll(t, f); got != tc.n {
				t.Errorf("%d tensors, want %d", got, tc.n)
			}
			meta := f.Metadata()
			for k, v := range tc.meta {
				if meta[k] != v {
					t.Errorf("metadata[%q] = %q, want %q", k, meta[k], v)
				}
			}
			seen := map[tensor.DType]bool{}
			for _, n := range f.Names() {
				info, _ := f.Info(n)
				seen[info.DType] = true
				for i, v := range mustFloat32(t, f, n) {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("%s[%d] = %v", n, i, v)
					}
				}
				if r := strings.Split(n, ":"); len(r) == 3 && r[2] == "down" {
					rank, _ := strconv.Atoi(meta[r[0]+":"+r[1]+":rank"])
					if info.Shape[0] != rank {
						t.Errorf("%s shape %v, metadata rank %d", n, info.Shape, rank)
					}
				}
			}
			for _, d := range tc.dtypes {
				if !seen[d] {
					t.Errorf("no %s tensor", d)
				}
			}
			if len(seen) != len(tc.dtypes) {
				t.Errorf("dtypes %v, want %v", seen, tc.dtypes)
			}
			roundTrip(t, f)
		})
	}
	t.Run("F16 values", func(t *testing.T) {
		f := mustOpen(t, filepath.Join(dir, "analog_svd_rank4.safetensors"))
		got := mustFloat32(t, f, "text_encoder:0:down")
		if want := []float32{-0.0098419189453125, 0.0343017578125, 0.054168701171875}; !slices.Equal(got[:3], want) {
			t.Errorf("text_encoder:0:down[:3] = %v, want %v", got[:3], want)
		}
	})
}

func TestFixturePEFTAdapter(t *testing.T) {
	dir := fixturesDir(t, "peft-lora-gpt2-smartreview")
	for _, path := range []string{filepath.Join(dir, "adapter_model.safetensors"), dir} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			// The folder form exercises OpenModel's single *.safetensors rule.
			m, err := OpenModel(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if got := readAll(t, m); got != 24 {
				t.Errorf("%d tensors, want 24", got)
			}
			if !mapsEqual(m.Metadata(), map[string]string{"format": "pt"}) {
				t.Errorf("metadata %v", m.Metadata())
			}
			for l := range 12 {
				p := "base_model.model.transformer.h." + strconv.Itoa(l) + ".attn.c_attn."
				a, errA := m.Info(p + "lora_A.weight")
				b, errB := m.Info(p + "lora_B.weight")
				if errA != nil || errB != nil || a.DType != tensor.F32 || !slices.Equal(a.Shape, []int{8, 768}) || !slices.Equal(b.Shape, []int{2304, 8}) {
					t.Errorf("layer %d: A %+v %v, B %+v %v", l, a, errA, b, errB)
				}
			}
			a := mustFloat32(t, m, "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight")
			b := mustFloat32(t, m, "base_model.model.transformer.h.11.attn.c_attn.lora_B.weight")
			if !slices.Equal(a[:3], []float32{-0.05286478251218796, 0.03012789599597454, -0.05511893332004547}) ||
				!slices.Equal(b[:3], []float32{-0.004582348745316267, -0.0014876219211146235, 0.002317032078281045}) {
				t.Errorf("A[:3] = %v, B[:3] = %v", a[:3], b[:3])
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "checkpoint-2500")); err == nil {
		m, err := OpenModel(filepath.Join(dir, "checkpoint-2500"))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, m)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
