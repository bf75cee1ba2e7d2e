package distilbert

import (
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
)

const cfg = `{"model_type":"distilbert","architectures":["DistilBertForSequenceClassification"],"dim":32,"n_layers":2,
	"n_heads":4,"hidden_dim":64,"vocab_size":50,"max_position_embeddings":16,"activation":"gelu",
	"id2label":{"0":"a","1":"b","2":"c"}}`

// DistilBERT is built from config.json with Hugging Face's parameter
// names and shapes (no token types, no pooler).
func TestNames(t *testing.T) {
	m, err := model.New([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][]int{}
	for _, p := range layer.Params(m) {
		shapes[p.Path] = p.Shape
	}
	for name, want := range map[string][]int{
		"distilbert.embeddings.word_embeddings.weight":          {50, 32},
		"distilbert.embeddings.position_embeddings.weight":      {16, 32},
		"distilbert.embeddings.LayerNorm.bias":                  {32},
		"distilbert.transformer.layer.0.attention.q_lin.weight": {32, 32},
		"distilbert.transformer.layer.1.attention.out_lin.bias": {32},
		"distilbert.transformer.layer.1.sa_layer_norm.weight":   {32},
		"distilbert.transformer.layer.0.ffn.lin1.weight":        {64, 32},
		"distilbert.transformer.layer.0.ffn.lin2.weight":        {32, 64},
		"distilbert.transformer.layer.1.output_layer_norm.bias": {32},
		"pre_classifier.weight":                                 {32, 32},
		"classifier.weight":                                     {3, 32},
		"classifier.bias":                                       {3},
	} {
		if got := shapes[name]; len(got) != len(want) || got[0] != want[0] || len(got) == 2 && got[1] != want[1] {
			t.Errorf("%s: shape %v, want %v", name, got, want)
		}
	}
	// 4 embedding tensors + 2 layers x 16 + 4 head tensors.
	if len(shapes) != 4+2*16+4 {
		t.Errorf("%d parameters", len(shapes))
	}
	for name := range shapes {
		if strings.Contains(name, "token_type") || strings.Contains(name, "pooler") {
			t.Errorf("unexpected parameter %s", name)
		}
	}
	c := m.(model.Classifier)
	if got, err := c.ClassifierFor([]string{"x", "y", "z"}, 1); err != nil || got != m {
		t.Errorf("ClassifierFor(3 labels) = %v, %v; want the model itself", got, err)
	}
	if _, err := c.ClassifierFor([]string{"x", "y"}, 1); err == nil || !strings.Contains(err.Error(), "3 classes") {
		t.Errorf("ClassifierFor(2 labels): %v", err)
	}
	if h := c.HeadModules(); strings.Join(h, ",") != "pre_classifier,classifier" {
		t.Errorf("HeadModules %v", h)
	}
	hf := m.HFConfig()
	if hf["model_type"] != "distilbert" || hf["dim"] != 32.0 || hf["n_layers"] != 2.0 {
		t.Errorf("HFConfig %v", hf)
	}
}

// A config that cannot be built names the key at fault.
func TestBadConfig(t *testing.T) {
	for _, c := range []struct{ name, from, to, want string }{
		{"activation", `"activation":"gelu"`, `"activation":"gelu_new"`, "activation"},
		{"heads", `"n_heads":4`, `"n_heads":5`, "dim"},
		{"no layers", `"n_layers":2`, `"n_layers":0`, "n_layers"},
		{"no hidden_dim", `"hidden_dim":64,`, ``, "hidden_dim"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := model.New([]byte(strings.Replace(cfg, c.from, c.to, 1)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
		})
	}
}

// Too long a sequence is an error, not a panic.
func TestTooLong(t *testing.T) {
	m, err := model.New([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Logits(model.NewBatch([][]int{make([]int, 17)}, 0)); err == nil || !strings.Contains(err.Error(), "max_position_embeddings") {
		t.Fatalf("17 tokens: %v", err)
	}
}
