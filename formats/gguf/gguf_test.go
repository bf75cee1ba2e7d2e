package gguf

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

func mustParse(t *testing.T, data []byte) *File {
	t.Helper()
	f, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

func TestMetadataValueTypes(t *testing.T) {
	tf := testFile{kvs: []testKV{
		{"u8", uint8(200)},
		{"i8", int8(-100)},
		{"u16", uint16(60000)},
		{"i16", int16(-30000)},
		{"u32", uint32(4000000000)},
		{"i32", int32(-2000000000)},
		{"f32", float32(1.5)},
		{"bool", true},
		{"str", "héllo"},
		{"u64", uint64(1) << 63},
		{"i64", int64(-1) << 62},
		{"f64", 2.25},
		{"a.u8", []uint8{1, 2}},
		{"a.i8", []int8{-1, 2}},
		{"a.u16", []uint16{1, 65535}},
		{"a.i16", []int16{-1, 2}},
		{"a.u32", []uint32{7, 8, 9}},
		{"a.i32", []int32{-7, 8}},
		{"a.f32", []float32{0.5, -1}},
		{"a.bool", []bool{true, false}},
		{"a.str", []string{"a", "", "ccc"}},
		{"a.u64", []uint64{1 << 40}},
		{"a.i64", []int64{-5}},
		{"a.f64", []float64{3.5}},
		{"a.empty", []uint32{}},
		{"a.nested", [][]int32{{1, 2}, {}, {3}}},
		{"a.deep", [][][]string{{{"x"}, {"y", "z"}}}},
	}}
	f := mustParse(t, tf.bytes())
	if got := len(f.Keys()); got != len(tf.kvs) {
		t.Fatalf("got %d keys, want %d", got, len(tf.kvs))
	}
	for i, k := range f.Keys() {
		if k != tf.kvs[i].key {
			t.Errorf("key %d = %q, want %q (file order)", i, k, tf.kvs[i].key)
		}
	}

	typeCases := map[string]struct {
		typ, elem ValueType
		val       any
	}{
		"u8":       {Uint8, 0, uint8(200)},
		"i8":       {Int8, 0, int8(-100)},
		"u16":      {Uint16, 0, uint16(60000)},
		"i16":      {Int16, 0, int16(-30000)},
		"u32":      {Uint32, 0, uint32(4000000000)},
		"i32":      {Int32, 0, int32(-2000000000)},
		"f32":      {Float32, 0, float32(1.5)},
		"bool":     {Bool, 0, true},
		"str":      {String, 0, "héllo"},
		"u64":      {Uint64, 0, uint64(1) << 63},
		"i64":      {Int64, 0, int64(-1) << 62},
		"f64":      {Float64, 0, 2.25},
		"a.u8":     {Array, Uint8, []uint8{1, 2}},
		"a.i8":     {Array, Int8, []int8{-1, 2}},
		"a.u16":    {Array, Uint16, []uint16{1, 65535}},
		"a.i16":    {Array, Int16, []int16{-1, 2}},
		"a.u32":    {Array, Uint32, []uint32{7, 8, 9}},
		"a.i32":    {Array, Int32, []int32{-7, 8}},
		"a.f32":    {Array, Float32, []float32{0.5, -1}},
		"a.bool":   {Array, Bool, []bool{true, false}},
		"a.str":    {Array, String, []string{"a", "", "ccc"}},
		"a.u64":    {Array, Uint64, []uint64{1 << 40}},
		"a.i64":    {Array, Int64, []int64{-5}},
		"a.f64":    {Array, Float64, []float64{3.5}},
		"a.empty":  {Array, Uint32, []uint32{}},
		"a.nested": {Array, Array, nil},
	}
	for key, want := range typeCases {
		t.Run("type/"+key, func(t *testing.T) {
			v, err := f.Value(key)
			if err != nil {
				t.Fatal(err)
			}
			if v.Type() != want.typ || (want.typ == Array && v.ElemType() != want.elem) {
				t.Fatalf("type %s/%s, want %s/%s", v.Type(), v.ElemType(), want.typ, want.elem)
			}
			if want.val != nil && !reflect.DeepEqual(v.Interface(), want.val) {
				t.Fatalf("value %#v, want %#v", v.Interface(), want.val)
			}
		})
	}

	t.Run("nested", func(t *testing.T) {
		v, _ := f.Array("a.nested")
		inner := v.Interface().([]Value)
		if len(inner) != 3 || inner[1].Len() != 0 || !reflect.DeepEqual(inner[2].Interface(), []int32{3}) {
			t.Fatalf("nested = %v", v)
		}
		d, _ := f.Array("a.deep")
		got := d.Interface().([]Value)[0].Interface().([]Value)[1].Interface()
		if !reflect.DeepEqual(got, []string{"y", "z"}) {
			t.Fatalf("deep = %v", d)
		}
		if s := v.String(); s != "[3]array{[2]int32{1, 2}, [0]int32{}, [1]int32{3}}" {
			t.Errorf("String() = %s", s)
		}
	})

	t.Run("getters", func(t *testing.T) {
		if s, err := f.String("str"); err != nil || s != "héllo" {
			t.Errorf("String = %q, %v", s, err)
		}
		for key, want := range map[string]uint64{"u8": 200, "u16": 60000, "u32": 4000000000, "u64": 1 << 63} {
			if u, err := f.Uint(key); err != nil || u != want {
				t.Errorf("Uint(%s) = %d, %v", key, u, err)
			}
		}
		for key, want := range map[string]int64{"i8": -100, "i16": -30000, "i32": -2000000000, "i64": -1 << 62, "u32": 4000000000} {
			if i, err := f.Int(key); err != nil || i != want {
				t.Errorf("Int(%s) = %d, %v", key, i, err)
			}
		}
		if x, err := f.Float("f32"); err != nil || x != 1.5 {
			t.Errorf("Float(f32) = %v, %v", x, err)
		}
		if x, err := f.Float("f64"); err != nil || x != 2.25 {
			t.Errorf("Float(f64) = %v, %v", x, err)
		}
		if b, err := f.Bool("bool"); err != nil || !b {
			t.Errorf("Bool = %v, %v", b, err)
		}
		if s, err := f.Strings("a.str"); err != nil || !reflect.DeepEqual(s, []string{"a", "", "ccc"}) {
			t.Errorf("Strings = %q, %v", s, err)
		}
		if s, err := f.Float32s("a.f32"); err != nil || !reflect.DeepEqual(s, []float32{0.5, -1}) {
			t.Errorf("Float32s = %v, %v", s, err)
		}
		if s, err := f.Float32s("a.f64"); err != nil || !reflect.DeepEqual(s, []float32{3.5}) {
			t.Errorf("Float32s(f64) = %v, %v", s, err)
		}
		if s, err := f.Int32s("a.i32"); err != nil || !reflect.DeepEqual(s, []int32{-7, 8}) {
			t.Errorf("Int32s = %v, %v", s, err)
		}
		if s, err := f.Int32s("a.u16"); err != nil || !reflect.DeepEqual(s, []int32{1, 65535}) {
			t.Errorf("Int32s(u16) = %v, %v", s, err)
		}
		if s, err := f.Uint64s("a.u32"); err != nil || !reflect.DeepEqual(s, []uint64{7, 8, 9}) {
			t.Errorf("Uint64s = %v, %v", s, err)
		}
	})

	errCases := []struct {
		name string
		call func() error
		is   error
		sub  string
	}{
		{"missing", func() error { _, err := f.String("nope"); return err }, ErrMissingKey, `metadata key "nope"`},
		{"string of int", func() error { _, err := f.String("u32"); return err }, ErrWrongType, `"u32" is uint32, want string`},
		{"uint of negative", func() error { _, err := f.Uint("i8"); return err }, ErrWrongType, "non-negative"},
		{"uint of float", func() error { _, err := f.Uint("f32"); return err }, ErrWrongType, "float32"},
		{"int of huge uint64", func() error { _, err := f.Int("u64"); return err }, ErrWrongType, "int64"},
		{"float of int", func() error { _, err := f.Float("u8"); return err }, ErrWrongType, "uint8"},
		{"bool of string", func() error { _, err := f.Bool("str"); return err }, ErrWrongType, "string"},
		{"strings of ints", func() error { _, err := f.Strings("a.u32"); return err }, ErrWrongType, "array of uint32"},
		{"float32s of string", func() error { _, err := f.Float32s("str"); return err }, ErrWrongType, "array of float32"},
		{"int32s of floats", func() error { _, err := f.Int32s("a.f32"); return err }, ErrWrongType, "array of float32"},
		{"int32s overflow", func() error { _, err := f.Int32s("a.u64"); return err }, ErrWrongType, "element 0"},
		{"uint64s negative", func() error { _, err := f.Uint64s("a.i8"); return err }, ErrWrongType, "negative"},
		{"array of scalar", func() error { _, err := f.Array("u8"); return err }, ErrWrongType, "want array"},
	}
	for _, c := range errCases {
		t.Run("error/"+c.name, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.sub) {
				t.Fatalf("error %v, want %v containing %q", err, c.is, c.sub)
			}
		})
	}
}

