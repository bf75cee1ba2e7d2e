package gpt2

import (
	"math"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

const cfg = `{"model_type":"gpt2","architectures":["GPT2LMHeadModel"],"n_embd":32,"n_head":4,"n_layer":2,
	"n_positions":16,"vocab_size":50,"n_inner":null,"task_specific_params":{"text-generation":{"do_sample":true}}}`

// GPT-2 parameters carry Hugging Face names, Conv1D weights their saved
// [in, out] shape, and the config keeps the keys it does not use.
func TestNamesAndShapes(t *testing.T) {
	m, err := model.New([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][]int{}
	transposed := map[string]bool{}
	for _, p := range layer.Params(m) {
		shapes[p.Path] = p.Shape
		transposed[p.Path] = p.Transposed
	}
	for name, want := range map[string][]int{
		"transformer.wte.weight":               {50, 32},
		"transformer.wpe.weight":               {16, 32},
		"transformer.h.0.ln_1.weight":          {32},
		"transformer.h.0.attn.c_attn.weight":   {32, 96},
		"transformer.h.0.attn.c_attn.bias":     {96},
		"transformer.h.1.attn.c_proj.weight":   {32, 32},
		"transformer.h.1.mlp.c_fc.weight":      {32, 128},
		"transformer.h.1.mlp.c_proj.weight":    {128, 32},
		"transformer.h.1.ln_2.bias":            {32},
		"transformer.ln_f.weight":              {32},
		"transformer.h.0.mlp.c_proj.bias":      {32},
		"transformer.h.0.attn.c_attn.weight#T": nil,
	} {
		if strings.HasSuffix(name, "#T") {
			if !transposed[strings.TrimSuffix(name, "#T")] {
				t.Errorf("%s is not marked transposed", name)
			}
			continue
		}
		got, ok := shapes[name]
		if !ok || len(got) != len(want) || got[0] != want[0] || len(got) == 2 && got[1] != want[1] {
			t.Errorf("%s: shape %v, want %v", name, got, want)
		}
	}
	if len(shapes) != 2+2*12+2 {
		t.Errorf("%d parameters", len(shapes))
	}
	if _, ok := shapes["lm_head.weight"]; ok {
		t.Error("tied model has lm_head.weight")
	}
	c := m.HFConfig()
	if c["task_specific_params"] == nil || c["tie_word_embeddings"] != true || c["activation_function"] != "gelu_new" {
		t.Errorf("config %v", c)
	}
	cl, err := m.(model.Classifier).ClassifierFor([]string{"a", "b", "c"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a := cl.(*Model).Config.Architectures; a[0] != "GPT2ForSequenceClassification" || cl.Task() != model.SequenceClassification || model.NumLabels(cl) != 3 {
		t.Errorf("classifier %v %v", a, cl.Task())
	}
}

// A Conv1D weight loads from its saved [in, out] layout into the [out, in]
// linear layer and reads back unchanged.
func TestConv1DLayout(t *testing.T) {
	m, err := model.New([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range layer.Params(m) {
		if p.Path != "transformer.h.0.attn.c_attn.weight" {
			continue
		}
		in, out := p.Shape[0], p.Shape[1]
		saved := make([]float32, in*out)
		for i := range saved {
			saved[i] = float32(i)
		}
		p.SetStored(saved)
		w := m.(*Model).Transformer.H[0].Attn.CAttn.Base()
		// saved[i][j] (input i, output j) is W[j][i].
		if got := ops.Data(w.Weight)[5*in+3]; got != saved[3*out+5] {
			t.Fatalf("W[5][3] = %v, want %v", got, saved[3*out+5])
		}
		back := p.Stored()
		for i := range back {
			if back[i] != saved[i] {
				t.Fatalf("stored value %d = %v, want %v", i, back[i], saved[i])
			}
		}
		return
	}
	t.Fatal("no c_attn weight")
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ name, repl, key string }{
		{"activation", `"n_inner":null`, `"n_inner":null,"activation_function":"swish"`},
		{"heads", `"n_head":4`, `"n_head":5`},
		{"layers", `"n_layer":2`, `"n_layer":0`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := model.New([]byte(strings.Replace(cfg, c.repl, c.key, 1)))
			want := map[string]string{"activation": "activation_function", "heads": "n_head", "layers": "n_layer"}[c.name]
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want one naming %s", err, want)
			}
		})
	}
}

// gelu_new's gradient matches finite differences.
func TestGELUTanhGrad(t *testing.T) {
	xs := []float32{-3, -1.2, -0.3, 0, 0.4, 1.5, 2.7}
	h := 1e-3
	for _, x := range xs {
		f := func(v float64) float64 { return 0.5 * v * (1 + math.Tanh(geluC*(v+0.044715*v*v*v))) }
		want := (f(float64(x)+h) - f(float64(x)-h)) / (2 * h)
		p := ops.New(1, 1, []float32{x})
		p.SetRequiresGrad(true)
		y := GELUTanh(p)
		if got := ops.Data(y)[0]; math.Abs(float64(got)-f(float64(x))) > 1e-6 {
			t.Fatalf("gelu_new(%v) = %v, want %v", x, got, f(float64(x)))
		}
		fn := &geluTanhFn{x: p}
		if err := fn.Backward(ops.New(1, 1, []float32{1})); err != nil {
			t.Fatal(err)
		}
		if g := ops.Data(p.Grad())[0]; math.Abs(float64(g)-want) > 1e-4 {
			t.Errorf("gelu_new'(%v) = %v, want %v", x, g, want)
		}
	}
}
