package gguf

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A Table gives the rows of ModelTensor's values for every 2-D tensor
// whose Hugging Face values are its stored rows, in each type (plain,
// Q8_0, Q4_K), and refuses the ones ModelTensor transforms (llama.cpp's
// permuted q/k rows, GPT-2's transposed weights), for every architecture.
func TestTable(t *testing.T) {
	rnd, enc := sinValues, func(typ GGMLType, v []float32) []byte { return encoded(t, typ, v) }
	ids := []int{3, 0, 3, 1}
	for _, arch := range Architectures() {
		t.Run(arch, func(t *testing.T) {
			ts := []WriteTensor{
				{Name: "token_embd.weight", Shape: []int{4, 256}, Type: TypeQ4_K, Data: enc(TypeQ4_K, rnd(4*256, 1))},
				{Name: "output.weight", Shape: []int{5, 64}, Type: TypeQ8_0, Data: enc(TypeQ8_0, rnd(5*64, 7))},
			}
			if arch == "gpt2" {
				ts = append(ts, WriteTensor{Name: "position_embd.weight", Shape: []int{4, 48}, Type: TypeF16, Data: enc(TypeF16, rnd(4*48, 2))},
					WriteTensor{Name: "blk.0.attn_qkv.weight", Shape: []int{144, 48}, Type: TypeF32, Data: enc(TypeF32, rnd(144*48, 3))})
			} else {
				ts = append(ts, WriteTensor{Name: "blk.0.attn_norm.weight", Shape: []int{48}, Type: TypeF32, Data: enc(TypeF32, rnd(48, 4))},
					WriteTensor{Name: "blk.0.attn_q.weight", Shape: []int{48, 64}, Type: TypeQ8_0, Data: enc(TypeQ8_0, rnd(48*64, 5))},
					WriteTensor{Name: "blk.0.attn_k.weight", Shape: []int{24, 48}, Type: TypeBF16, Data: enc(TypeBF16, rnd(24*48, 6))})
			}
			path := filepath.Join(t.TempDir(), arch+".gguf")
			if err := Write(path, common(arch, 1), ts); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			read, refused := 0, 0
			for _, ti := range f.Tensors() {
				want, err := ModelTensor(f, ti.Name)
				if err != nil {
					continue // a tensor this architecture does not have
				}
				wv, err := want.Float32()
				if err != nil {
					t.Fatal(err)
				}
				raw, _, err := f.Float32(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				if len(want.Shape) != 2 {
					if _, err := OpenTable(f, ti.Name); err == nil || !strings.Contains(err.Error(), "2-D") {
						t.Errorf("%s (%d-D): error %v", ti.Name, len(want.Shape), err)
					}
					continue
				}
				cols := want.Shape[1]
				got := make([]float32, len(ids)*cols)
				tab, err := OpenTable(f, ti.Name)
				if err == nil {
					err = tab.Into(ids, got)
				}
				if !slices.Equal(raw, wv) { // transformed: refused, dst untouched
					if err == nil || !strings.Contains(err.Error(), "not its stored rows") || !strings.Contains(err.Error(), ti.Name) {
						t.Errorf("%s: ModelTensor transforms it, OpenTable: %v", ti.Name, err)
					}
					refused++
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", ti.Name, err)
				}
				read++
				for k, id := range ids {
					for c := range cols {
						if g, w := got[k*cols+c], wv[id*cols+c]; math.Float32bits(g) != math.Float32bits(w) {
							t.Fatalf("%s: row %d col %d: Table %g, ModelTensor %g", ti.Name, id, c, g, w)
						}
					}
				}
				for _, bad := range []struct {
					ids  []int
					dst  []float32
					want string
				}{
					{[]int{0, want.Shape[0]}, make([]float32, 2*cols), "out of range"},
					{[]int{-1}, make([]float32, cols), "out of range"},
					{[]int{0, 1}, make([]float32, 2*cols-1), "destination"},
				} {
					if err := tab.Into(bad.ids, bad.dst); err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), ti.Name) {
						t.Errorf("%s: rows %v into %d: error %v, want one naming the tensor and %q", ti.Name, bad.ids, len(bad.dst), err, bad.want)
					}
				}
			}
			if read < 2 {
				t.Errorf("only %d tensors read by rows", read)
			}
			if (arch == "llama" || arch == "gpt2") && refused == 0 {
				t.Errorf("no permuted or transposed tensor refused")
			}
			if _, err := OpenTable(f, "blk.9.ffn_up.weight"); err == nil || !strings.Contains(err.Error(), "no tensor") {
				t.Errorf("unknown tensor: error %v", err)
			}
		})
	}
}

// bitsOf returns the bit patterns of v, so that comparisons see NaN
// payloads and signed zeros.
func bitsOf(v []float32) []uint32 {
	b := make([]uint32, len(v))
	for i, x := range v {
		b[i] = math.Float32bits(x)
	}
	return b
}

// sinValues returns n smooth values of a sine started at seed: tensors
// whose rows all differ.
func sinValues(n int, seed float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.Sin(float64(seed) + float64(i)*0.37))
	}
	return v
}

// encoded returns v quantized to (or stored as) typ.
func encoded(t *testing.T, typ GGMLType, v []float32) []byte {
	t.Helper()
	data, err := Quantize(typ, v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
