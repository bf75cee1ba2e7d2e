package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every shipped adapter type trained by `surgeon apply` is saved in its
// plugin's PEFT form, loads with `forward --adapter`, and merges into a
// model whose logits equal the adapter's on the fly to 1e-4.
func TestAdapterTypesEndToEnd(t *testing.T) {
	fx, _ := filepath.Abs(fixture(t, "."))
	withPlugins(t, "lora", "ia3", "loha")
	base := filepath.Join(fx, "stories260K-gguf", "stories260K.gguf")
	tokens := "1,403,407,261,378,429,267,301"
	cases := []struct {
		name, targets string
		peftType      string
		check         func(cfg map[string]any) string
	}{
		{"lora", `
[[targets]]
modules = ["q_proj", "v_proj"]
adapter = "lora"
config = { r = 4, lora_alpha = 8, use_rslora = true }
`, "LORA", func(c map[string]any) string {
			if c["r"] != 4.0 || c["lora_alpha"] != 8.0 || c["use_rslora"] != true || c["use_dora"] != false {
				return "r, lora_alpha, use_rslora or use_dora"
			}
			return ""
		}},
		{"dora", `
[[targets]]
modules = ["q_proj", "v_proj"]
adapter = "dora"
config = { r = 4, lora_alpha = 8 }
[[targets]]
modules = ["o_proj"]
adapter = "dora"
config = { r = 2, lora_alpha = 8 }
`, "LORA", func(c map[string]any) string {
			rp, _ := c["rank_pattern"].(map[string]any)
			if c["use_dora"] != true || c["r"] != 4.0 || len(rp) != 5 {
				return "use_dora, r or rank_pattern (5 o_proj modules at r=2)"
			}
			return ""
		}},
		{"ia3", `
[[targets]]
modules = ["k_proj", "v_proj"]
adapter = "ia3"
[[targets]]
modules = ["down_proj"]
adapter = "ia3"
config = { feedforward = true }
`, "IA3", func(c map[string]any) string {
			ff, _ := c["feedforward_modules"].([]any)
			tm, _ := c["target_modules"].([]any)
			if len(ff) != 5 || len(tm) != 15 || !strings.HasSuffix(ff[0].(string), "down_proj") {
				return "feedforward_modules (5 down_proj) or target_modules (15)"
			}
			return ""
		}},
		{"loha", `
[[targets]]
modules = ["q_proj", "v_proj"]
adapter = "loha"
config = { r = 2, alpha = 4 }
`, "LOHA", func(c map[string]any) string {
			if c["r"] != 2.0 || c["alpha"] != 4.0 {
				return "r or alpha"
			}
			if _, ok := c["use_dora"]; ok {
				return "a LoRA key in a LOHA config"
			}
			return ""
		}},
	}
	logits := func(args ...string) []float64 {
		t.Helper()
		code, out, errs := runCLI(append([]string{"forward", "--tokens", tokens, "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("forward %v: %s", args, errs)
		}
		var r struct {
			Logits [][]float64 `json:"logits"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		var flat []float64
		for _, row := range r.Logits {
			flat = append(flat, row...)
		}
		return flat
	}
	plain := logits(base)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rec := filepath.Join(dir, "r.toml")
			body := `
[model]
path = "` + base + `"
task = "causal-lm"
max_length = 64

[data]
train = "` + fx + `/tinyshakespeare/input.txt"
format = "text"
test_fraction = 0.1
` + tc.targets + `
[train]
epochs = 1
steps_per_epoch = 6
batch_size = 4
seq_len = 32
lr = 5e-2
seed = 3

[eval]
batch_size = 8
max_examples = 16

[output]
dir = "` + filepath.Join(dir, "run") + `"
`
			if err := os.WriteFile(rec, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			if code, _, errs := runCLI("apply", rec); code != 0 {
				t.Fatalf("apply: %s", errs)
			}
			adapter := filepath.Join(dir, "run", "adapter")
			raw, err := os.ReadFile(filepath.Join(adapter, "adapter_config.json"))
			if err != nil {
				t.Fatal(err)
			}
			var cfg map[string]any
			if err := json.Unmarshal(raw, &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg["peft_type"] != tc.peftType || cfg["task_type"] != "CAUSAL_LM" {
				t.Fatalf("adapter_config.json peft_type %v task_type %v, want %s CAUSAL_LM:\n%s", cfg["peft_type"], cfg["task_type"], tc.peftType, raw)
			}
			if bad := tc.check(cfg); bad != "" {
				t.Fatalf("adapter_config.json: wrong %s:\n%s", bad, raw)
			}
			onTheFly := logits(base, "--adapter", adapter)
			moved := 0.0
			for i := range plain {
				moved = math.Max(moved, math.Abs(onTheFly[i]-plain[i]))
			}
			if moved < 1e-3 {
				t.Fatalf("the trained adapter does not change the logits (max change %g)", moved)
			}
			merged := filepath.Join(dir, "merged")
			if code, _, errs := runCLI("merge", base, "--adapter", adapter, "-o", merged); code != 0 {
				t.Fatalf("merge: %s", errs)
			}
			got := logits(merged)
			for i := range got {
				if math.Abs(got[i]-onTheFly[i]) > 1e-4*math.Max(1, math.Abs(onTheFly[i])) {
					t.Fatalf("merged model logit %d = %v, adapter on the fly %v", i, got[i], onTheFly[i])
				}
			}
		})
	}
}
