package mistral

import (
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
)

const cfg = `{"model_type":"mistral","architectures":["MistralForCausalLM"],"hidden_size":32,"intermediate_size":48,
	"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50,"rms_norm_eps":1e-6,
	"sliding_window":WINDOW}`

// Mistral takes sliding_window from its config (4096 when absent, none
// when null), writes it back to config.json, has Llama's parameters and
// classifies as MistralForSequenceClassification.
func TestMistral(t *testing.T) {
	for _, tc := range []struct {
		name, window string
		want         int
		back         any
	}{
		{"window", "3", 3, 3.0},
		{"null", "null", 0, nil},
		{"absent", "", 4096, 4096.0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := strings.Replace(cfg, "WINDOW", tc.window, 1)
			if tc.window == "" {
				c = strings.Replace(cfg, `,
	"sliding_window":WINDOW`, "", 1)
			}
			m, err := model.New([]byte(c))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.(*llama.Model).Config.SlidingWindow; got != tc.want {
				t.Errorf("window %d, want %d", got, tc.want)
			}
			hf := m.HFConfig()
			if v, ok := hf["sliding_window"]; !ok || v != tc.back {
				t.Errorf("config.json sliding_window %v (present %v), want %v", v, ok, tc.back)
			}
			if hf["model_type"] != "mistral" {
				t.Errorf("model_type %v", hf["model_type"])
			}
			n := 0
			for _, p := range layer.Params(m) {
				n++
				if strings.HasSuffix(p.Path, "bias") {
					t.Errorf("unexpected %s", p.Path)
				}
			}
			if n != 1+2*9+1+1 {
				t.Errorf("%d parameters", n)
			}
			cl, err := m.(model.Classifier).ClassifierFor([]string{"a", "b"}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if a := cl.(*llama.Model).Config.Architectures; a[0] != "MistralForSequenceClassification" {
				t.Errorf("classifier %v", a)
			}
		})
	}
	for _, bad := range []string{"0", "-2", `"4096"`, "2.5"} {
		if _, err := model.New([]byte(strings.Replace(cfg, "WINDOW", bad, 1))); err == nil || !strings.Contains(err.Error(), "sliding_window") {
			t.Errorf("sliding_window %s: %v", bad, err)
		}
	}
	if _, err := model.New([]byte(strings.Replace(cfg, "WINDOW", `3,"attention_bias":true`, 1))); err == nil || !strings.Contains(err.Error(), "attention_bias") {
		t.Errorf("attention_bias accepted: %v", err)
	}
}
