package gguf

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
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

// WeightHalvesInto gives the halves that WeightInto widens, in the same
// row order: q and k rows put back for llama, stored order for the rest.
// Other types, wrong lengths and unknown names are errors.
func TestWeightHalvesInto(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const hidden = 48 // common's embedding_length: 4 heads of 12, 2 KV heads
	for _, typ := range []GGMLType{TypeF16, TypeBF16} {
		t.Run(typ.String(), func(t *testing.T) {
			var ts []WriteTensor
			shapes := map[string][2]int{
				"blk.0.attn_q.weight": {hidden, hidden}, "blk.0.attn_k.weight": {24, hidden}, "blk.0.ffn_up.weight": {96, hidden},
			}
			for _, name := range []string{"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_up.weight"} {
				s := shapes[name]
				v := make([]float32, s[0]*s[1])
				for i := range v {
					v[i] = float32(r.NormFloat64())
				}
				data, err := Quantize(typ, v)
				if err != nil {
					t.Fatal(err)
				}
				ts = append(ts, WriteTensor{Name: name, Shape: []int{s[0], s[1]}, Type: typ, Data: data})
			}
			ts = append(ts, WriteTensor{Name: "blk.0.ffn_gate.weight", Shape: []int{32, hidden}, Type: TypeF32, Data: make([]byte, 4*32*hidden)})
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := Write(path, common("llama", 1), ts); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			h := linalg.BF16
			if typ == TypeF16 {
				h = linalg.F16
			}
			for name, s := range shapes {
				n := s[0] * s[1]
				want := make([]float32, n)
				if err := WeightInto(f, name, want); err != nil {
					t.Fatal(err)
				}
				halves := make([]uint16, n)
				if err := WeightHalvesInto(f, name, halves); err != nil {
					t.Fatal(err)
				}
				got := make([]float32, n)
				linalg.WidenHalf(got, halves, h)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s: element %d (row %d): halves give %g, WeightInto %g", name, i, i/s[1], got[i], want[i])
					}
				}
			}
			for _, c := range []struct {
				name string
				n    int
				err  string
			}{
				{"blk.0.ffn_gate.weight", 32 * hidden, "not a half-precision matrix"},
				{"blk.0.ffn_up.weight", 96*hidden - 1, "the destination"},
				{"blk.0.ffn_down.weight", 1, "no tensor"},
			} {
				err := WeightHalvesInto(f, c.name, make([]uint16, c.n))
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), c.name) {
					t.Errorf("%s with %d elements: error %v, want one naming it and saying %q", c.name, c.n, err, c.err)
				}
			}
		})
	}
}

// reorderRows, in place, gives the rows a copy in that order would: for
// the q/k orders (checked against permuteHeads) and random permutations,
// identity and one-row matrices included.
func TestReorderRows(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct{ rows, cols, heads int }{{8, 3, 1}, {12, 5, 3}, {64, 2, 4}, {1, 4, 0}, {7, 1, 0}, {40, 6, 0}} {
		v := make([]float32, c.rows*c.cols)
		for i := range v {
			v[i] = float32(i)
		}
		order := r.Perm(c.rows)
		want := make([]float32, len(v))
		if c.heads > 0 {
			var err error
			if order, err = qkRowOrder(c.rows, c.heads); err != nil {
				t.Fatal(err)
			}
			want = permuteHeads(v, c.rows, c.cols, c.heads, true)
		} else {
			for i, s := range order {
				copy(want[i*c.cols:(i+1)*c.cols], v[s*c.cols:(s+1)*c.cols])
			}
		}
		reorderRows(v, c.cols, order)
		for i := range v {
			if v[i] != want[i] {
				t.Fatalf("%d x %d, order %v: element %d = %v, want %v", c.rows, c.cols, order, i, v[i], want[i])
			}
		}
	}
}
