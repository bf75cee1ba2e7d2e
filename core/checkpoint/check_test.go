package checkpoint

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A config that contradicts the tensors names the key; every problem is
// listed at once with the shapes the model expects.
func TestCheckpointMismatchErrors(t *testing.T) {
	src := filepath.Join(refDir, "llama-gqa-f32")
	for _, tc := range []struct {
		name string
		edit func(cfg map[string]any)
		want []string
	}{
		{"intermediate_size", func(c map[string]any) { c["intermediate_size"] = 200 },
			[]string{"model.layers.0.mlp.gate_proj.weight: checkpoint shape [160 64], model expects [200 64] (set by config intermediate_size = 200; the checkpoint has 160)", "(6 problems)"}},
		{"num_key_value_heads", func(c map[string]any) { c["num_key_value_heads"] = 4 },
			[]string{"self_attn.k_proj.weight: checkpoint shape [32 64], model expects [64 64] (set by config num_key_value_heads = 4, head_dim = 16; the checkpoint has 32)"}},
		{"more layers", func(c map[string]any) { c["num_hidden_layers"] = 3 },
			[]string{"missing model.layers.2.input_layernorm.weight [64]", "missing model.layers.2.self_attn.q_proj.weight [64 64]"}},
		{"fewer layers", func(c map[string]any) { c["num_hidden_layers"] = 1 },
			[]string{"checkpoint tensors not used by the model: model.layers.1."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			entries, err := os.ReadDir(src)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				data, err := os.ReadFile(filepath.Join(src, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				if e.Name() == "config.json" {
					var cfg map[string]any
					if err := json.Unmarshal(data, &cfg); err != nil {
						t.Fatal(err)
					}
					tc.edit(cfg)
					data, _ = json.Marshal(cfg)
				}
				if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err = Load(dir)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
