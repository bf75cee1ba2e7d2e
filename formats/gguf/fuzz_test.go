package gguf

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

var genCorpus = flag.Bool("gencorpus", false, "rewrite the FuzzParse seed corpus in testdata/fuzz/FuzzParse")

// fuzzSeeds are small valid and invalid files for FuzzParse.
func fuzzSeeds() map[string][]byte {
	valid := testFile{
		kvs: []testKV{{"general.name", "x"}, {"n", uint32(2)}, {"a", []int32{1, -1}}, {"nest", [][]string{{"p"}, {}}}},
		tensors: []testTensor{
			{name: "a", dims: []uint64{2, 2}, typ: TypeF32, data: f32Bytes(1, 2, 3, 4)},
			{name: "h", dims: []uint64{2}, typ: TypeF16, data: []byte{0, 0x3c, 0, 0xc0}},
			{name: "q", dims: []uint64{32}, typ: TypeQ8_0, data: make([]byte, 34)},
		},
	}.bytes()
	allTypes := testFile{version: 2, kvs: []testKV{
		{"u8", uint8(1)}, {"i8", int8(-1)}, {"u16", uint16(2)}, {"i16", int16(-2)},
		{"u32", uint32(3)}, {"i32", int32(-3)}, {"f32", float32(0.5)}, {"b", true},
		{"s", "str"}, {"u64", uint64(4)}, {"i64", int64(-4)}, {"f64", 0.25},
	}}.bytes()
	aligned := testFile{align: 8, kvs: []testKV{{"general.alignment", uint32(8)}}, tensors: []testTensor{
		{name: "b", dims: []uint64{3}, typ: TypeBF16, data: []byte{0x80, 0x3f, 0, 0x40, 0, 0}},
		{name: "c", dims: []uint64{1}, typ: TypeI32, data: []byte{7, 0, 0, 0}},
	}}.bytes()
	llama := tinyLlama().bytes()
	// One small tensor of every dequantizable type, blocks of patterned
	// bytes with finite scales, and a quantized Llama.
	var quant []testTensor
	for i, typ := range dequantOrder {
		bb := typ.BlockBytes()
		data := make([]byte, 2*bb)
		for j := range data {
			data[j] = byte(j*37 + i*11)
		}
		for b := range 2 {
			for _, at := range halfFields[typ] {
				data[b*bb+at], data[b*bb+at+1] = 0x00, 0x3c // 1.0
			}
		}
		quant = append(quant, testTensor{name: "t." + typ.String(), dims: []uint64{uint64(typ.BlockSize()), 2}, typ: typ, data: data})
	}
	src, err := Parse(RandomLlamaForTest(32, 32, 8, 1))
	if err != nil {
		panic(err)
	}
	mix := []GGMLType{TypeQ8_0, TypeQ4_0, TypeQ5_1, TypeIQ4_NL, TypeQ4_1, TypeQ5_0}
	i := 0
	quantLlama, _, err := RequantizeForTest(src, func(ti TensorInfo) GGMLType {
		if len(ti.Dims) != 2 {
			return ti.Type
		}
		i++
		return mix[i%len(mix)]
	})
	if err != nil {
		panic(err)
	}
	return map[string][]byte{
		"quantized":       testFile{tensors: quant}.bytes(),
		"quantized-llama": quantLlama,
		"q-not-divisible": testFile{tensors: []testTensor{{name: "q", dims: []uint64{48}, typ: TypeQ4_0, data: make([]byte, 36)}}}.bytes(),
		"q-unknown-type":  testFile{tensors: []testTensor{{name: "q", dims: []uint64{32}, typ: GGMLType(77), data: make([]byte, 34)}}}.bytes(),
		"q-iq2":           testFile{tensors: []testTensor{{name: "q", dims: []uint64{256}, typ: TypeIQ2_XXS, data: make([]byte, 66)}}}.bytes(),
		"q-overlap":       testFile{tensors: []testTensor{{name: "a", dims: []uint64{256}, typ: TypeQ4_K, data: make([]byte, 144)}, {name: "b", dims: []uint64{32}, typ: TypeQ8_0, data: make([]byte, 34), offset: u64p(96)}}}.bytes(),
		"valid":           valid,
		"all-types-v2":    allTypes,
		"aligned":         aligned,
		"tiny-llama":      llama,
		"truncated":       valid[:len(valid)/2],
		"bad-magic":       append([]byte("GGML"), valid[4:]...),
		"v1":              header(1, 0, 0),
		"big-endian":      header(3<<24, 0, 0),
		"huge-counts":     header(3, 1<<60, 1<<60),
		"huge-array":      cat(header(3, 0, 1), "k", uint32(Array), uint32(Uint32), uint64(1)<<61),
		"five-dims":       cat(header(3, 1, 0), "t", uint32(5), uint64(1), uint64(1), uint64(1), uint64(1), uint64(1), uint32(0), uint64(0)),
		"offset-past":     testFile{tensors: []testTensor{{name: "x", dims: []uint64{1}, typ: TypeF32, data: make([]byte, 4), offset: u64p(1 << 20)}}}.bytes(),
		"dup-tensor":      testFile{tensors: []testTensor{{name: "x", dims: []uint64{1}, typ: TypeF32, data: make([]byte, 4)}, {name: "x", dims: []uint64{1}, typ: TypeF32, data: make([]byte, 4)}}}.bytes(),
		"empty":           {},
	}
}

