package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// dirEntries lists the names in dir, hidden temporary files included.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func specialFloats() []float32 {
	return []float32{
		0, float32(math.Copysign(0, -1)), 1, -1, 0.1, -2.5, 65504, 65520, 1e-8, 6e-5, 5.96e-8,
		math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.Float32frombits(0x7fc00001), 3.14159265, 1 << 20, -1e30,
	}
}

func TestWriterRoundTrip(t *testing.T) {
	vals := specialFloats()
	for i := range 1000 {
		vals = append(vals, float32(math.Sin(float64(i)))*float32(math.Pow(2, float64(i%40-20))))
	}
	tests := []struct {
		dtype  tensor.DType
		encode func(float32) float32 // expected value after the round trip
	}{
		{tensor.F32, func(v float32) float32 { return v }},
		{tensor.F16, func(v float32) float32 { return tensor.HalfToFloat32(tensor.Float32ToHalf(v)) }},
		{tensor.BF16, func(v float32) float32 { return math.Float32frombits(uint32(tensor.Float32ToBF16(v)) << 16) }},
	}
	for _, tc := range tests {
		t.Run(string(tc.dtype), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "rt.safetensors")
			descs := []Descriptor{
				{Name: "w", DType: tc.dtype, Shape: []int{len(vals)}},
				{Name: "empty", DType: tc.dtype, Shape: []int{0, 3}},
				{Name: "s", DType: tc.dtype, Shape: []int{}},
			}
			w, err := Create(p, descs, &Options{Metadata: map[string]string{"format": "pt", "<k>": "a&b"}})
			if err != nil {
				t.Fatal(err)
			}
			// Feed w in uneven pieces.
			for lo := 0; lo < len(vals); lo += 333 {
				if d, ok := w.Next(); !ok || d.Name != "w" {
					t.Fatalf("Next() = %v, %v", d, ok)
				}
				if err := w.WriteFloat32(vals[lo:min(lo+333, len(vals))]); err != nil {
					t.Fatal(err)
				}
			}
			if d, _ := w.Next(); d.Name != "s" {
				t.Fatalf("zero-sized tensor not skipped: Next() = %v", d)
			}
			if err := w.WriteFloat32([]float32{42}); err != nil {
				t.Fatal(err)
			}
			if _, ok := w.Next(); ok {
				t.Fatal("Next() reports a pending tensor after the last one")
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := dirEntries(t, filepath.Dir(p)); !slices.Equal(got, []string{"rt.safetensors"}) {
				t.Errorf("folder holds %q", got)
			}
			f := mustOpen(t, p)
			if f.dataStart%8 != 0 {
				t.Errorf("data section at %d", f.dataStart)
			}
			if !slices.Equal(f.Names(), []string{"w", "empty", "s"}) {
				t.Errorf("names %q", f.Names())
			}
			if !mapsEqual(f.Metadata(), map[string]string{"format": "pt", "<k>": "a&b"}) {
				t.Errorf("metadata %v", f.Metadata())
			}
			got := mustFloat32(t, f, "w")
			for i, v := range vals {
				want := tc.encode(v)
				if math.Float32bits(got[i]) != math.Float32bits(want) && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want))) {
					t.Fatalf("w[%d]: %v (%#x) read back as %v (%#x), want %v", i, v, math.Float32bits(v), got[i], math.Float32bits(got[i]), want)
				}
				if tc.dtype == tensor.F32 && math.Float32bits(got[i]) != math.Float32bits(v) {
					t.Fatalf("F32 not bit-exact at %d", i)
				}
			}
			if s := mustFloat32(t, f, "s"); !slices.Equal(s, []float32{42}) {
				t.Errorf("scalar = %v", s)
			}
			if e := mustFloat32(t, f, "empty"); len(e) != 0 {
				t.Errorf("empty = %v", e)
			}
			if mode, want := fileMode(t, p), createMode(t); mode != want {
				t.Errorf("mode %v, want %v (os.Create's under this umask)", mode, want)
			}
		})
	}
}

// createMode is the mode os.Create gives a new file under the process
// umask, which Create must match.
func createMode(t *testing.T) os.FileMode {
	p := filepath.Join(t.TempDir(), "probe")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return fileMode(t, p)
}

