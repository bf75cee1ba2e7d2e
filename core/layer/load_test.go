package layer

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/nlpodyssey/spago/nn"
	"github.com/surgeon-ml/surgeon/core/ops"
)

// loadModel has a plain linear layer, a Conv1D one (weight saved
// transposed) and a norm (vector parameter).
type loadModel struct {
	nn.Module
	Proj *Linear  `hf:"proj"`
	Conv *Linear  `hf:"conv"`
	Norm *RMSNorm `hf:"norm"`
}

func newLoadModel() *loadModel {
	conv := NewLinear(3, 2, true)
	conv.Conv1D = true
	return &loadModel{Proj: NewLinear(3, 2, false), Conv: conv, Norm: NewRMSNorm(2, 1e-5)}
}

// mapSource serves tensors from a map and counts how they were read.
type mapSource struct {
	vals   map[string][]float32
	shapes map[string][]int
	copies []string // names read with Float32
	into   []string // names read with Float32Into
}

func (s *mapSource) Float32(name string) ([]float32, []int, error) {
	v, ok := s.vals[name]
	if !ok {
		return nil, nil, errors.New("missing from the checkpoint")
	}
	s.copies = append(s.copies, name)
	return slices.Clone(v), s.shapes[name], nil
}

// intoSource adds Float32Into to a mapSource.
type intoSource struct{ *mapSource }

var _ IntoSource = intoSource{}

func (s intoSource) Shape(name string) ([]int, error) {
	sh, ok := s.shapes[name]
	if !ok {
		return nil, errors.New("missing from the checkpoint")
	}
	return sh, nil
}

func (s intoSource) Float32Into(name string, dst []float32) error {
	v := s.vals[name]
	if len(v) != len(dst) {
		return fmt.Errorf("destination has %d elements, tensor has %d", len(dst), len(v))
	}
	s.into = append(s.into, name)
	copy(dst, v)
	return nil
}

// checkpoint returns the tensors of a loadModel in the layout Hugging Face
// saves them: conv.weight is [in, out] = [3, 2].
func checkpoint() *mapSource {
	return &mapSource{
		vals: map[string][]float32{
			"proj.weight": {1, 2, 3, 4, 5, 6},
			"conv.weight": {1, 2, 3, 4, 5, 6}, // [in=3, out=2]
			"conv.bias":   {7, 8},
			"norm.weight": {9, 10},
		},
		shapes: map[string][]int{
			"proj.weight": {2, 3},
			"conv.weight": {3, 2},
			"conv.bias":   {2},
			"norm.weight": {2},
		},
	}
}

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src      func(*mapSource) Source
		wantInto []string
	}{
		{"Source", func(m *mapSource) Source { return m }, nil},
		{"IntoSource", func(m *mapSource) Source { return intoSource{m} }, []string{"proj.weight", "conv.bias", "norm.weight"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ms := newLoadModel(), checkpoint()
			if err := Load(m, tc.src(ms)); err != nil {
				t.Fatal(err)
			}
			want := map[string][]float32{
				"proj.weight": {1, 2, 3, 4, 5, 6},
				// Held [out, in]: the transpose of the saved [in, out].
				"conv.weight": {1, 3, 5, 2, 4, 6},
				"conv.bias":   {7, 8},
				"norm.weight": {9, 10},
			}
			for _, p := range Params(m) {
				if got := ops.Data(p.Param); !slices.Equal(got, want[p.Path]) {
					t.Errorf("%s = %v, want %v", p.Path, got, want[p.Path])
				}
				if got := p.Stored(); !slices.Equal(got, ms.vals[p.Path]) {
					t.Errorf("%s stored = %v, want the checkpoint's %v", p.Path, got, ms.vals[p.Path])
				}
			}
			slices.Sort(ms.into)
			slices.Sort(tc.wantInto)
			if !slices.Equal(ms.into, tc.wantInto) {
				t.Errorf("decoded in place: %v, want %v", ms.into, tc.wantInto)
			}
			if tc.wantInto != nil && !slices.Equal(ms.copies, []string{"conv.weight"}) {
				t.Errorf("decoded into a temporary: %v, want only the transposed conv.weight", ms.copies)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*mapSource)
		want    string
		cleanly string // a parameter that must be left as it was
	}{
		{"shape in place", func(m *mapSource) {
			m.vals["proj.weight"] = []float32{1, 2, 3, 4, 5, 6}
			m.shapes["proj.weight"] = []int{3, 2}
		}, "parameter proj.weight: checkpoint shape [3 2], model expects [2 3]", "proj.weight"},
		{"shape of a vector", func(m *mapSource) {
			m.vals["norm.weight"] = []float32{1, 2, 3}
			m.shapes["norm.weight"] = []int{3}
		}, "parameter norm.weight: checkpoint shape [3], model expects [2]", "norm.weight"},
		{"shape transposed", func(m *mapSource) {
			m.shapes["conv.weight"] = []int{2, 3}
		}, "parameter conv.weight: checkpoint shape [2 3], model expects [3 2]", "conv.weight"},
		{"missing", func(m *mapSource) {
			delete(m.vals, "conv.bias")
			delete(m.shapes, "conv.bias")
		}, "parameter conv.bias: missing from the checkpoint", "conv.bias"},
	} {
		for _, into := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/into=%v", tc.name, into), func(t *testing.T) {
				m, ms := newLoadModel(), checkpoint()
				tc.edit(ms)
				var src Source = ms
				if into {
					src = intoSource{ms}
				}
				before := map[string][]float32{}
				for _, p := range Params(m) {
					before[p.Path] = slices.Clone(ops.Data(p.Param))
				}
				err := Load(m, src)
				if err == nil || err.Error() != tc.want {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				for _, p := range Params(m) {
					if p.Path == tc.cleanly && !slices.Equal(ops.Data(p.Param), before[p.Path]) {
						t.Errorf("%s was written: %v", p.Path, ops.Data(p.Param))
					}
				}
				if slices.Contains(ms.into, tc.cleanly) {
					t.Errorf("%s was decoded in place despite the error", tc.cleanly)
				}
			})
		}
	}
}