func TestVersions(t *testing.T) {
	kvs := []testKV{{"general.architecture", "llama"}}
	tensors := []testTensor{{name: "w", dims: []uint64{2}, typ: TypeF32, data: f32Bytes(1, 2)}}
	for _, v := range []uint32{2, 3} {
		t.Run(string(rune('0'+v)), func(t *testing.T) {
			f := mustParse(t, testFile{version: v, kvs: kvs, tensors: tensors}.bytes())
			if f.Version() != int(v) {
				t.Fatalf("Version() = %d", f.Version())
			}
			got, _, err := f.Float32("w")
			if err != nil || !reflect.DeepEqual(got, []float32{1, 2}) {
				t.Fatalf("w = %v, %v", got, err)
			}
		})
	}
	bad := []struct {
		name    string
		version uint32
		sub     string
	}{
		{"v1", 1, "version 1 is not supported"},
		{"v0", 0, "version 0"},
		{"v4", 4, "GGUF version 4"},
		{"big-endian v3", 3 << 24, "big-endian"},
		{"big-endian v2", 2 << 24, "big-endian"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			data := testFile{kvs: kvs, tensors: tensors}.bytes()
			binary.LittleEndian.PutUint32(data[4:], c.version)
			_, err := Parse(data)
			if err == nil || !strings.Contains(err.Error(), c.sub) {
				t.Fatalf("error %v, want %q", err, c.sub)
			}
		})
	}
}

