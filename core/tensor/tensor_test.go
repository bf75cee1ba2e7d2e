package tensor

import (
	"math"
	"testing"
)

func TestHalfRoundTrip(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := HalfToFloat32(uint16(h))
		if f != f { // NaN
			continue
		}
		if got := Float32ToHalf(f); got != uint16(h) {
			t.Fatalf("half %#04x -> %v -> %#04x", h, f, got)
		}
	}
}

func TestHalfValues(t *testing.T) {
	cases := []struct {
		f float32
		h uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {1e6, 0x7c00},
		{float32(math.Inf(-1)), 0xfc00}, {5.960464477539063e-08, 0x0001},
		{0.333251953125, 0x3555}, {1.0009765625, 0x3c01},
	}
	for _, c := range cases {
		if got := Float32ToHalf(c.f); got != c.h {
			t.Errorf("Float32ToHalf(%v) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
}

func TestBF16(t *testing.T) {
	for _, f := range []float32{1, -3.5, 0.1, 1e30, -1e-30} {
		g := math.Float32frombits(uint32(Float32ToBF16(f)) << 16)
		if math.Abs(float64(g-f)) > math.Abs(float64(f))/128 {
			t.Errorf("bf16(%v) = %v", f, g)
		}
	}
	if Float32ToBF16(1.00390625) != 0x3f80 { // tie rounds to even
		t.Errorf("tie not rounded to even: %#04x", Float32ToBF16(1.00390625))
	}
}

func TestFloat32Conversion(t *testing.T) {
	src := []float32{-3, -2, -1, 0, 1, 2}
	for _, d := range []DType{F32, F16, BF16} {
		b, err := FromFloat32(d, src)
		if err != nil {
			t.Fatal(err)
		}
		tt := Tensor{Name: "x", DType: d, Shape: []int{6}, Data: b}
		got, err := tt.Float32()
		if err != nil {
			t.Fatal(err)
		}
		for i := range src {
			if got[i] != src[i] {
				t.Errorf("%s: got %v want %v", d, got, src)
				break
			}
		}
	}
	bad := Tensor{Name: "x", DType: F32, Shape: []int{3}, Data: make([]byte, 8)}
	if _, err := bad.Float32(); err == nil {
		t.Error("short data accepted")
	}
}
