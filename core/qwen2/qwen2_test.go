package qwen2

import (
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
)

const cfg = `{"model_type":"qwen2","architectures":["Qwen2ForCausalLM"],"hidden_size":32,"intermediate_size":48,
	"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50,"rms_norm_eps":1e-6,
	"use_sliding_window":false,"sliding_window":null,"max_window_layers":2}`

// Qwen2 has biases on q, k and v only, named as in Hugging Face
// checkpoints, and classifies as Qwen2ForSequenceClassification.
func TestQwen2(t *testing.T) {
	m, err := model.New([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	shapes := map[string][]int{}
	for _, p := range layer.Params(m) {
		shapes[p.Path] = p.Shape
	}
	for name, want := range map[string][]int{
		"model.layers.0.self_attn.q_proj.bias": {32},
		"model.layers.1.self_attn.k_proj.bias": {16},
		"model.layers.1.self_attn.v_proj.bias": {16},
	} {
		if got := shapes[name]; len(got) != 1 || got[0] != want[0] {
			t.Errorf("%s: shape %v, want %v", name, got, want)
		}
	}
	for name := range shapes {
		if strings.Contains(name, "o_proj.bias") || strings.Contains(name, "mlp") && strings.HasSuffix(name, "bias") || strings.Contains(name, "norm.weight") && strings.Contains(name, "self_attn") {
			t.Errorf("unexpected parameter %s", name)
		}
	}
	if m.HFConfig()["model_type"] != "qwen2" {
		t.Errorf("model_type %v", m.HFConfig()["model_type"])
	}
	c, err := m.(model.Classifier).ClassifierFor([]string{"a", "b", "c"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.(*llama.Model).Config.Architectures; a[0] != "Qwen2ForSequenceClassification" || c.Task() != model.SequenceClassification {
		t.Errorf("classifier %v %v", a, c.Task())
	}
	if _, err := model.New([]byte(strings.Replace(cfg, `"use_sliding_window":false`, `"use_sliding_window":true`, 1))); err == nil || !strings.Contains(err.Error(), "use_sliding_window") {
		t.Errorf("sliding window accepted: %v", err)
	}
}