func TestAlignment(t *testing.T) {
	cases := []struct {
		name  string
		align uint64
		kvs   []testKV
	}{
		{"default", 32, []testKV{{"general.name", "x"}}},
		{"64", 64, []testKV{{"general.name", "x"}, {"general.alignment", uint32(64)}}},
		{"8", 8, []testKV{{"general.alignment", uint32(8)}}},
		{"1", 1, []testKV{{"general.alignment", uint32(1)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tf := testFile{align: c.align, kvs: c.kvs, tensors: []testTensor{
				{name: "a", dims: []uint64{3}, typ: TypeF32, data: f32Bytes(1, 2, 3)},
				{name: "b", dims: []uint64{1}, typ: TypeF32, data: f32Bytes(4)},
			}}
			f := mustParse(t, tf.bytes())
			if f.Alignment() != int(c.align) || f.DataOffset()%int64(c.align) != 0 {
				t.Fatalf("alignment %d, data offset %d", f.Alignment(), f.DataOffset())
			}
			b, _ := f.TensorInfo("b")
			if b.Offset != alignUp(12, c.align) {
				t.Errorf("b offset %d", b.Offset)
			}
			if got, _, err := f.Float32("b"); err != nil || got[0] != 4 {
				t.Errorf("b = %v, %v", got, err)
			}
		})
	}
}

func TestTensorDTypes(t *testing.T) {
	vals := []float32{1, -2, 0.5, 3, -4, 6}
	f16 := make([]byte, 0, 12)
	bf16 := make([]byte, 0, 12)
	f64 := make([]byte, 0, 48)
	i8 := make([]byte, 0, 6)
	i16 := make([]byte, 0, 12)
	i32 := make([]byte, 0, 24)
	i64 := make([]byte, 0, 48)
	for _, v := range vals {
		f16 = binary.LittleEndian.AppendUint16(f16, tensor.Float32ToHalf(v))
		bf16 = binary.LittleEndian.AppendUint16(bf16, tensor.Float32ToBF16(v))
		f64 = binary.LittleEndian.AppendUint64(f64, math.Float64bits(float64(v)))
		n := int64(v * 2)
		i8 = append(i8, byte(int8(n)))
		i16 = binary.LittleEndian.AppendUint16(i16, uint16(int16(n)))
		i32 = binary.LittleEndian.AppendUint32(i32, uint32(int32(n)))
		i64 = binary.LittleEndian.AppendUint64(i64, uint64(n))
	}
	ints := make([]float32, len(vals))
	for i, v := range vals {
		ints[i] = float32(int64(v * 2))
	}
	dims := []uint64{3, 2} // a 2 x 3 matrix
	cases := []struct {
		name  string
		typ   GGMLType
		data  []byte
		dtype tensor.DType
		want  []float32
	}{
		{"f32", TypeF32, f32Bytes(vals...), tensor.F32, vals},
		{"f16", TypeF16, f16, tensor.F16, vals},
		{"bf16", TypeBF16, bf16, tensor.BF16, vals},
		{"f64", TypeF64, f64, tensor.F64, vals},
		{"i8", TypeI8, i8, tensor.I8, ints},
		{"i16", TypeI16, i16, tensor.I16, ints},
		{"i32", TypeI32, i32, tensor.I32, ints},
		{"i64", TypeI64, i64, tensor.I64, ints},
	}
	var tts []testTensor
	for _, c := range cases {
		tts = append(tts, testTensor{name: c.name, dims: dims, typ: c.typ, data: c.data})
	}
	q4k := make([]byte, 144*2)
	tts = append(tts,
		testTensor{name: "blk.0.attn_q.weight", dims: []uint64{256, 2}, typ: TypeQ4_K, data: q4k},
		testTensor{name: "q8", dims: []uint64{32}, typ: TypeQ8_0, data: make([]byte, 34)},
	)
	f := mustParse(t, testFile{tensors: tts}.bytes())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tt, err := f.Tensor(c.name)
			if err != nil {
				t.Fatal(err)
			}
			if tt.Name != c.name || tt.DType != c.dtype || !reflect.DeepEqual(tt.Shape, []int{2, 3}) {
				t.Fatalf("got %s %s %v", tt.Name, tt.DType, tt.Shape)
			}
			got, err := tt.Float32()
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("values %v, %v; want %v", got, err, c.want)
			}
		})
	}
	t.Run("quantized", func(t *testing.T) {
		_, err := f.Tensor("blk.0.attn_q.weight")
		want := `tensor "blk.0.attn_q.weight": ggml type Q4_K is quantized and has no plain dtype`
		if !errors.Is(err, ErrUnsupportedType) || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want %q", err, want)
		}
		raw, err := f.TensorData("blk.0.attn_q.weight")
		if err != nil || len(raw) != 288 {
			t.Fatalf("raw data: %d bytes, %v", len(raw), err)
		}
		ti, _ := f.TensorInfo("q8")
		if ti.Type.String() != "Q8_0" || !ti.Type.Quantized() || ti.Size != 34 || ti.NumElements() != 32 {
			t.Fatalf("q8 info %+v", ti)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := f.Tensor("nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
			t.Fatalf("error %v", err)
		}
	})
}

