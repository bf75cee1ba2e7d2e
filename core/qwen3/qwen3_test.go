package qwen3

import (
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
)

// Qwen3 has per-head q_norm and k_norm over head_dim, which defaults to
// 128 whatever hidden_size is, and no projection biases by default.
func TestQwen3(t *testing.T) {
	for _, tc := range []struct {
		name, headDim string
		dh            int
	}{{"explicit head_dim", `"head_dim":24,`, 24}, {"default head_dim", ``, 128}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := model.New([]byte(`{"model_type":"qwen3",` + tc.headDim + `"hidden_size":32,"intermediate_size":48,
				"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50}`))
			if err != nil {
				t.Fatal(err)
			}
			shapes := map[string][]int{}
			for _, p := range layer.Params(m) {
				shapes[p.Path] = p.Shape
				if strings.HasSuffix(p.Path, "bias") {
					t.Errorf("unexpected bias %s", p.Path)
				}
			}
			for name, want := range map[string][]int{
				"model.layers.0.self_attn.q_norm.weight": {tc.dh},
				"model.layers.0.self_attn.k_norm.weight": {tc.dh},
				"model.layers.0.self_attn.q_proj.weight": {4 * tc.dh, 32},
				"model.layers.0.self_attn.k_proj.weight": {2 * tc.dh, 32},
				"model.layers.0.self_attn.o_proj.weight": {32, 4 * tc.dh},
			} {
				got := shapes[name]
				if len(got) != len(want) || got[0] != want[0] || len(want) == 2 && got[1] != want[1] {
					t.Errorf("%s: shape %v, want %v", name, got, want)
				}
			}
		})
	}
}
