package checkpoint

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/qmat"
)

// A stored GGUF weight of a type qmat multiplies hands out its blocks,
// and they decode, row order included, to exactly the values Fill writes;
// QuantizedGGUF tells the quantized files from the others.
func TestGGUFWeightMatrix(t *testing.T) {
	l := loadStories(t)
	for _, c := range []struct {
		typ    string
		blocks bool
	}{{"f32", false}, {"q8_0", true}, {"q4_0", true}} {
		t.Run(c.typ, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := SaveGGUF(path, l, c.typ); err != nil {
				t.Fatal(err)
			}
			if got := QuantizedGGUF(path); got != c.blocks {
				t.Fatalf("QuantizedGGUF = %v, want %v", got, c.blocks)
			}
			s, err := LoadStored(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			n := 0
			for name, lin := range layer.Linears(s.Model) {
				w, ok := lin.Source.(*ggufWeight)
				if !ok {
					continue
				}
				m, ok := w.Matrix()
				if !ok {
					continue
				}
				n++
				want := make([]float32, lin.Out()*lin.In())
				if err := w.Fill(want); err != nil {
					t.Fatal(err)
				}
				got := make([]float32, len(want))
				qmat.Dequantize(got, m)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s[%d]: blocks decode to %g, Fill %g", name, i, got[i], want[i])
					}
				}
			}
			if (n > 0) != c.blocks {
				t.Fatalf("%d weights read as blocks, want blocks: %v", n, c.blocks)
			}
		})
	}
}