func TestGGMLTypeTable(t *testing.T) {
	cases := []struct {
		typ         GGMLType
		name        string
		block, size int
	}{
		{TypeF32, "F32", 1, 4}, {TypeF16, "F16", 1, 2}, {TypeBF16, "BF16", 1, 2},
		{TypeQ4_0, "Q4_0", 32, 18}, {TypeQ8_0, "Q8_0", 32, 34}, {TypeQ4_K, "Q4_K", 256, 144},
		{TypeQ6_K, "Q6_K", 256, 210}, {TypeIQ4_XS, "IQ4_XS", 256, 136}, {TypeMXFP4, "MXFP4", 32, 17},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.typ.String() != c.name || c.typ.BlockSize() != c.block || c.typ.BlockBytes() != c.size || !c.typ.Known() {
				t.Fatalf("%d: %s %d %d", c.typ, c.typ, c.typ.BlockSize(), c.typ.BlockBytes())
			}
		})
	}
	if s := GGMLType(4).String(); s != "Q4_2" {
		t.Errorf("type 4 = %s", s)
	}
	if s := GGMLType(1000).String(); s != "GGMLType(1000)" {
		t.Errorf("type 1000 = %s", s)
	}
}

// TestMalformed checks that broken files yield errors naming the problem.
func TestMalformed(t *testing.T) {
	f32 := func(name string, n int) testTensor {
		return testTensor{name: name, dims: []uint64{uint64(n)}, typ: TypeF32, data: make([]byte, 4*n)}
	}
	// tensorInfo encodes one tensor info by hand.
	tensorInfo := func(nDims uint32, dims []uint64, typ uint32, off uint64) []byte {
		parts := []any{"t", nDims}
		for _, d := range dims {
			parts = append(parts, d)
		}
		parts = append(parts, typ, off)
		return cat(parts...)
	}
	nested := header(3, 0, 1)
	nested = append(nested, cat("k", uint32(Array))...)
	for range 40 {
		nested = append(nested, cat(uint32(Array), uint64(1))...)
	}
	valid := testFile{kvs: []testKV{{"a", "b"}}, tensors: []testTensor{f32("x", 4), f32("y", 4)}}.bytes()

	cases := []struct {
		name string
		data []byte
		is   error
		sub  string
	}{
		{"empty", nil, ErrMalformed, "too short"},
		{"bad magic", append([]byte("GGML"), valid[4:]...), ErrMalformed, "bad magic"},
		{"byte-swapped magic", append([]byte("FUGG"), valid[4:]...), ErrUnsupportedVersion, "big-endian"},
		{"truncated header", []byte("GGUF\x03\x00\x00\x00\x01"), ErrMalformed, "truncated"},
		{"absurd tensor count", header(3, 1<<60, 0), ErrMalformed, "tensor count"},
		{"tensor count beyond file", header(3, 2, 0), ErrMalformed, "tensor count 2"},
		{"absurd kv count", header(3, 0, 1<<60), ErrMalformed, "key-value count"},
		{"max kv count", header(3, 0, math.MaxUint64), ErrMalformed, "key-value count"},
		{"absurd key length", cat(header(3, 0, 1), uint64(1)<<62, uint32(0), uint8(0)), ErrMalformed, "metadata key 0 length"},
		{"absurd string length", cat(header(3, 0, 1), "k", uint32(String), uint64(1)<<40), ErrMalformed, "string length"},
		{"absurd array length", cat(header(3, 0, 1), "k", uint32(Array), uint32(Uint32), uint64(1)<<61), ErrMalformed, "array length"},
		{"array longer than file", cat(header(3, 0, 1), "k", uint32(Array), uint32(Uint64), uint64(4), uint64(0)), ErrMalformed, "array length 4"},
		{"absurd string array", cat(header(3, 0, 1), "k", uint32(Array), uint32(String), uint64(1)<<59), ErrMalformed, "array length"},
		{"absurd nested array", cat(header(3, 0, 1), "k", uint32(Array), uint32(Array), uint64(1)<<58), ErrMalformed, "array length"},
		{"string in array truncated", cat(header(3, 0, 1), "k", uint32(Array), uint32(String), uint64(1), uint64(100)), ErrMalformed, "array string length"},
		{"unknown value type", cat(header(3, 0, 1), "k", uint32(13), uint64(0)), ErrMalformed, "unknown value type 13"},
		{"unknown array type", cat(header(3, 0, 1), "k", uint32(Array), uint32(99), uint64(0)), ErrMalformed, "unknown array element type 99"},
		{"arrays nested too deep", nested, ErrMalformed, "nested"},
		{"duplicate key", testFile{kvs: []testKV{{"a", "b"}, {"a", "c"}}}.bytes(), ErrMalformed, `duplicate metadata key "a"`},
		{"alignment zero", testFile{kvs: []testKV{{"general.alignment", uint32(0)}}}.bytes(), ErrMalformed, "power of two"},
		{"alignment three", testFile{kvs: []testKV{{"general.alignment", uint32(3)}}}.bytes(), ErrMalformed, "power of two"},
		{"alignment wrong type", testFile{kvs: []testKV{{"general.alignment", uint64(32)}}}.bytes(), ErrMalformed, "want uint32"},
		{"n_dims 5", cat(header(3, 1, 0), tensorInfo(5, []uint64{1, 1, 1, 1, 1}, 0, 0)), ErrMalformed, "5 dimensions"},
		{"n_dims huge", cat(header(3, 1, 0), tensorInfo(1<<31, nil, 0, 0), make([]byte, 64)), ErrMalformed, "2147483648 dimensions"},
		{"dim huge", cat(header(3, 1, 0), tensorInfo(1, []uint64{1 << 62}, 0, 0)), ErrMalformed, "dimension 0"},
		{"dim negative", cat(header(3, 1, 0), tensorInfo(1, []uint64{math.MaxUint64}, 0, 0)), ErrMalformed, "dimension 0"},
		{"dims product", cat(header(3, 1, 0), tensorInfo(4, []uint64{1000, 1000, 1000, 1000}, 0, 0)), ErrMalformed, "more than"},
		{"unknown ggml type", cat(header(3, 1, 0), tensorInfo(1, []uint64{1}, 99, 0)), ErrMalformed, "unknown ggml type 99"},
		{"removed ggml type", cat(header(3, 1, 0), tensorInfo(1, []uint64{32}, 4, 0)), ErrMalformed, "Q4_2"},
		{"partial block", testFile{tensors: []testTensor{{name: "q", dims: []uint64{16}, typ: TypeQ4_0, data: make([]byte, 18)}}}.bytes(), ErrMalformed, "block size 32"},
		{"empty tensor name", cat(header(3, 1, 0), cat(uint64(0), uint32(1), uint64(1), uint32(0), uint64(0))), ErrMalformed, "empty name"},
		{"tensor info truncated", cat(header(3, 1, 0), "t", uint32(2), uint64(3)), ErrMalformed, "truncated"},
		{"offset past end", testFile{tensors: []testTensor{{name: "x", dims: []uint64{4}, typ: TypeF32, data: make([]byte, 16), offset: u64p(1 << 40)}}}.bytes(), ErrMalformed, "past the end"},
		{"offset overflow", testFile{tensors: []testTensor{{name: "x", dims: []uint64{4}, typ: TypeF32, data: make([]byte, 16), offset: u64p(math.MaxUint64 - 31)}}}.bytes(), ErrMalformed, "past the end"},
		{"offset unaligned", testFile{tensors: []testTensor{{name: "x", dims: []uint64{4}, typ: TypeF32, data: make([]byte, 32), offset: u64p(4)}}}.bytes(), ErrMalformed, "not a multiple of the alignment"},
		{"data truncated", valid[:len(valid)-1], ErrMalformed, `tensor "y"`},
		{"duplicate tensor", testFile{tensors: []testTensor{f32("x", 4), f32("x", 4)}}.bytes(), ErrMalformed, `duplicate tensor name "x"`},
		{"overlap", testFile{tensors: []testTensor{f32("x", 16), {name: "y", dims: []uint64{8}, typ: TypeF32, data: make([]byte, 32), offset: u64p(32)}}}.bytes(), ErrMalformed, "overlap"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.data)
			if err == nil {
				t.Fatalf("parsed: %d tensors", len(f.Tensors()))
			}
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.sub) || !strings.HasPrefix(err.Error(), "gguf data: ") {
				t.Fatalf("error %q, want %v containing %q", err, c.is, c.sub)
			}
		})
	}
}

