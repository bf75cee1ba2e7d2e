package gguf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A written file reads back: metadata of every type, tensors of float and
// quantized types at aligned offsets, values equal to the quantizer's.
func TestWriteReadBack(t *testing.T) {
	src := make([]float32, 4*64)
	for i := range src {
		src[i] = float32(i%17) - 8.5 + float32(i)*0.01
	}
	var ts []WriteTensor
	for _, typ := range []GGMLType{TypeF32, TypeF16, TypeBF16, TypeQ8_0, TypeQ4_0, TypeQ4_K, TypeQ6_K} {
		shape := []int{4, 64}
		if typ.BlockSize() == 256 {
			shape = []int{1, 256}
		}
		data, err := Quantize(typ, src)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, WriteTensor{Name: "t." + typ.String(), Shape: shape, Type: typ, Data: data})
	}
	kvs := []KV{
		{"general.architecture", "llama"}, {"u8", uint8(7)}, {"i32", int32(-3)}, {"f32", float32(1.5)},
		{"b", true}, {"u64", uint64(1 << 40)}, {"f64", 2.25}, {"strs", []string{"a", "bc"}},
		{"f32s", []float32{1, 2}}, {"i32s", []int32{-1, 5}}, {"bools", []bool{true, false}},
	}
	path := filepath.Join(t.TempDir(), "w.gguf")
	if err := Write(path, kvs, ts); err != nil {
		t.Fatal(err)
	}
	// The same tensors produced lazily, in order, give the same bytes.
	lazy := make([]WriteTensor, len(ts))
	next := 0
	for i, wt := range ts {
		lazy[i] = WriteTensor{Name: wt.Name, Shape: wt.Shape, Type: wt.Type, Source: func() ([]byte, error) {
			if next != i {
				return nil, fmt.Errorf("source %d called after %d sources", i, next)
			}
			next++
			return wt.Data, nil
		}}
	}
	lazyPath := filepath.Join(t.TempDir(), "lazy.gguf")
	if err := Write(lazyPath, kvs, lazy); err != nil {
		t.Fatal(err)
	}
	if a, b := readFile(t, path), readFile(t, lazyPath); !bytes.Equal(a, b) {
		t.Fatalf("lazily produced tensors wrote %d bytes that differ from the eager %d", len(b), len(a))
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, kv := range kvs {
		v, err := f.Value(kv.Key)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := v.String(), (Value{}).String(); got == want {
			t.Errorf("%s: empty value", kv.Key)
		}
	}
	if s, _ := f.String("general.architecture"); s != "llama" {
		t.Errorf("architecture %q", s)
	}
	for _, wt := range ts {
		ti, ok := f.TensorInfo(wt.Name)
		if !ok || ti.Type != wt.Type || ti.Offset%uint64(f.Alignment()) != 0 {
			t.Fatalf("%s: info %+v", wt.Name, ti)
		}
		got, _, err := f.Float32(wt.Name)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, len(got))
		if err := Dequantize(wt.Type, want, wt.Data); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s[%d] = %v, quantizer's %v", wt.Name, i, got[i], want[i])
			}
		}
	}
}

func TestWriteRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		kvs []KV
		ts  []WriteTensor
		msg string
	}{
		"short data":       {nil, []WriteTensor{{Name: "x", Shape: []int{2, 32}, Type: TypeQ8_0, Data: make([]byte, 10)}}, "bytes"},
		"blocks":           {nil, []WriteTensor{{Name: "x", Shape: []int{1, 20}, Type: TypeQ8_0, Data: make([]byte, 34)}}, "do not divide"},
		"duplicate tensor": {nil, []WriteTensor{{Name: "x", Shape: []int{1}, Type: TypeF32, Data: make([]byte, 4)}, {Name: "x", Shape: []int{1}, Type: TypeF32, Data: make([]byte, 4)}}, "twice"},
		"short source": {nil, []WriteTensor{{Name: "x", Shape: []int{1}, Type: TypeF32, Data: make([]byte, 4)},
			{Name: "y", Shape: []int{2, 32}, Type: TypeQ8_0, Source: func() ([]byte, error) { return make([]byte, 10), nil }}}, `tensor "y": 10 bytes produced`},
		"source fails":  {nil, []WriteTensor{{Name: "x", Shape: []int{1}, Type: TypeF32, Source: func() ([]byte, error) { return nil, errors.New("disk gone") }}}, `tensor "x": disk gone`},
		"duplicate key": {[]KV{{"a", uint32(1)}, {"a", uint32(2)}}, nil, "twice"},
		"bad value":     {[]KV{{"a", struct{}{}}}, nil, "not a GGUF"},
	} {
		path := filepath.Join(dir, name+".gguf")
		err := Write(path, tc.kvs, tc.ts)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want %q", name, err, tc.msg)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a failed write left %s (%v)", name, path, err)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
