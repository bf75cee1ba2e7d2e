package safetensors

import (
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// RowsInto decodes the rows asked for, in order and repeated as asked, to
// the values Float32 gives those rows, for the float types and from a
// file or from memory; bad requests are errors naming the tensor and leave
// nothing half done that a caller would use.
func TestRowsInto(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var tensors []tensor.Tensor
	for _, d := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.F64} {
		b := make([]byte, 9*13*d.Size())
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		tensors = append(tensors, tensor.Tensor{Name: "t" + string(d), DType: d, Shape: []int{9, 13}, Data: b})
	}
	tensors = append(tensors, tensor.Tensor{Name: "vec", DType: tensor.F32, Shape: []int{4}, Data: make([]byte, 16)},
		tensor.Tensor{Name: "str", DType: tensor.DType("F8_E4M3"), Shape: []int{2, 2}, Data: make([]byte, 4)})
	p := filepath.Join(t.TempDir(), "m.safetensors")
	if err := WriteFile(p, tensors, nil); err != nil {
		t.Fatal(err)
	}
	m, err := OpenModel(p)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	f, err := m.Shard("tF32")
	if err != nil {
		t.Fatal(err)
	}
	mem, err := Parse(f.buf)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int{8, 0, 3, 3, 1}
	for _, src := range []struct {
		name string
		rows func(string, []int, []float32) error
	}{{"file", m.RowsInto}, {"memory", mem.RowsInto}} {
		for _, x := range tensors[:4] {
			want, err := m.Float32(x.Name)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]float32, len(ids)*13)
			if err := src.rows(x.Name, ids, got); err != nil {
				t.Fatalf("%s %s: %v", src.name, x.Name, err)
			}
			for k, id := range ids {
				if !slices.Equal(bits(got[k*13:(k+1)*13]), bits(want[id*13:(id+1)*13])) {
					t.Fatalf("%s %s: row %d differs from Float32's", src.name, x.Name, id)
				}
			}
		}
	}
	for _, c := range []struct {
		name string
		ids  []int
		n    int
		want string
	}{
		{"tBF16", []int{9}, 13, "row 9 out of range"},
		{"tBF16", []int{-1}, 13, "out of range"},
		{"tF16", []int{0, 1}, 25, "destination has 25 values"},
		{"vec", nil, 0, "2-D"},
		{"str", nil, 0, "cannot be converted"},
	} {
		err := m.RowsInto(c.name, c.ids, make([]float32, c.n))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s rows %v: error %v, want one naming the tensor and %q", c.name, c.ids, err, c.want)
		}
	}
	if err := m.RowsInto("nope", nil, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown tensor: %v, want ErrNotFound", err)
	}
	m.Close()
	if err := f.RowsInto("tF32", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("closed file: %v, want ErrClosed", err)
	}
}

// bits returns the bit patterns of v: comparisons then see NaN payloads.
func bits(v []float32) []uint32 {
	b := make([]uint32, len(v))
	for i, x := range v {
		b[i] = math.Float32bits(x)
	}
	return b
}
