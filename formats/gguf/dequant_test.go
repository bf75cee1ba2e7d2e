package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// golden is one type's reference data from tools/ggmlref: inputs x, the
// blocks q that ggml's quantize_row_*_ref made of them and their
// dequantized values dq, and random blocks r with their dequantized dr.
type golden struct {
	typ    GGMLType
	x, dq  []float32
	q      []byte
	r      []byte
	dr     []float32
	bs, bb int
}

// goldenTypes are the types tools/ggmlref covers.
var goldenTypes = []GGMLType{
	TypeF32, TypeF16, TypeBF16, TypeQ4_0, TypeQ4_1, TypeQ5_0, TypeQ5_1, TypeQ8_0,
	TypeQ2_K, TypeQ3_K, TypeQ4_K, TypeQ5_K, TypeQ6_K, TypeIQ4_NL, TypeIQ4_XS,
}

func readGolden(t *testing.T, typ GGMLType) *golden {
	t.Helper()
	path := filepath.Join("testdata", "ggmlref", typ.String()+".bin")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (regenerate with tools/ggmlref/gen.sh)", err)
	}
	g, err := parseGolden(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if g.typ != typ || g.bs != typ.BlockSize() || g.bb != typ.BlockBytes() {
		t.Fatalf("%s: type %d, block %d/%d bytes; want %s %d/%d", path, g.typ, g.bs, g.bb, typ, typ.BlockSize(), typ.BlockBytes())
	}
	return g
}

func parseGolden(b []byte) (*golden, error) {
	if len(b) < 24 || string(b[:8]) != "GGMLREF1" {
		return nil, errors.New("not a GGMLREF1 file")
	}
	le := binary.LittleEndian
	g := &golden{typ: GGMLType(le.Uint32(b[8:])), bs: int(le.Uint32(b[12:])), bb: int(le.Uint32(b[16:]))}
	pos := 20
	take := func(n int) ([]byte, error) {
		if n < 0 || pos+n > len(b) {
			return nil, fmt.Errorf("truncated at %d", pos)
		}
		s := b[pos : pos+n]
		pos += n
		return s, nil
	}
	floats := func(n int) ([]float32, error) {
		raw, err := take(4 * n)
		if err != nil {
			return nil, err
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
		return v, nil
	}
	count := func() (int, error) {
		raw, err := take(4)
		if err != nil {
			return 0, err
		}
		return int(le.Uint32(raw)), nil
	}
	var err error
	nq, err := count()
	if err != nil {
		return nil, err
	}
	if g.x, err = floats(nq * g.bs); err != nil {
		return nil, err
	}
	if g.q, err = take(nq * g.bb); err != nil {
		return nil, err
	}
	if g.dq, err = floats(nq * g.bs); err != nil {
		return nil, err
	}
	nr, err := count()
	if err != nil {
		return nil, err
	}
	if g.r, err = take(nr * g.bb); err != nil {
		return nil, err
	}
	if g.dr, err = floats(nr * g.bs); err != nil {
		return nil, err
	}
	if pos != len(b) {
		return nil, fmt.Errorf("%d trailing bytes", len(b)-pos)
	}
	return g, nil
}

// sameBits reports the first index where got and want differ in their bits.
func sameBits(got, want []float32) (int, bool) {
	if len(got) != len(want) {
		return -1, false
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return i, false
		}
	}
	return 0, true
}

