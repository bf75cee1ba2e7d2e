package gguf

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/surgeon-ml/surgeon/core/linalg"
	"github.com/surgeon-ml/surgeon/core/qmat"
	"github.com/surgeon-ml/surgeon/core/tensor"
)

// qmat's decoders give Dequantize's values bit for bit, on every kernel
// path, for blocks that the reference quantizer made from random weights
// (rows of odd count, each of several blocks).
func TestQmatDequantizeMatches(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for gt, qt := range qmatTypes {
		t.Run(gt.String(), func(t *testing.T) {
			rows, cols := 7, 3*qt.BlockSize()
			src := make([]float32, rows*cols)
			for i := range src {
				src[i] = float32(r.NormFloat64()) * 0.05
			}
			data, err := Quantize(gt, src)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float32, len(src))
			if err := Dequantize(gt, want, data); err != nil {
				t.Fatal(err)
			}
			for _, generic := range []bool{false, true} {
				was := linalg.SetGeneric(generic)
				got := make([]float32, len(src))
				qmat.Dequantize(got, qmat.Matrix{Type: qt, Rows: rows, Cols: cols, Data: data})
				linalg.SetGeneric(was)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("generic=%v: element %d: qmat %g, Dequantize %g", generic, i, got[i], want[i])
					}
				}
			}
		})
	}
}

// qkRowOrder is the order UnpermuteQK gives the rows.
func TestQKRowOrder(t *testing.T) {
	for _, c := range []struct{ rows, heads int }{{8, 1}, {12, 3}, {64, 4}} {
		v := make([]float32, c.rows)
		for i := range v {
			v[i] = float32(i)
		}
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
		u, err := UnpermuteQK(tensor.Tensor{Name: "q", DType: tensor.F32, Shape: []int{c.rows, 1}, Data: raw}, c.heads)
		if err != nil {
			t.Fatal(err)
		}
		order, err := qkRowOrder(c.rows, c.heads)
		if err != nil {
			t.Fatal(err)
		}
		got := unsafe.Slice((*float32)(unsafe.Pointer(&u.Data[0])), c.rows)
		for i, o := range order {
			if got[i] != float32(o) {
				t.Fatalf("%d rows, %d heads: row %d is stored row %v, order says %d", c.rows, c.heads, i, got[i], o)
			}
		}
	}
	if _, err := qkRowOrder(6, 4); err == nil {
		t.Fatal("6 rows in 4 heads: no error")
	}
}
