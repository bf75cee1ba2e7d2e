package gguf

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// TestQuantizeGolden checks that Quantize makes, byte for byte, the blocks
// ggml's quantize_row_*_ref made of the same inputs, and that they
// dequantize to ggml's values.
func TestQuantizeGolden(t *testing.T) {
	for _, typ := range goldenTypes {
		t.Run(typ.String(), func(t *testing.T) {
			g := readGolden(t, typ)
			got, err := Quantize(typ, g.x)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, g.q) {
				for i := range got {
					if got[i] != g.q[i] {
						b := i / g.bb
						t.Fatalf("byte %d (block %d, offset %d) = %#02x, ggml %#02x\ngo   %x\nggml %x", i, b, i%g.bb, got[i], g.q[i], got[b*g.bb:(b+1)*g.bb], g.q[b*g.bb:(b+1)*g.bb])
					}
				}
			}
			dq := make([]float32, len(g.x))
			if err := Dequantize(typ, dq, got); err != nil {
				t.Fatal(err)
			}
			if i, ok := sameBits(dq, g.dq); !ok {
				t.Fatalf("round trip element %d: %g, ggml %g", i, dq[i], g.dq[i])
			}
		})
	}
}

// TestQuantizeRoundTrip quantizes random weights of several scales and
// checks the relative RMS error of the round trip against what each type's
// bits allow; the plain types round exactly as their conversions do.
func TestQuantizeRoundTrip(t *testing.T) {
	bounds := map[GGMLType]float64{
		TypeF32: 0, TypeF16: 1e-3, TypeBF16: 5e-3,
		TypeQ8_0: 0.01, TypeQ6_K: 0.02, TypeQ5_0: 0.05, TypeQ5_1: 0.05, TypeQ5_K: 0.05,
		TypeQ4_0: 0.1, TypeQ4_1: 0.1, TypeQ4_K: 0.1, TypeIQ4_NL: 0.1, TypeIQ4_XS: 0.1,
		TypeQ3_K: 0.2, TypeQ2_K: 0.4,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 4*256)
	for i := range x {
		scale := []float64{1, 0.02, 300}[i/512%3]
		x[i] = float32(rng.NormFloat64() * scale)
	}
	for _, typ := range goldenTypes {
		t.Run(typ.String(), func(t *testing.T) {
			q, err := Quantize(typ, x)
			if err != nil {
				t.Fatal(err)
			}
			if len(q) != len(x)/typ.BlockSize()*typ.BlockBytes() {
				t.Fatalf("%d bytes", len(q))
			}
			y := make([]float32, len(x))
			if err := Dequantize(typ, y, q); err != nil {
				t.Fatal(err)
			}
			// Error per 256 elements, relative to their RMS.
			for b := 0; b < len(x); b += 256 {
				var e, n float64
				for i := b; i < b+256; i++ {
					d := float64(y[i] - x[i])
					e += d * d
					n += float64(x[i]) * float64(x[i])
				}
				if r := math.Sqrt(e / n); r > bounds[typ] {
					t.Errorf("elements %d..%d: relative RMS error %.3g > %g", b, b+255, r, bounds[typ])
				}
			}
			// Quantizing rows one at a time gives the same bytes.
			bs, bb := typ.BlockSize(), typ.BlockBytes()
			row := 256
			for r := 0; r < len(x); r += row {
				part, err := Quantize(typ, x[r:r+row])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(part, q[r/bs*bb:(r+row)/bs*bb]) {
					t.Fatalf("row at %d differs when quantized alone", r)
				}
			}
		})
	}
}

func TestQuantizeErrors(t *testing.T) {
	if _, err := Quantize(TypeQ4_K, make([]float32, 255)); err == nil {
		t.Error("partial block accepted")
	}
	if _, err := Quantize(TypeIQ2_XXS, make([]float32, 256)); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("IQ2_XXS: %v", err)
	}
}

// TestFP16Conversion checks the ggml-exact fp16 conversions against the
// neutral ones of core/tensor on every half and on rounding edge cases.
func TestFP16Conversion(t *testing.T) {
	for h := range 1 << 16 {
		f := fp16(uint16(h))
		if f != f {
			continue // NaN: ggml makes it quiet; the golden data covers it
		}
		if back := fp32ToFP16(f); back != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, back)
		}
	}
}

// Quantize splits large tensors across goroutines; the bytes are those of
// one serial pass over every block, for every type.
func TestQuantizeParallelEqualsSerial(t *testing.T) {
	src := make([]float32, 3*quantizeGrain+7*256)
	for i := range src {
		src[i] = float32(math.Sin(float64(i)*0.37)) * float32(1+i%13)
	}
	for typ, q := range quantizers {
		got, err := Quantize(typ, src)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, len(got))
		q(want, src)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: parallel quantization differs from serial", typ)
		}
	}
}
