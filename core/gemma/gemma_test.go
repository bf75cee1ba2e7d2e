package gemma

import (
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

const base = `"model_type":"gemma","hidden_size":32,"intermediate_size":48,"num_hidden_layers":1,
	"num_attention_heads":4,"num_key_value_heads":1,"vocab_size":50`

// Gemma's defaults (head_dim 256, tied head, GELU-tanh), its norms
// initialised to the identity (weight 0, scale 1 + 0), config.json keys
// written back, and the activation keys it refuses.
func TestGemma(t *testing.T) {
	m, err := model.New([]byte(`{` + base + `}`))
	if err != nil {
		t.Fatal(err)
	}
	c := m.(*llama.Model).Config
	if c.HeadDim != 256 || !c.TieWordEmbeddings || c.Activation != GELUTanh || !c.NormUnitOffset || !c.ScaleEmbeddings {
		t.Errorf("defaults: %+v", c)
	}
	shapes := map[string][]int{}
	for _, p := range layer.Params(m) {
		shapes[p.Path] = p.Shape
		if strings.HasSuffix(p.Path, "norm.weight") {
			for _, v := range ops.Data(p.Param) {
				if v != 0 {
					t.Fatalf("%s initialised to %v, want 0", p.Path, v)
				}
			}
		}
	}
	if s := shapes["model.layers.0.self_attn.q_proj.weight"]; s[0] != 4*256 || s[1] != 32 {
		t.Errorf("q_proj %v", s)
	}
	if _, ok := shapes["lm_head.weight"]; ok {
		t.Error("lm_head with tied embeddings")
	}
	cl, err := m.(model.Classifier).ClassifierFor([]string{"a", "b"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a := cl.(*llama.Model).Config.Architectures; a[0] != "GemmaForSequenceClassification" {
		t.Errorf("classifier %v", a)
	}

	m, err = model.New([]byte(`{` + base + `,"head_dim":8,"hidden_act":"gelu","hidden_activation":"gelu_pytorch_tanh"}`))
	if err != nil {
		t.Fatal(err)
	}
	if hf := m.HFConfig(); hf["hidden_activation"] != GELUTanh || hf["hidden_act"] != "gelu" || hf["head_dim"] != 8.0 {
		t.Errorf("config.json %v", hf)
	}
	for _, tc := range []struct{ extra, key string }{
		{`"hidden_act":"gelu"`, "hidden_activation"},
		{`"hidden_activation":"silu"`, "hidden_activation"},
		{`"hidden_act":"silu"`, "hidden_act"},
		{`"use_bidirectional_attention":true`, "use_bidirectional_attention"},
		{`"sliding_window":4`, "sliding_window"},
		{`"final_logit_softcapping":30`, "final_logit_softcapping"},
		{`"rope_scaling":{"rope_type":"mrope","factor":2}`, "mrope"},
		{`"rope_scaling":{"rope_type":"linear"}`, "factor"},
	} {
		if _, err := model.New([]byte(`{` + base + `,` + tc.extra + `}`)); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %v, want one naming %s", tc.extra, err, tc.key)
		}
	}
}