// TestDequantizeGolden compares every value of every golden block, the
// blocks ggml's quantizers made and random ones, bit for bit with ggml's
// dequantize_row_*.
func TestDequantizeGolden(t *testing.T) {
	for _, typ := range goldenTypes {
		t.Run(typ.String(), func(t *testing.T) {
			g := readGolden(t, typ)
			for _, c := range []struct {
				name string
				src  []byte
				want []float32
			}{
				{"quantized", g.q, g.dq},
				{"random", g.r, g.dr},
			} {
				got := make([]float32, len(c.want))
				if err := Dequantize(typ, got, c.src); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if i, ok := sameBits(got, c.want); !ok {
					t.Fatalf("%s: element %d (block %d): got %g (%#08x), ggml %g (%#08x)", c.name, i, i/g.bs,
						got[i], math.Float32bits(got[i]), c.want[i], math.Float32bits(c.want[i]))
				}
				// Block by block gives the same values as the whole range.
				nb := len(c.src) / g.bb
				for b := range nb {
					one := make([]float32, g.bs)
					if err := Dequantize(typ, one, c.src[b*g.bb:(b+1)*g.bb]); err != nil {
						t.Fatal(err)
					}
					if i, ok := sameBits(one, c.want[b*g.bs:(b+1)*g.bs]); !ok {
						t.Fatalf("%s: block %d alone differs at %d", c.name, b, i)
					}
				}
			}
		})
	}
}

// TestDequantizeByHand checks blocks whose values are worked out by hand
// from the layouts in ggml-common.h, independently of ggml's code.
func TestDequantizeByHand(t *testing.T) {
	rep := func(n int, b byte) []byte {
		s := make([]byte, n)
		for i := range s {
			s[i] = b
		}
		return s
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	const one, half, two, minusOne = 0x3c00, 0x3800, 0x4000, 0xbc00 // fp16
	h := func(v uint16) []byte { return []byte{byte(v), byte(v >> 8)} }
	seq := func(n int, f func(i int) float32) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	// Q8_0: d = 0.5, qs = 0, 1, ..., 31 with signs alternating.
	q8 := h(half)
	for i := range 32 {
		v := int8(i)
		if i%2 == 1 {
			v = -v
		}
		q8 = append(q8, byte(v))
	}
	// Q4_0: d = 2, low nibble 0x3 (3-8 = -5) for the first half, high
	// nibble 0xa (10-8 = 2) for the second.
	q40 := cat(h(two), rep(16, 0xa3))
	// Q4_1: d = 0.5, m = -1, nibbles 1 and 15.
	q41 := cat(h(half), h(minusOne), rep(16, 0xf1))
	// Q5_0: d = 1, nibbles 0xf/0x0, fifth bits set for elements 0..15 only:
	// first half 31-16 = 15, second half 0-16 = -16.
	q50 := cat(h(one), []byte{0xff, 0xff, 0, 0}, rep(16, 0x0f))
	// Q5_1: d = 1, m = 0.5, every fifth bit set: q = 16 + nibble.
	q51 := cat(h(one), h(half), rep(4, 0xff), rep(16, 0x21))
	// Q6_K: d = 1, every scale 2, ql = 0x00, qh = 0xff: q = 48 - 32 = 16.
	q6 := cat(rep(128, 0), rep(64, 0xff), rep(16, 2), h(one))
	// Q4_K: d = 1, dmin = 0.5, scales: sub-block j has scale j+1 and min 1
	// (j < 4 in the low 6 bits of bytes 0..3 and 4..7; j >= 4 split as
	// ggml's get_scale_min_k4 reads them), all nibbles 3.
	sc := make([]byte, 12)
	for j := range 8 {
		s, m := byte(j+1), byte(1)
		if j < 4 {
			sc[j] |= s
			sc[j+4] |= m
		} else {
			sc[j+4] = s&0xf | (m&0xf)<<4
			sc[j-4] |= (s >> 4) << 6
			sc[j] |= (m >> 4) << 6
		}
	}
	q4k := cat(h(one), h(half), sc, rep(128, 0x33))
	// Q2_K: d = 1, dmin = 1, scale byte 0x12 (scale 2, min 1), all quants 3:
	// 2*3 - 1 = 5.
	q2k := cat(rep(16, 0x12), rep(64, 0xff), h(one), h(one))
	// IQ4_NL: d = 1, indices 0 and 15.
	iq4 := cat(h(one), rep(16, 0xf0))

	for _, c := range []struct {
		typ  GGMLType
		src  []byte
		want []float32
	}{
		{TypeQ8_0, q8, seq(32, func(i int) float32 {
			if i%2 == 1 {
				return -0.5 * float32(i)
			}
			return 0.5 * float32(i)
		})},
		{TypeQ4_0, q40, seq(32, func(i int) float32 {
			if i < 16 {
				return -10
			}
			return 4
		})},
		{TypeQ4_1, q41, seq(32, func(i int) float32 {
			if i < 16 {
				return -0.5
			}
			return 6.5
		})},
		{TypeQ5_0, q50, seq(32, func(i int) float32 {
			if i < 16 {
				return 15
			}
			return -16
		})},
		{TypeQ5_1, q51, seq(32, func(i int) float32 {
			if i < 16 {
				return 17.5
			}
			return 18.5
		})},
		{TypeQ6_K, q6, seq(256, func(int) float32 { return 32 })},
		{TypeQ4_K, q4k, seq(256, func(i int) float32 { return float32(i/32+1)*3 - 0.5 })},
		{TypeQ2_K, q2k, seq(256, func(int) float32 { return 5 })},
		{TypeIQ4_NL, iq4, seq(32, func(i int) float32 {
			if i < 16 {
				return -127
			}
			return 113
		})},
	} {
		t.Run(c.typ.String(), func(t *testing.T) {
			got := make([]float32, len(c.want))
			if err := Dequantize(c.typ, got, c.src); err != nil {
				t.Fatal(err)
			}
			if i, ok := sameBits(got, c.want); !ok {
				t.Fatalf("element %d: got %g, want %g", i, got[i], c.want[i])
			}
		})
	}
}

func TestDequantizeErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		typ  GGMLType
		n    int
		src  int
		is   error
	}{
		{"partial block", TypeQ4_0, 31, 18, nil},
		{"short data", TypeQ4_K, 256, 143, nil},
		{"long data", TypeQ8_0, 32, 35, nil},
		{"iq2_xxs", TypeIQ2_XXS, 256, 66, ErrUnsupportedType},
		{"unknown", GGMLType(99), 1, 1, ErrUnsupportedType},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Dequantize(c.typ, make([]float32, c.n), make([]byte, c.src))
			if err == nil {
				t.Fatal("no error")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("%v does not wrap %v", err, c.is)
			}
		})
	}
}

