package checkpoint

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

// expected is the schema of core/testdata/reference/*/expected.json, written
// by tools/refgen/refgen.py from an independent PyTorch implementation.
type expected struct {
	Inputs [][]int        `json:"inputs"`
	Logits [][][]float64  `json:"logits"`
	Batch  *expectedBatch `json:"batch"`
}

type expectedBatch struct {
	InputIDs      [][]int       `json:"input_ids"`
	AttentionMask [][]int       `json:"attention_mask"`
	Logits        [][][]float64 `json:"logits"`
}

const refDir = "../testdata/reference"

// closeEnough is the tolerance: 1e-4 x max(1, |logit|).
func closeEnough(got float32, want float64) bool {
	return math.Abs(float64(got)-want) <= 1e-4*math.Max(1, math.Abs(want))
}

func TestReferenceLogits(t *testing.T) {
	cases, err := os.ReadDir(refDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cases {
		if _, err := os.Stat(filepath.Join(refDir, c.Name(), "config.json")); !c.IsDir() || err != nil {
			continue // not a base case (e.g. the peft/ adapters)
		}
		n++
		t.Run(c.Name(), func(t *testing.T) {
			dir := filepath.Join(refDir, c.Name())
			raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			var exp expected
			if err := json.Unmarshal(raw, &exp); err != nil {
				t.Fatal(err)
			}
			l, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			for i, in := range exp.Inputs {
				logits, err := l.Model.Logits(model.NewBatch([][]int{in}, 0))
				if err != nil {
					t.Fatal(err)
				}
				compare(t, "input "+itoa(i), logits.Value().Shape(), ops.Data(logits), exp.Logits[i], nil)
			}
			if exp.Batch == nil {
				return
			}
			b := model.Batch{IDs: exp.Batch.InputIDs}
			for _, row := range exp.Batch.AttentionMask {
				m := make([]bool, len(row))
				for j, v := range row {
					m[j] = v == 1
				}
				b.Mask = append(b.Mask, m)
			}
			logits, err := l.Model.Logits(b)
			if err != nil {
				t.Fatal(err)
			}
			data := ops.Data(logits)
			cols := logits.Value().Shape()[1]
			if l.Model.Task() == model.CausalLM {
				T := len(b.IDs[0])
				for s := range b.IDs {
					compare(t, "batch row "+itoa(s), []int{T, cols}, data[s*T*cols:(s+1)*T*cols], exp.Batch.Logits[s], b.Mask[s])
				}
			} else {
				for s := range b.IDs {
					compare(t, "batch row "+itoa(s), []int{1, cols}, data[s*cols:(s+1)*cols], exp.Batch.Logits[s], nil)
				}
			}
		})
	}
	if n < 5 {
		t.Fatalf("only %d reference cases found", n)
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

func compare(t *testing.T, what string, shape []int, got []float32, want [][]float64, mask []bool) {
	t.Helper()
	if shape[0] != len(want) || shape[1] != len(want[0]) {
		t.Fatalf("%s: logits shape %v, want [%d %d]", what, shape, len(want), len(want[0]))
	}
	worst := 0.0
	for r := range want {
		if mask != nil && !mask[r] {
			continue
		}
		for c, w := range want[r] {
			g := got[r*shape[1]+c]
			worst = math.Max(worst, math.Abs(float64(g)-w))
			if !closeEnough(g, w) {
				t.Fatalf("%s: logit [%d,%d] = %v, reference %v", what, r, c, g, w)
			}
		}
	}
	t.Logf("%s: max abs diff %.3g", what, worst)
}