func fileMode(t *testing.T, p string) os.FileMode {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestWriterConversionAccuracy(t *testing.T) {
	// Exactly representable values survive F16/BF16; others round to nearest.
	exact := []float32{0, 1, -2, 0.5, 0.25, 1024, -0.125, 3}
	for _, d := range []tensor.DType{tensor.F16, tensor.BF16} {
		t.Run(string(d), func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, []Descriptor{{"x", d, []int{len(exact)}}, {"y", d, []int{2}}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteFloat32(exact); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteFloat32([]float32{1.0 / 3, 1000.1}); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			f, err := Parse(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if got := mustFloat32(t, f, "x"); !slices.Equal(got, exact) {
				t.Errorf("x = %v", got)
			}
			tol := map[tensor.DType]float64{tensor.F16: 1.0 / 2048, tensor.BF16: 1.0 / 256}[d]
			for i, v := range mustFloat32(t, f, "y") {
				want := []float64{1.0 / 3, 1000.1}[i]
				if rel := math.Abs(float64(v)-want) / want; rel > tol {
					t.Errorf("y[%d] = %v, want %v within %v", i, v, want, tol)
				}
			}
		})
	}
}

func TestWriterRawStreaming(t *testing.T) {
	src := []tensor.Tensor{
		{Name: "a", DType: tensor.U8, Shape: []int{3}, Data: []byte{1, 2, 3}},
		{Name: "b", DType: tensor.I16, Shape: []int{2, 1}, Data: []byte{4, 5, 6, 7}},
		{Name: "c", DType: tensor.F8E4M3, Shape: []int{1}, Data: []byte{8}},
		{Name: "d", DType: tensor.F4, Shape: []int{4}, Data: []byte{9, 10}},
	}
	var descs []Descriptor
	var all []byte
	for _, s := range src {
		descs = append(descs, Descriptor{s.Name, s.DType, s.Shape})
		all = append(all, s.Data...)
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, descs, nil)
	if err != nil {
		t.Fatal(err)
	}
	// io.Copy with a 1-byte reader crosses every tensor boundary.
	if n, err := io.Copy(w, io.LimitReader(oneByteReader{bytes.NewReader(all)}, int64(len(all)))); err != nil || n != int64(len(all)) {
		t.Fatalf("copy: %d, %v", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range src {
		got, _ := f.Tensor(s.Name)
		if !bytes.Equal(got.Data, s.Data) || got.DType != s.DType || !slices.Equal(got.Shape, s.Shape) {
			t.Errorf("%s = %+v", s.Name, got)
		}
	}
}

type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

func TestWriterErrors(t *testing.T) {
	f32 := func(name string, n int) Descriptor { return Descriptor{name, tensor.F32, []int{n}} }
	tests := []struct {
		name  string
		descs []Descriptor
		meta  map[string]string
		write func(w *Writer) error // returns the first error it meets
		want  string
	}{
		{"duplicate names", []Descriptor{f32("a", 1), f32("a", 1)}, nil, nil, "duplicate name"},
		{"reserved name", []Descriptor{f32(MetadataKey, 1)}, nil, nil, "reserved"},
		{"empty name", []Descriptor{f32("", 1)}, nil, nil, "empty name"},
		{"invalid UTF-8 name", []Descriptor{f32("\xff", 1)}, nil, nil, "not valid UTF-8"},
		{"invalid UTF-8 metadata", []Descriptor{f32("a", 1)}, map[string]string{"k": "\xfe"}, nil, "not valid UTF-8"},
		{"unknown dtype", []Descriptor{{"a", "F31", []int{1}}}, nil, nil, "unknown dtype"},
		{"negative shape", []Descriptor{{"a", tensor.F32, []int{-2}}}, nil, nil, "negative dimension"},
		{"overflowing shape", []Descriptor{{"a", tensor.F64, []int{1 << 31, 1 << 31, 4}}}, nil, nil, "overflows"},
		{"too many bytes", []Descriptor{f32("a", 1)}, nil, func(w *Writer) error {
			_, err := w.Write(make([]byte, 5))
			return err
		}, "past the end of the last tensor"},
		{"too few bytes", []Descriptor{f32("a", 2), f32("b", 1)}, nil, func(w *Writer) error {
			_, err := w.Write(make([]byte, 6))
			return err
		}, `tensor "a": 6 of 8 bytes written`},
		{"nothing written", []Descriptor{f32("a", 2)}, nil, func(*Writer) error { return nil }, `tensor "a": 0 of 8 bytes written`},
		{"too many values", []Descriptor{f32("a", 2), f32("b", 2)}, nil, func(w *Writer) error {
			return w.WriteFloat32(make([]float32, 3))
		}, "3 values written but only 2 remain"},
		{"float32 into integer tensor", []Descriptor{{"a", tensor.I32, []int{1}}}, nil, func(w *Writer) error {
			return w.WriteFloat32([]float32{1})
		}, "cannot encode float32 values as I32"},
		{"float32 after partial element", []Descriptor{f32("a", 2)}, nil, func(w *Writer) error {
			if _, err := w.Write([]byte{1}); err != nil {
				return err
			}
			return w.WriteFloat32([]float32{1})
		}, "not a whole number of F32 elements"},
		{"tensor out of order", []Descriptor{f32("a", 1), f32("b", 1)}, nil, func(w *Writer) error {
			return w.WriteTensor(tensor.Tensor{Name: "b", DType: tensor.F32, Shape: []int{1}, Data: make([]byte, 4)})
		}, `tensor "b" written where "a" is expected`},
		{"tensor with wrong shape", []Descriptor{f32("a", 1)}, nil, func(w *Writer) error {
			return w.WriteTensor(tensor.Tensor{Name: "a", DType: tensor.F32, Shape: []int{2}, Data: make([]byte, 8)})
		}, "F32[2] written where F32[1] was declared"},
		{"tensor with short data", []Descriptor{f32("a", 2)}, nil, func(w *Writer) error {
			return w.WriteTensor(tensor.Tensor{Name: "a", DType: tensor.F32, Shape: []int{2}, Data: make([]byte, 7)})
		}, "7 bytes of data, F32[2] needs 8"},
		{"error is sticky", []Descriptor{f32("a", 1)}, nil, func(w *Writer) error {
			_ = w.WriteFloat32(make([]float32, 2))
			return w.WriteFloat32(make([]float32, 1))
		}, "2 values written but only 1 remain"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "out.safetensors")
			w, err := Create(p, tc.descs, &Options{Metadata: tc.meta})
			if err == nil {
				if tc.write == nil {
					t.Fatal("Create accepted invalid descriptors")
				}
				err = tc.write(w)
				if cerr := w.Close(); err == nil {
					err = cerr
				} else if cerr == nil {
					t.Error("Close succeeded after a write error")
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			// Atomicity: a failed write leaves neither the file nor a temp file.
			if got := dirEntries(t, dir); len(got) != 0 {
				t.Errorf("failed write left %q", got)
			}
		})
	}
}

func TestWriterAtomicReplace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "model.safetensors")
	old := []tensor.Tensor{{Name: "old", DType: tensor.U8, Shape: []int{1}, Data: []byte{7}}}
	if err := WriteFile(p, old, nil); err != nil {
		t.Fatal(err)
	}
	// A failed WriteFile keeps the previous file intact.
	bad := []tensor.Tensor{
		{Name: "a", DType: tensor.F32, Shape: []int{1}, Data: make([]byte, 4)},
		{Name: "b", DType: tensor.F32, Shape: []int{4}, Data: make([]byte, 3)},
	}
	if err := WriteFile(p, bad, nil); err == nil || !strings.Contains(err.Error(), `tensor "b": 3 bytes of data`) || !strings.Contains(err.Error(), p) {
		t.Fatalf("WriteFile with bad data: %v", err)
	}
	// An aborted writer too; the temp file exists only while writing.
	w, err := Create(p, []Descriptor{{"x", tensor.F16, []int{2}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFloat32([]float32{1}); err != nil {
		t.Fatal(err)
	}
	if got := dirEntries(t, dir); len(got) != 2 || !strings.HasPrefix(got[0], ".model.safetensors.") || !strings.HasSuffix(got[0], ".tmp") {
		t.Errorf("while writing the folder holds %q", got)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Error("Close after Abort succeeded")
	}
	if got := dirEntries(t, dir); !slices.Equal(got, []string{"model.safetensors"}) {
		t.Errorf("after failures the folder holds %q", got)
	}
	f := mustOpen(t, p)
	if !slices.Equal(f.Names(), []string{"old"}) {
		t.Errorf("previous file damaged: %q", f.Names())
	}
	// Writing into a missing folder fails cleanly.
	if err := WriteFile(filepath.Join(dir, "nope", "x.safetensors"), old, nil); err == nil {
		t.Error("WriteFile into a missing folder succeeded")
	}
}

func TestWriterZeroSizedWriteTensor(t *testing.T) {
	ts := []tensor.Tensor{
		{Name: "z0", DType: tensor.F32, Shape: []int{0}},
		{Name: "a", DType: tensor.U8, Shape: []int{2}, Data: []byte{1, 2}},
		{Name: "z1", DType: tensor.BF16, Shape: []int{2, 0}},
	}
	p := filepath.Join(t.TempDir(), "z.safetensors")
	if err := WriteFile(p, ts, nil); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, p)
	if !slices.Equal(f.Names(), []string{"z0", "a", "z1"}) {
		t.Errorf("names %q", f.Names())
	}
	if err := WriteFile(p, nil, map[string]string{"only": "metadata"}); err != nil {
		t.Fatal(err)
	}
	g := mustOpen(t, p)
	if g.Len() != 0 || g.Metadata()["only"] != "metadata" {
		t.Errorf("empty file: %d tensors, %v", g.Len(), g.Metadata())
	}
}

func testTensors(n int) []tensor.Tensor {
	var ts []tensor.Tensor
	for i := range n {
		vals := make([]float32, 10*(i+1))
		for j := range vals {
			vals[j] = float32(i*1000 + j)
		}
		d := []tensor.DType{tensor.F32, tensor.F16, tensor.BF16}[i%3]
		data, _ := tensor.FromFloat32(d, vals)
		ts = append(ts, tensor.Tensor{Name: "layers." + string(rune('a'+i)) + ".weight", DType: d, Shape: []int{i + 1, 10}, Data: data})
	}
	return ts
}

func TestWriteShardedReadBack(t *testing.T) {
	ts := testTensors(7) // sizes 40, 40, 60, 160, 100, 120, 280 bytes
	meta := map[string]string{"format": "pt"}
	tests := []struct {
		name     string
		maxShard int64
		shards   []string
	}{
		{"unlimited", 0, []string{"model.safetensors"}},
		{"fits", 10000, []string{"model.safetensors"}},
		{"three", 300, []string{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"}},
		{"oversized tensors", 50, []string{
			"model-00001-of-00007.safetensors", "model-00002-of-00007.safetensors", "model-00003-of-00007.safetensors",
			"model-00004-of-00007.safetensors", "model-00005-of-00007.safetensors", "model-00006-of-00007.safetensors",
			"model-00007-of-00007.safetensors"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteSharded(dir, "model", ts, meta, tc.maxShard); err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(tc.shards)
			if len(tc.shards) > 1 {
				want = append(want, IndexFileName)
				checkIndex(t, filepath.Join(dir, IndexFileName), ts, tc.shards)
			}
			slices.Sort(want)
			if got := dirEntries(t, dir); !slices.Equal(got, want) {
				t.Errorf("folder holds %q, want %q", got, want)
			}
			m, err := OpenModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var names []string
			for _, x := range ts {
				names = append(names, x.Name)
				got, err := m.Tensor(x.Name)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Data, x.Data) || got.DType != x.DType || !slices.Equal(got.Shape, x.Shape) {
					t.Errorf("tensor %s differs", x.Name)
				}
				want, err := x.Float32()
				if err != nil {
					t.Fatal(err)
				}
				if v := mustFloat32(t, m, x.Name); !slices.Equal(v, want) {
					t.Errorf("%s values %v, want %v", x.Name, v, want)
				}
			}
			if !slices.Equal(m.Names(), names) {
				t.Errorf("Names() = %q, want %q", m.Names(), names)
			}
			if len(m.Shards()) != len(tc.shards) || !mapsEqual(m.Metadata(), meta) {
				t.Errorf("%d shards, metadata %v", len(m.Shards()), m.Metadata())
			}
		})
	}
}

func checkIndex(t *testing.T, path string, ts []tensor.Tensor, shards []string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Metadata  map[string]json.RawMessage `json:"metadata"`
		WeightMap map[string]string          `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	var total int
	used := map[string]bool{}
	for _, x := range ts {
		total += len(x.Data)
		used[idx.WeightMap[x.Name]] = true
	}
	if string(idx.Metadata["total_size"]) != strings.TrimSpace(string(must(json.Marshal(total)))) || len(idx.WeightMap) != len(ts) {
		t.Errorf("index metadata %s, %d names", idx.Metadata, len(idx.WeightMap))
	}
	for _, s := range shards {
		if !used[s] {
			t.Errorf("shard %s unused by the weight map", s)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestWriteShardedReplacesPreviousSave(t *testing.T) {
	dir := t.TempDir()
	ts := testTensors(7)
	other := filepath.Join(dir, "config.json")
	if err := os.WriteFile(other, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteSharded(dir, "model", ts, nil, 50); err != nil {
		t.Fatal(err)
	}
	if err := WriteSharded(dir, "model", ts, nil, 300); err != nil {
		t.Fatal(err)
	}
	want := []string{"config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", IndexFileName}
	if got := dirEntries(t, dir); !slices.Equal(got, want) {
		t.Errorf("after re-sharding: %q", got)
	}
	if err := WriteSharded(dir, "model", ts, nil, 0); err != nil {
		t.Fatal(err)
	}
	if got := dirEntries(t, dir); !slices.Equal(got, []string{"config.json", SingleFileName}) {
		t.Errorf("after a single-file save: %q", got)
	}
	if err := WriteSharded(dir, "../x", ts, nil, 0); err == nil {
		t.Error("basename with a path separator accepted")
	}
	bad := append(slices.Clone(ts), tensor.Tensor{Name: "bad", DType: tensor.F32, Shape: []int{2}, Data: []byte{1}})
	if err := WriteSharded(dir, "model", bad, nil, 50); err == nil || !strings.Contains(err.Error(), `tensor "bad"`) {
		t.Errorf("bad tensor: %v", err)
	}
	if got := dirEntries(t, dir); !slices.Equal(got, []string{"config.json", SingleFileName}) {
		t.Errorf("a rejected save touched the folder: %q", got)
	}
}

func TestOpenModelErrors(t *testing.T) {
	one := func(name string) []tensor.Tensor {
		return []tensor.Tensor{{Name: name, DType: tensor.U8, Shape: []int{1}, Data: []byte{1}}}
	}
	tests := []struct {
		name  string
		files map[string][]tensor.Tensor
		index string
		want  string
	}{
		{"empty folder", nil, "", "no model.safetensors"},
		{"ambiguous folder", map[string][]tensor.Tensor{"a.safetensors": one("a"), "b.safetensors": one("b")}, "", "2 *.safetensors files (a.safetensors, b.safetensors)"},
		{"missing shard", map[string][]tensor.Tensor{"s1.safetensors": one("a")}, `{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}`, `shard "s2.safetensors"`},
		{"name missing from shard", map[string][]tensor.Tensor{"s1.safetensors": one("a")}, `{"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}}`, `tensor "b" listed in shard "s1.safetensors" is missing`},
		{"tensor in two shards", map[string][]tensor.Tensor{"s1.safetensors": one("a"), "s2.safetensors": one("a")}, `{"weight_map":{"a":"s1.safetensors","x":"s2.safetensors"}}`, `tensor "a" is in both`},
		{"wrong shard", map[string][]tensor.Tensor{"s1.safetensors": one("a"), "s2.safetensors": one("b")}, `{"weight_map":{"a":"s2.safetensors","b":"s2.safetensors","z":"s1.safetensors"}}`, `tensor "a" listed in shard "s2.safetensors" is in`},
		{"shard outside folder", nil, `{"weight_map":{"a":"../s1.safetensors"}}`, "outside the folder"},
		{"absolute shard", nil, `{"weight_map":{"a":"/etc/passwd"}}`, "outside the folder"},
		{"empty weight map", nil, `{"metadata":{}}`, "empty or missing weight_map"},
		{"index not JSON", nil, `{`, "unexpected end of JSON"},
		{"corrupt shard", map[string][]tensor.Tensor{}, `{"weight_map":{"a":"bad.safetensors"}}`, "shorter than the 8-byte"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, ts := range tc.files {
				if err := WriteFile(filepath.Join(dir, name), ts, nil); err != nil {
					t.Fatal(err)
				}
			}
			if tc.index != "" {
				if err := os.WriteFile(filepath.Join(dir, IndexFileName), []byte(tc.index), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.name == "corrupt shard" {
				if err := os.WriteFile(filepath.Join(dir, "bad.safetensors"), []byte{1}, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, err := OpenModel(dir)
			if err == nil {
				m.Close()
				t.Fatal("OpenModel succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	t.Run("missing path", func(t *testing.T) {
		if _, err := OpenModel(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		dir := t.TempDir()
		if err := WriteSharded(dir, "model", one("a"), nil, 0); err != nil {
			t.Fatal(err)
		}
		m, err := OpenModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Tensor("a"); !errors.Is(err, ErrClosed) {
			t.Errorf("Tensor after Close: %v", err)
		}
	})
}
