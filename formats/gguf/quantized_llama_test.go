package gguf_test

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/formats/gguf"
	"github.com/surgeon-ml/surgeon/formats/inspect"
)

const stories = "../../../shared/fixtures/stories260K-gguf/stories260K.gguf"

// rotate returns a pick function giving each matrix whose rows divide into
// blocks the next of types in turn; vectors and other matrices keep their
// type, as llama.cpp's quantizer leaves them.
func rotate(types ...gguf.GGMLType) (func(gguf.TensorInfo) gguf.GGMLType, map[gguf.GGMLType]bool) {
	used := map[gguf.GGMLType]bool{}
	i := 0
	return func(ti gguf.TensorInfo) gguf.GGMLType {
		if len(ti.Dims) != 2 {
			return ti.Type
		}
		for range types {
			typ := types[i%len(types)]
			i++
			if ti.Dims[0]%uint64(typ.BlockSize()) == 0 {
				used[typ] = true
				return typ
			}
		}
		return ti.Type
	}, used
}

// TestQuantizedLlamaLogits builds Llama GGUFs with quantized tensors
// (stories260K's F32 weights quantized by Quantize to the 32-element block
// types, and a random Llama of width 256 in the K types), loads them
// through core/checkpoint and checks that the logits equal, bit for bit,
// those of the same model stored as the dequantized F32 values.
func TestQuantizedLlamaLogits(t *testing.T) {
	cases := []struct {
		name  string
		src   func(t *testing.T) []byte
		types []gguf.GGMLType
		ids   []int
	}{
		{"stories260K", func(t *testing.T) []byte {
			b, err := os.ReadFile(stories)
			if os.IsNotExist(err) {
				t.Skipf("%s is absent: the shared fixtures are not next to the repository", stories)
			}
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, []gguf.GGMLType{gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeQ4_1, gguf.TypeQ5_0, gguf.TypeQ5_1, gguf.TypeIQ4_NL, gguf.TypeF16, gguf.TypeBF16},
			[]int{1, 403, 407, 261, 378, 426}},
		{"random-k", func(*testing.T) []byte { return gguf.RandomLlamaForTest(256, 512, 64, 3) },
			[]gguf.GGMLType{gguf.TypeQ2_K, gguf.TypeQ3_K, gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K, gguf.TypeIQ4_XS},
			[]int{1, 5, 9, 33, 63, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, err := gguf.Parse(c.src(t))
			if err != nil {
				t.Fatal(err)
			}
			pick, used := rotate(c.types...)
			quant, twin, err := gguf.RequantizeForTest(src, pick)
			if err != nil {
				t.Fatal(err)
			}
			for _, typ := range c.types {
				if !used[typ] {
					t.Fatalf("no tensor got %s", typ)
				}
			}
			dir := t.TempDir()
			qPath, fPath := filepath.Join(dir, "q.gguf"), filepath.Join(dir, "f32.gguf")
			if err := os.WriteFile(qPath, quant, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(fPath, twin, 0o644); err != nil {
				t.Fatal(err)
			}
			got := logits(t, qPath, c.ids)
			want := logits(t, fPath, c.ids)
			if len(got) != len(want) || len(got) == 0 {
				t.Fatalf("%d logits, want %d", len(got), len(want))
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("logit %d: quantized file %g, dequantized F32 file %g", i, got[i], want[i])
				}
			}

			r, err := inspect.Path(qPath)
			if err != nil {
				t.Fatal(err)
			}
			var dtypes []string
			for _, tt := range r.Tensors {
				dtypes = append(dtypes, tt.DType)
			}
			for _, typ := range c.types {
				if !slices.Contains(dtypes, typ.String()) {
					t.Errorf("inspect lists no %s tensor: %v", typ, dtypes)
				}
			}
			if r.BitsPerWeight <= 2 || r.BitsPerWeight >= 32 {
				t.Errorf("bits per weight %g", r.BitsPerWeight)
			}
		})
	}
}

func logits(t *testing.T, path string, ids []int) []float32 {
	t.Helper()
	l, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out, err := l.Model.Logits(model.NewBatch([][]int{ids}, 0))
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(ops.Data(out))
}