// TestWriteFuzzCorpus rewrites the seed corpus when run with -gencorpus.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*genCorpus {
		t.Skip("run with -gencorpus to rewrite testdata/fuzz/FuzzParse")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range fuzzSeeds() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzParse checks that no input makes Parse, or anything reading a parsed
// file, panic, and that accepted files keep their promises.
func FuzzParse(f *testing.F) {
	for _, data := range fuzzSeeds() {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		for _, k := range file.Keys() {
			v, _ := file.Value(k)
			_ = v.String()
			_, _ = file.Strings(k)
			_, _ = file.Int32s(k)
			_, _ = file.Float32s(k)
			_, _ = file.Uint64s(k)
			_, _ = file.Uint(k)
			_, _ = file.Float(k)
		}
		end := uint64(file.DataOffset())
		for _, ti := range file.Tensors() {
			raw, err := file.TensorData(ti.Name)
			if err != nil {
				t.Fatalf("TensorData(%q): %v", ti.Name, err)
			}
			if uint64(len(raw)) != ti.Size || (ti.Size > 0 && end+ti.Offset+ti.Size > uint64(len(data))) {
				t.Fatalf("tensor %q: %d bytes, info %+v", ti.Name, len(raw), ti)
			}
			if tt, err := file.Tensor(ti.Name); err == nil {
				if _, err := tt.Float32(); err != nil {
					t.Fatalf("tensor %q: %v", ti.Name, err)
				}
			}
			// Every dequantizable tensor of an accepted file decodes.
			v, _, err := file.Float32(ti.Name)
			if ti.Type.Dequantizable() && (err != nil || uint64(len(v)) != ti.NumElements()) {
				t.Fatalf("tensor %q (%s): %d values, %v", ti.Name, ti.Type, len(v), err)
			}
		}
		_, _ = LlamaConfig(file)
		_, _ = LlamaTensors(file)
		if tok, err := Tokenizer(file); err == nil {
			ids := tok.Encode("Once upon a time, é日本", true)
			_ = tok.Decode(ids)
		}
	})
}

// halfFields are the byte offsets of the fp16 scales in a block of each
// quantized type.
var halfFields = map[GGMLType][]int{
	TypeQ4_0: {0}, TypeQ4_1: {0, 2}, TypeQ5_0: {0}, TypeQ5_1: {0, 2}, TypeQ8_0: {0},
	TypeQ2_K: {80, 82}, TypeQ3_K: {108}, TypeQ4_K: {0, 2}, TypeQ5_K: {0, 2}, TypeQ6_K: {208},
	TypeIQ4_NL: {0}, TypeIQ4_XS: {0},
}

// FuzzQuantize checks that quantizing any float32 values, NaNs and
// infinities included, never panics, gives whole blocks, and that the
// blocks decode.
func FuzzQuantize(f *testing.F) {
	f.Add([]byte{0, 0, 0x80, 0x3f, 0, 0, 0xc0, 0x7f, 0, 0, 0x80, 0x7f})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range dequantOrder {
			bs := typ.BlockSize()
			x := make([]float32, bs)
			for i := range x {
				if len(data) > 0 {
					j := (4 * i) % len(data)
					var w [4]byte
					for k := range w {
						w[k] = data[(j+k)%len(data)]
					}
					x[i] = math.Float32frombits(binary.LittleEndian.Uint32(w[:]))
				}
			}
			q, err := Quantize(typ, x)
			if err != nil || len(q) != typ.BlockBytes() {
				t.Fatalf("%s: %d bytes, %v", typ, len(q), err)
			}
			if err := Dequantize(typ, x, q); err != nil {
				t.Fatalf("%s: %v", typ, err)
			}
		}
	})
}
