package checkpoint

import (
	"path/filepath"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/formats/gguf"
)

// A model written as GGUF reads back to its weights as the quantizer
// stores them: each 2-D weight equals quantize-then-dequantize of the
// original (F16 where rows do not divide into the type's blocks), vectors
// are exact, and the tokenizer survives.
func TestSaveGGUFReadsBack(t *testing.T) {
	src := "../../../shared/fixtures/stories260K-gguf/stories260K.gguf"
	l, err := Load(src)
	if err != nil {
		t.Skipf("stories260K fixture: %v", err)
	}
	defer l.Close()
	orig := map[string][]float32{}
	for _, p := range layer.Params(l.Model) {
		orig[p.Path] = append([]float32(nil), ops.Data(p.Param)...)
	}
	for _, typ := range []string{"f32", "f16", "bf16", "q8_0", "q4_0", "q5_1", "q4_k"} {
		t.Run(typ, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), typ+".gguf")
			if err := SaveGGUF(out, l, typ); err != nil {
				t.Fatal(err)
			}
			back, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			defer back.Close()
			want := gguf.FileTypes[typ].Type
			for _, p := range layer.Params(back.Model) {
				o, ok := orig[p.Path]
				if !ok {
					t.Fatalf("%s: not in the source", p.Path)
				}
				typ := want
				switch {
				case len(p.Shape) != 2:
					typ = gguf.TypeF32
				case p.Shape[1]%typ.BlockSize() != 0:
					typ = gguf.TypeF16
				}
				var exp []float32
				if len(p.Shape) == 2 {
					// Quantize row by row in llama.cpp's q/k layout is the same
					// as in Hugging Face's: the permutation moves whole rows.
					q, err := gguf.Quantize(typ, o)
					if err != nil {
						t.Fatal(err)
					}
					exp = make([]float32, len(o))
					if err := gguf.Dequantize(typ, exp, q); err != nil {
						t.Fatal(err)
					}
				} else {
					exp = o
				}
				got := ops.Data(p.Param)
				for i := range exp {
					if got[i] != exp[i] {
						t.Fatalf("%s (%s)[%d] = %v, quantizer's %v", p.Path, typ, i, got[i], exp[i])
					}
				}
			}
			tok, err := LoadTokenizer(out, back)
			if err != nil {
				t.Fatal(err)
			}
			if ids := tok.Encode("Once upon a time", true); len(ids) < 4 || ids[0] != 1 {
				t.Fatalf("tokenizer after the round trip: %v", ids)
			}
		})
	}
}
