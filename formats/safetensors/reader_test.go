package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

func le32(vals ...float32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func TestParseMalformed(t *testing.T) {
	valid := rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, le32(1, 2))
	huge := make([]byte, 16)
	binary.LittleEndian.PutUint64(huge, 1<<62)
	overLimit := make([]byte, 16)
	binary.LittleEndian.PutUint64(overLimit, MaxHeaderSize+1)
	pastEnd := make([]byte, 16)
	binary.LittleEndian.PutUint64(pastEnd, 1000)

	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty file", nil, "shorter than the 8-byte header length"},
		{"truncated length field", []byte{1, 0, 0}, "shorter than the 8-byte header length"},
		{"truncated data", valid[:len(valid)-3], "out of range of the 5-byte data section"},
		{"truncated header", valid[:20], "runs past the end of the file"},
		{"header length past end", pastEnd, "header length 1000 runs past the end"},
		{"absurd header size", huge, "exceeds the limit"},
		{"header just over limit", overLimit, "exceeds the limit"},
		{"header not JSON", rawFile(`{not json}`, nil), "not valid JSON"},
		{"header not an object", rawFile(`[1,2]`, nil), "does not start with '{'"},
		{"header leading space", rawFile(` {}`, nil), "does not start with '{'"},
		{"header unterminated", rawFile(`{"a":{"dtype":"F32"`, nil), "tensor \"a\""},
		{"trailing data", rawFile(`{} x`, nil), "trailing data"},
		{"two objects", rawFile(`{}{}`, nil), "trailing data"},
		{"invalid UTF-8", rawFile("{\"\xff\":1}", nil), "not valid UTF-8"},
		{"entry not an object", rawFile(`{"a":1}`, nil), "tensor \"a\": entry must be an object"},
		{"overlapping offsets", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)), "overlap"},
		{"same offsets", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "overlap"},
		{"gap between tensors", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, make([]byte, 12)), "gap of 4 bytes after tensor \"a\""},
		{"gap at start", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), "at the start"},
		{"out-of-range offsets", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4)), "out of range"},
		{"offsets past int64", rawFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}}`, nil), "out of range"},
		{"offsets overflow uint64", rawFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,18446744073709551616]}}`, nil), "not a non-negative 64-bit integer"},
		{"unused trailing data", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 8)), "cover 4 bytes but the data section has 8"},
		{"data without tensors", rawFile(`{}`, make([]byte, 8)), "cover 0 bytes but the data section has 8"},
		{"begin after end", rawFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, make([]byte, 4)), "begin after end"},
		{"wrong byte length for dtype x shape", rawFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8)), "span 8 bytes, but F32[3] needs 12"},
		{"duplicate names", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), "duplicate tensor name \"a\""},
		{"duplicate metadata", rawFile(`{"__metadata__":{},"__metadata__":{}}`, nil), "duplicate __metadata__"},
		{"duplicate metadata key", rawFile(`{"__metadata__":{"k":"1","k":"2"}}`, nil), "duplicate key \"k\""},
		{"duplicate field", rawFile(`{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "duplicate key \"dtype\""},
		{"unknown dtype", rawFile(`{"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "unknown dtype \"F31\""},
		{"lower-case dtype", rawFile(`{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "unknown dtype \"f32\""},
		{"dtype not a string", rawFile(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "dtype: number 4 is not a string"},
		{"negative shape", rawFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4)), "negative value -1"},
		{"fractional shape", rawFile(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, make([]byte, 4)), "1.5 is not a non-negative"},
		{"shape not array", rawFile(`{"a":{"dtype":"F32","shape":1,"data_offsets":[0,4]}}`, make([]byte, 4)), "shape must be an array"},
		{"shape overflow", rawFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}`, make([]byte, 4)), "overflows"},
		{"shape dimension too large", rawFile(`{"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,4]}}`, make([]byte, 4)), "too large"},
		{"missing dtype", rawFile(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "missing dtype"},
		{"missing shape", rawFile(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, make([]byte, 4)), "missing shape"},
		{"missing offsets", rawFile(`{"a":{"dtype":"F32","shape":[1]}}`, make([]byte, 4)), "missing data_offsets"},
		{"three offsets", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, make([]byte, 4)), "must have 2 elements"},
		{"metadata value not a string", rawFile(`{"__metadata__":{"epochs":3}}`, nil), "key \"epochs\": value number 3 is not a string"},
		{"metadata value null", rawFile(`{"__metadata__":{"a":null}}`, nil), "value null is not a string"},
		{"metadata nested object", rawFile(`{"__metadata__":{"a":{"b":"c"}}}`, nil), "is not a string"},
		{"metadata not an object", rawFile(`{"__metadata__":"x"}`, nil), "must be an object of strings"},
		{"sub-byte dtype not byte aligned", rawFile(`{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, make([]byte, 2)), "not a whole number of bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(tc.data)
			if err == nil {
				t.Fatalf("Parse succeeded with %d tensors, want error containing %q", f.Len(), tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			// The same bytes through Open: same problem, and the path named.
			p := writeTemp(t, "bad.safetensors", tc.data)
			_, err = Open(p)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Errorf("Open error %q should name %s, contain %q and wrap ErrInvalid", err, p, tc.want)
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	type want struct {
		name  string
		dtype tensor.DType
		shape []int
		data  []byte
	}
	tests := []struct {
		name string
		data []byte
		meta map[string]string
		want []want
	}{
		{"empty header", rawFile(`{}`, nil), map[string]string{}, nil},
		{"padding spaces", rawFile(`{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}    `, le32(7)),
			map[string]string{}, []want{{"a", tensor.F32, []int{}, le32(7)}}},
		{"header written out of order", rawFile(`{"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, append(le32(1), 9, 8)),
			map[string]string{}, []want{{"a", tensor.F32, []int{1}, le32(1)}, {"b", tensor.U8, []int{2}, []byte{9, 8}}}},
		{"zero-sized tensors", rawFile(`{"z":{"dtype":"F16","shape":[0,5],"data_offsets":[2,2]},"a":{"dtype":"I16","shape":[1],"data_offsets":[0,2]},"y":{"dtype":"F16","shape":[3,0],"data_offsets":[2,2]}}`, []byte{1, 2}),
			map[string]string{}, []want{{"a", tensor.I16, []int{1}, []byte{1, 2}}, {"z", tensor.F16, []int{0, 5}, nil}, {"y", tensor.F16, []int{3, 0}, nil}}},
		{"metadata and unknown field", rawFile(`{"__metadata__":{"format":"pt","é":"ü"},"a":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1],"extra":[1,{"x":2}]}}`, []byte{1}),
			map[string]string{"format": "pt", "é": "ü"}, []want{{"a", tensor.Bool, []int{1}, []byte{1}}}},
		{"null metadata", rawFile(`{"__metadata__":null}`, nil), map[string]string{}, nil},
		{"sub-byte and F8", rawFile(`{"f4":{"dtype":"F4","shape":[2,2],"data_offsets":[0,2]},"f6":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[2,5]},"f8":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[5,6]}}`, []byte{1, 2, 3, 4, 5, 6}),
			map[string]string{}, []want{{"f4", tensor.F4, []int{2, 2}, []byte{1, 2}}, {"f6", tensor.F6E2M3, []int{4}, []byte{3, 4, 5}}, {"f8", tensor.F8E4M3, []int{1}, []byte{6}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := f.Metadata(); !mapsEqual(got, tc.meta) {
				t.Errorf("metadata %v, want %v", got, tc.meta)
			}
			var names []string
			for _, w := range tc.want {
				names = append(names, w.name)
				got, err := f.Tensor(w.name)
				if err != nil {
					t.Fatal(err)
				}
				if got.DType != w.dtype || !slices.Equal(got.Shape, w.shape) || !bytes.Equal(got.Data, w.data) {
					t.Errorf("tensor %s = %s%v %v, want %s%v %v", w.name, got.DType, got.Shape, got.Data, w.dtype, w.shape, w.data)
				}
			}
			if got := f.Names(); !slices.Equal(got, names) {
				t.Errorf("Names() = %q, want %q", got, names)
			}
			if f.Len() != len(names) {
				t.Errorf("Len() = %d, want %d", f.Len(), len(names))
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestFileAccessors(t *testing.T) {
	data := rawFile(`{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"q":{"dtype":"F8_E5M2","shape":[2],"data_offsets":[4,6]}}  `, []byte{0x00, 0x3c, 0x00, 0xc0, 1, 2})
	p := writeTemp(t, "a.safetensors", data)
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path() != p {
		t.Errorf("Path() = %q", f.Path())
	}
	got, err := f.Float32("w")
	if err != nil || !slices.Equal(got, []float32{1, -2}) {
		t.Errorf("Float32(w) = %v, %v; want [1 -2]", got, err)
	}
	dst := make([]float32, 2)
	if err := f.Float32Into("w", dst); err != nil || !slices.Equal(dst, []float32{1, -2}) {
		t.Errorf("Float32Into(w) = %v, %v", dst, err)
	}
	if err := f.Float32Into("w", make([]float32, 3)); err == nil || !strings.Contains(err.Error(), "destination has 3 elements, tensor has 2") {
		t.Errorf("Float32Into with wrong length: %v", err)
	}
	if _, err := f.Float32("q"); err == nil || !strings.Contains(err.Error(), "F8_E5M2 cannot be converted") {
		t.Errorf("Float32 of F8: %v", err)
	}
	raw, err := f.Tensor("q")
	if err != nil || !bytes.Equal(raw.Data, []byte{1, 2}) {
		t.Errorf("Tensor(q) = %v, %v", raw.Data, err)
	}
	info, err := f.Info("w")
	if err != nil || info.Begin != 0 || info.End != 4 || info.Size() != 4 || info.NumElements() != 2 {
		t.Errorf("Info(w) = %+v, %v", info, err)
	}
	info.Shape[0] = 99 // callers cannot corrupt the file's view
	if again, _ := f.Info("w"); again.Shape[0] != 2 {
		t.Error("Info shares its shape slice with the File")
	}
	_, err = f.Tensor("nope")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing tensor error: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.Float32("w"); !errors.Is(err, ErrClosed) {
		t.Errorf("Float32 after Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir + "/missing.safetensors"); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("directory: %v", err)
	}
}

func TestDecodeFloat32Parallel(t *testing.T) {
	// Large enough to be split across goroutines; compare with core/tensor.
	n := 3*parallelMin + 17
	for _, d := range []tensor.DType{tensor.F16, tensor.BF16, tensor.F32, tensor.I8} {
		t.Run(string(d), func(t *testing.T) {
			src := make([]byte, n*d.Size())
			for i := range src {
				src[i] = byte(i*131 + i>>9)
			}
			want := make([]float32, n)
			if err := tensor.ToFloat32(want, d, src); err != nil {
				t.Fatal(err)
			}
			got := make([]float32, n)
			if err := decodeFloat32(got, d, inMemory(src)); err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("element %d: %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}