// TestTruncatedPrefixes checks that every proper prefix of a valid file is
// rejected without panicking.
func TestTruncatedPrefixes(t *testing.T) {
	data := testFile{
		kvs: []testKV{{"s", "str"}, {"n", uint32(3)}, {"a", []string{"x", "yz"}}, {"nest", [][]uint8{{1}, {2, 3}}}},
		tensors: []testTensor{
			{name: "a", dims: []uint64{2, 2}, typ: TypeF32, data: f32Bytes(1, 2, 3, 4)},
			{name: "b", dims: []uint64{3}, typ: TypeF32, data: f32Bytes(5, 6, 7)},
		},
	}.bytes()
	mustParse(t, data)
	for n := range len(data) {
		if _, err := Parse(data[:n]); err == nil {
			t.Errorf("prefix of %d/%d bytes parsed", n, len(data))
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("prefix of %d bytes: %v", n, err)
		}
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	data := testFile{tensors: []testTensor{{name: "w", dims: []uint64{2}, typ: TypeF32, data: f32Bytes(7, 8)}}}.bytes()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != path {
		t.Errorf("Name() = %q", f.Name())
	}
	if got, _, err := f.Float32("w"); err != nil || !reflect.DeepEqual(got, []float32{7, 8}) {
		t.Fatalf("w = %v, %v", got, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := f.Tensor("w"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Tensor after Close: %v", err)
	}

	empty := filepath.Join(dir, "empty.gguf")
	bad := filepath.Join(dir, "bad.gguf")
	_ = os.WriteFile(empty, nil, 0o644)
	_ = os.WriteFile(bad, data[:40], 0o644)
	for _, c := range []struct{ name, path, sub string }{
		{"missing", filepath.Join(dir, "nope.gguf"), "nope.gguf"},
		{"directory", dir, "not a regular file"},
		{"empty", empty, "empty file"},
		{"malformed", bad, bad + ": malformed GGUF"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(c.path)
			if err == nil || !strings.Contains(err.Error(), c.sub) {
				t.Fatalf("error %v, want %q", err, c.sub)
			}
		})
	}
}

// TestEmptyTensorPastEnd covers a fuzz finding: a zero-size tensor in a file
// that ends before its (empty) data section must read as empty, not slice
// past the buffer.
func TestEmptyTensorPastEnd(t *testing.T) {
	raw := cat(header(3, 1, 0), "e", uint32(2), uint64(0), uint64(5), uint32(TypeF32), uint64(0))
	buf := make([]byte, len(raw), len(raw)+64) // spare capacity must not be used
	copy(buf, raw)
	f := mustParse(t, buf)
	tt, err := f.Tensor("e")
	if err != nil || len(tt.Data) != 0 || !reflect.DeepEqual(tt.Shape, []int{5, 0}) {
		t.Fatalf("tensor %v %d bytes, %v", tt.Shape, len(tt.Data), err)
	}
}
