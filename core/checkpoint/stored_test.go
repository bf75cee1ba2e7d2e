package checkpoint

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/linalg"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

// A model whose linear weights stay stored (LoadStored) gives exactly the
// logits of the float32-loaded one, for every reference family and dtype,
// single and sharded (those logits match the independent PyTorch
// references: TestReferenceLogits); its linear layers hold sources and no
// values, and materializing gives back the loaded weights.
func TestLoadStoredEqualsLoad(t *testing.T) {
	cases, err := os.ReadDir(refDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cases {
		dir := filepath.Join(refDir, c.Name())
		if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
			continue
		}
		n++
		t.Run(c.Name(), func(t *testing.T) {
			want, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			got, err := LoadStored(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			stored := 0
			for _, mod := range layer.Modules(got.Model) {
				if s, ok := mod.Model.(*layer.Slot); ok && s.Base() != nil && s.Base().Source != nil {
					stored++
				}
			}
			if stored == 0 {
				t.Fatal("no linear layer keeps its weight stored")
			}
			// Every table stays stored too: the reference folders are
			// F32, F16 or BF16, whose rows are read as they are stored.
			tables := layer.Embeddings(got.Model)
			for path, e := range tables {
				if e.Source == nil {
					t.Fatalf("embedding %s was read into memory", path)
				}
			}
			ids := [][]int{{1, 5, 9, 2, 7, 3}, {4, 4, 8, 1, 6, 2}}
			a, err := want.Model.Logits(model.NewBatch(ids, 0))
			if err != nil {
				t.Fatal(err)
			}
			lookups := ops.StoredEmbeddings()
			b, err := got.Model.Logits(model.NewBatch(ids, 0))
			if err != nil {
				t.Fatal(err)
			}
			if len(tables) == 0 || ops.StoredEmbeddings() == lookups {
				t.Fatalf("%d tables, none looked up from where it is stored", len(tables))
			}
			av, bv := ops.Data(a), ops.Data(b)
			for i := range av {
				if av[i] != bv[i] && !(math.IsNaN(float64(av[i])) && math.IsNaN(float64(bv[i]))) {
					t.Fatalf("logit %d: stored %v, loaded %v", i, bv[i], av[i])
				}
			}
			if err := layer.MaterializeAll(got.Model); err != nil {
				t.Fatal(err)
			}
			wp := layer.Params(want.Model)
			for i, p := range layer.Params(got.Model) {
				x, y := ops.Data(p.Param), ops.Data(wp[i].Param)
				for j := range x {
					if x[j] != y[j] {
						t.Fatalf("%s[%d]: materialized %v, loaded %v", p.Path, j, x[j], y[j])
					}
				}
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d reference folders", n)
	}
}

// A model stored in BF16 or F16 whose products multiply the stored halves
// directly, widening them as they pack them (ops.HalfFiller), gives the
// loss and input gradients of the float32-loaded model with the same
// weights frozen, bit for bit. The batch has enough rows for the packed
// products (linalg.DecodesAsPacked); both half types must take that path.
func TestLoadStoredHalfSameGradients(t *testing.T) {
	cases, err := os.ReadDir(refDir)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([][]int, 4)
	for i := range ids {
		for j := range 10 {
			ids[i] = append(ids[i], 1+(7*i+3*j)%60)
		}
	}
	// Both kernel paths: the AVX-512 tiles where the CPU has them, and
	// the AVX2 ones that CPUs without AVX-512 use.
	defer linalg.SetAVX512(linalg.SetAVX512(true))
	for _, avx512 := range []bool{true, false} {
		linalg.SetAVX512(avx512)
		used := map[string]int{}
		for _, c := range cases {
			half := ""
			switch {
			case strings.Contains(c.Name(), "bf16"):
				half = "bf16"
			case strings.Contains(c.Name(), "f16"):
				half = "f16"
			}
			dir := filepath.Join(refDir, c.Name())
			if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil || half == "" {
				continue
			}
			t.Run(fmt.Sprintf("%s/avx512=%v", c.Name(), avx512), func(t *testing.T) {
				if storedSameGrads(t, dir, ids, ops.HalfProducts) > 0 {
					used[half]++
				}
			})
		}
		if linalg.DecodesAsPacked(40, 64) && (used["bf16"] == 0 || used["f16"] == 0) {
			t.Errorf("avx512=%v: reference folders whose products widened stored halves as they packed them: %v; want both types", avx512, used)
		}
	}
}

// A llama GGUF file, quantized or not, keeps its linear weights as stored
// (quantized blocks stay quantized) and gives the logits of the
// dequantized load: exactly, except where a product reads quantized blocks
// in place (qmat), which sums in another order: there within 1e-5 of the
// largest logit.
func TestLoadStoredGGUF(t *testing.T) {
	l := loadStories(t)
	for _, typ := range []string{"f32", "f16", "q8_0", "q4_0", "q5_1"} {
		t.Run(typ, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := SaveGGUF(path, l, typ); err != nil {
				t.Fatal(err)
			}
			want, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			defer want.Close()
			got, err := LoadStored(path)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			types := map[string]bool{}
			for _, mod := range layer.Modules(got.Model) {
				if s, ok := mod.Model.(*layer.Slot); ok && s.Base() != nil && s.Base().Source != nil {
					types[s.Base().Source.DType()] = true
				}
			}
			if len(types) == 0 {
				t.Fatal("no linear layer keeps its weight stored")
			}
			// The token table stays in its GGUF type: lookups
			// dequantize the rows they read.
			e := layer.Embeddings(got.Model)["model.embed_tokens"]
			if e == nil || e.Source == nil {
				t.Fatal("model.embed_tokens was read into memory")
			}
			tableType := e.Source.DType()
			ids := [][]int{{1, 5, 9, 2, 7, 3}}
			a, err := want.Model.Logits(model.NewBatch(ids, 0))
			if err != nil {
				t.Fatal(err)
			}
			b, err := got.Model.Logits(model.NewBatch(ids, 0))
			if err != nil {
				t.Fatal(err)
			}
			av, bv := ops.Data(a), ops.Data(b)
			tol := float32(0)
			if types["Q8_0"] || types["Q4_0"] || types["Q4_K"] || types["Q6_K"] {
				for _, v := range av {
					tol = max(tol, 1e-5*float32(math.Abs(float64(v))))
				}
			}
			for i := range av {
				if d := float32(math.Abs(float64(av[i] - bv[i]))); d > tol || d != d {
					t.Fatalf("logit %d: stored %v, loaded %v (stored types %v)", i, bv[i], av[i], types)
				}
			}
			t.Logf("stored types %v, table %s", types, tableType)
		})
	}
}

// A quantized or half-precision GGUF model, whose longer products decode
// the weights as they pack them (qmat.Matrix.Source, linalg.HalfRows),
// gives the loss and input gradients of the float32 load with the same
// weights frozen, bit for bit, and the 40-row batch does take that path.
func TestLoadStoredGGUFBlockGradients(t *testing.T) {
	l := loadStories(t)
	ids := make([][]int, 4)
	for i := range ids {
		for j := range 10 {
			ids[i] = append(ids[i], 1+(11*i+5*j)%500)
		}
	}
	// Quantized weights are dequantized as they are packed; F16 and BF16
	// ones are read as halves, in Hugging Face's row order (the q and k
	// rows llama.cpp permutes put back), and widened as they are packed.
	for _, c := range []struct {
		typ     string
		counter func() int64
	}{{"q8_0", ops.BlockProducts}, {"q4_0", ops.BlockProducts}, {"f16", ops.HalfProducts}, {"bf16", ops.HalfProducts}} {
		t.Run(c.typ, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := SaveGGUF(path, l, c.typ); err != nil {
				t.Fatal(err)
			}
			if storedSameGrads(t, path, ids, c.counter) == 0 && linalg.DecodesAsPacked(40, 64) {
				t.Fatal("no product decoded the weights as it packed them")
			}
		})
	}
}

// storedSameGrads checks that the model at path, loaded with its linear
// weights stored (LoadStored), gives the loss and gradients on the batch
// ids of the float32 load with the same weights frozen, bit for bit. It
// returns by how much counter moved during the stored run.
func storedSameGrads(t *testing.T, path string, ids [][]int, counter func() int64) int64 {
	t.Helper()
	stored, err := LoadStored(path)
	if err != nil {
		t.Fatal(err)
	}
	defer stored.Close()
	loaded, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	for _, m := range []*Loaded{stored, loaded} {
		for _, p := range layer.Params(m.Model) {
			p.Param.SetRequiresGrad(!isStored(stored, p.Path))
		}
	}
	l0, g0 := lossAndGradsOf(t, loaded, ids)
	before := counter()
	l1, g1 := lossAndGradsOf(t, stored, ids)
	n := counter() - before
	sameGrads(t, path, "stored", l0, g0, l1, g1)
	return n
}