// TestFloat32Rows decodes row ranges of quantized tensors and compares them
// with the whole tensor.
func TestFloat32Rows(t *testing.T) {
	rows := 5
	var tts []testTensor
	for _, typ := range []GGMLType{TypeQ4_K, TypeQ8_0, TypeF16, TypeIQ4_XS} {
		rowLen := 256
		x := make([]float32, rows*rowLen)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)*0.37)) * float32(1+i%7)
		}
		q, err := Quantize(typ, x)
		if err != nil {
			t.Fatal(err)
		}
		tts = append(tts, testTensor{name: typ.String(), dims: []uint64{uint64(rowLen), uint64(rows)}, typ: typ, data: q})
	}
	f := mustParse(t, testFile{tensors: tts}.bytes())
	for _, tt := range tts {
		t.Run(tt.name, func(t *testing.T) {
			all, _, err := f.Float32(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range [][2]int{{0, 5}, {1, 2}, {4, 1}, {3, 0}} {
				got, err := f.Float32Rows(tt.name, r[0], r[1])
				if err != nil {
					t.Fatal(err)
				}
				if i, ok := sameBits(got, all[r[0]*256:(r[0]+r[1])*256]); !ok {
					t.Fatalf("rows %v differ at %d", r, i)
				}
			}
			for _, r := range [][2]int{{-1, 1}, {5, 1}, {0, 6}, {2, -1}} {
				if _, err := f.Float32Rows(tt.name, r[0], r[1]); err == nil || !strings.Contains(err.Error(), tt.name) {
					t.Errorf("rows %v: %v", r, err)
				}
			}
		})
	}
}
