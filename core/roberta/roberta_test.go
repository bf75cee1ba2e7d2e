package roberta

import (
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
)

const cfg = `{"model_type":"roberta","architectures":["RobertaForSequenceClassification"],"hidden_size":32,
	"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":64,"vocab_size":50,"max_position_embeddings":12,
	"type_vocab_size":1,"pad_token_id":1,"layer_norm_eps":1e-5,"hidden_act":"gelu","position_embedding_type":"absolute",
	"id2label":{"0":"a","1":"b"}}`

// Position ids are Hugging Face's create_position_ids_from_input_ids.
func TestPositions(t *testing.T) {
	for _, c := range []struct {
		name string
		ids  [][]int
		pad  int
		want []int
	}{
		{"one row", [][]int{{0, 5, 6, 2}}, 1, []int{2, 3, 4, 5}},
		{"right padding", [][]int{{0, 5, 2, 1, 1}, {0, 5, 6, 7, 2}}, 1, []int{2, 3, 4, 1, 1, 2, 3, 4, 5, 6}},
		{"pad inside the text", [][]int{{0, 1, 5, 2}}, 1, []int{2, 1, 3, 4}},
		{"pad 0", [][]int{{3, 4, 0}}, 0, []int{1, 2, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Positions(c.ids, c.pad); !slices.Equal(got, c.want) {
				t.Fatalf("positions %v, want %v", got, c.want)
			}
		})
	}
}

// RoBERTa and XLM-RoBERTa are built with Hugging Face's names: BERT's
// layout under roberta., no pooler, classifier.dense and out_proj.
func TestNames(t *testing.T) {
	for _, mt := range ModelTypes {
		t.Run(mt, func(t *testing.T) {
			m, err := model.New([]byte(strings.Replace(cfg, `"model_type":"roberta"`, `"model_type":"`+mt+`"`, 1)))
			if err != nil {
				t.Fatal(err)
			}
			shapes := map[string][]int{}
			for _, p := range layer.Params(m) {
				shapes[p.Path] = p.Shape
			}
			for name, want := range map[string][]int{
				"roberta.embeddings.word_embeddings.weight":               {50, 32},
				"roberta.embeddings.position_embeddings.weight":           {12, 32},
				"roberta.embeddings.token_type_embeddings.weight":         {1, 32},
				"roberta.encoder.layer.1.attention.self.query.weight":     {32, 32},
				"roberta.encoder.layer.0.attention.output.LayerNorm.bias": {32},
				"roberta.encoder.layer.1.intermediate.dense.weight":       {64, 32},
				"classifier.dense.weight":                                 {32, 32},
				"classifier.out_proj.weight":                              {2, 32},
				"classifier.out_proj.bias":                                {2},
			} {
				if got := shapes[name]; len(got) != len(want) || got[0] != want[0] || len(got) == 2 && got[1] != want[1] {
					t.Errorf("%s: shape %v, want %v", name, got, want)
				}
			}
			for name := range shapes {
				if strings.Contains(name, "pooler") {
					t.Errorf("unexpected parameter %s", name)
				}
			}
			if m.HFConfig()["model_type"] != mt {
				t.Errorf("model_type %v", m.HFConfig()["model_type"])
			}
			c := m.(model.Classifier)
			if got, err := c.ClassifierFor([]string{"x", "y"}, 1); err != nil || got != m {
				t.Errorf("ClassifierFor(2 labels) = %v, %v; want the model itself", got, err)
			}
			if _, err := c.ClassifierFor([]string{"x", "y", "z"}, 1); err == nil {
				t.Errorf("ClassifierFor(3 labels) accepted")
			}
			if h := c.HeadModules(); len(h) != 1 || h[0] != "classifier" {
				t.Errorf("HeadModules %v", h)
			}
		})
	}
}

// A config that cannot be built names the key at fault.
func TestBadConfig(t *testing.T) {
	for _, c := range []struct{ name, from, to, want string }{
		{"relative positions", `"position_embedding_type":"absolute"`, `"position_embedding_type":"relative_key"`, "position_embedding_type"},
		{"activation", `"hidden_act":"gelu"`, `"hidden_act":"relu"`, "hidden_act"},
		{"heads", `"num_attention_heads":4`, `"num_attention_heads":5`, "hidden_size"},
		{"pad outside", `"pad_token_id":1`, `"pad_token_id":50`, "pad_token_id"},
		{"no type table", `"type_vocab_size":1`, `"type_vocab_size":0`, "type_vocab_size"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := model.New([]byte(strings.Replace(cfg, c.from, c.to, 1)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
		})
	}
}

// Positions start at padding_idx + 1, so max_position_embeddings 12 with
// pad 1 holds 10 tokens; 11 is an error, not a panic.
func TestTooLong(t *testing.T) {
	m, err := model.New([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, 10)
	if _, err := m.Logits(model.NewBatch([][]int{ids}, 1)); err != nil {
		t.Fatalf("10 tokens: %v", err)
	}
	ids = append(ids, 0)
	if _, err := m.Logits(model.NewBatch([][]int{ids}, 1)); err == nil || !strings.Contains(err.Error(), "max_position_embeddings") {
		t.Fatalf("11 tokens: %v", err)
	}
}
