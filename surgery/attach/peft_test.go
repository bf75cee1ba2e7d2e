package attach_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
	"github.com/surgeon-ml/surgeon/plugins/builtin/ia3"
	"github.com/surgeon-ml/surgeon/plugins/builtin/lora"
	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

const peftDir = "../../core/testdata/reference/peft"

type peftExpected struct {
	Base   string             `json:"base"`
	Inputs [][]int            `json:"inputs"`
	Logits [][][]float64      `json:"logits"`
	Scales map[string]float64 `json:"scales"`
}

func logitsOf(t *testing.T, m model.Model, in []int) []float32 {
	t.Helper()
	l, err := m.Logits(model.Batch{IDs: [][]int{in}})
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), ops.Data(l)...)
}

// TestPEFTReference applies random PEFT adapters (LoRA, rsLoRA with rank and
// alpha patterns, DoRA, regex targets, modules_to_save) to the reference
// checkpoints and compares with an independent PyTorch implementation of
// PEFT's formulas (tools/refgen/peftgen.py): logits within 1e-4 relative,
// merged weights within 1e-5 relative, and merged-model logits equal to the
// adapter-on-the-fly logits.
func TestPEFTReference(t *testing.T) {
	planner := sdktest.Connect(t, append(lora.Adapters(), ia3.Adapters()...)...)
	cases, err := os.ReadDir(peftDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cases {
		if !c.IsDir() {
			continue
		}
		n++
		t.Run(c.Name(), func(t *testing.T) {
			dir := filepath.Join(peftDir, c.Name())
			raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			var exp peftExpected
			if err := json.Unmarshal(raw, &exp); err != nil {
				t.Fatal(err)
			}
			l, err := checkpoint.Load(filepath.Join(peftDir, "..", exp.Base))
			if err != nil {
				t.Fatal(err)
			}
			a, err := peft.Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			// Every module the adapter file holds is selected by its config.
			for _, m := range a.ModuleNames() {
				if ok, err := a.Config.Targets(m); err != nil || !ok {
					t.Errorf("module %s not selected by target_modules %v (%v)", m, a.Config.TargetModules, err)
				}
			}
			targets, err := attach.Split(context.Background(), attach.InProcess(planner), a)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := attach.Attach(context.Background(), l.Model, planner, targets, 0); err != nil {
				t.Fatal(err)
			}
			if err := attach.ApplySaved(l.Model, a.Saved, 1); err != nil {
				t.Fatal(err)
			}
			onTheFly := make([][]float32, len(exp.Inputs))
			for i, in := range exp.Inputs {
				got := logitsOf(t, l.Model, in)
				onTheFly[i] = got
				want := exp.Logits[i]
				cols := len(want[0])
				for r := range want {
					for c, w := range want[r] {
						if g := got[r*cols+c]; math.Abs(float64(g)-w) > 1e-4*math.Max(1, math.Abs(w)) {
							t.Fatalf("input %d logit [%d,%d] = %v, PyTorch PEFT reference %v", i, r, c, g, w)
						}
					}
				}
			}
			// Merge and compare the weights with the reference merge.
			if err := attach.Merge(l.Model); err != nil {
				t.Fatal(err)
			}
			merged, err := safetensors.Open(filepath.Join(dir, "merged.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer merged.Close()
			params := map[string]layer.Param{}
			for _, p := range layer.Params(l.Model) {
				params[p.Path] = p
			}
			for _, name := range merged.Names() {
				want, err := merged.Float32(name)
				if err != nil {
					t.Fatal(err)
				}
				p, ok := params[name]
				if !ok {
					t.Fatalf("merged model lacks %s", name)
				}
				got := ops.Data(p.Param)
				scale := 0.0
				for _, w := range want {
					scale = math.Max(scale, math.Abs(float64(w)))
				}
				for i := range want {
					if math.Abs(float64(got[i]-want[i])) > 1e-5*math.Max(scale, 1e-3) {
						t.Fatalf("%s[%d] = %v, reference merge %v", name, i, got[i], want[i])
					}
				}
			}
			for i, in := range exp.Inputs {
				got := logitsOf(t, l.Model, in)
				for j := range got {
					if math.Abs(float64(got[j]-onTheFly[i][j])) > 1e-4*math.Max(1, math.Abs(float64(onTheFly[i][j]))) {
						t.Fatalf("input %d: merged-model logit %d = %v, adapter on the fly %v", i, j, got[j], onTheFly[i][j])
					}
				}
			}
		})
	}
	if n < 6 {
		t.Fatalf("found %d PEFT reference cases", n)
	}
}
