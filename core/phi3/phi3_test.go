package phi3

import (
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
)

const base = `"model_type":"phi3","architectures":["Phi3ForCausalLM"],"hidden_size":32,"intermediate_size":48,
	"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50`

// Phi-3's fused qkv_proj and gate_up_proj are single linear slots of the
// stacked shapes; sliding_window is optional; rope scaling other than
// longrope and malformed longrope or partial rotary settings are refused by
// name.
func TestPhi3(t *testing.T) {
	m, err := model.New([]byte(`{` + base + `,"sliding_window":2047,"rope_scaling":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if w := m.(*llama.Model).Config.SlidingWindow; w != 2047 {
		t.Errorf("window %d", w)
	}
	shapes := map[string][]int{}
	for _, p := range layer.Params(m) {
		shapes[p.Path] = p.Shape
	}
	for name, want := range map[string][]int{
		"model.layers.0.self_attn.qkv_proj.weight": {32 + 2*16, 32},
		"model.layers.0.mlp.gate_up_proj.weight":   {2 * 48, 32},
		"model.layers.0.self_attn.o_proj.weight":   {32, 32},
		"model.layers.0.mlp.down_proj.weight":      {32, 48},
	} {
		if got := shapes[name]; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("%s: shape %v, want %v", name, got, want)
		}
	}
	if len(shapes) != 1+6+1+1 {
		t.Errorf("parameters %v", shapes)
	}
	slots := map[string]bool{}
	for _, mod := range layer.Modules(m) {
		slots[mod.Path] = true
	}
	if !slots["model.layers.0.self_attn.qkv_proj"] || !slots["model.layers.0.mlp.gate_up_proj"] || slots["model.layers.0.self_attn.q_proj"] {
		t.Errorf("modules %v", slots)
	}
	if hf := m.HFConfig(); hf["sliding_window"] != 2047.0 || hf["model_type"] != "phi3" {
		t.Errorf("config.json %v", hf)
	}
	m, err = model.New([]byte(`{` + base + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if w := m.(*llama.Model).Config.SlidingWindow; w != 0 {
		t.Errorf("default window %d", w)
	}
	cl, err := m.(model.Classifier).ClassifierFor([]string{"a", "b"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a := cl.(*llama.Model).Config.Architectures; a[0] != "Phi3ForSequenceClassification" {
		t.Errorf("classifier %v", a)
	}
	for _, tc := range []struct{ extra, key string }{
		{`"partial_rotary_factor":1.5`, "partial_rotary_factor"},
		{`"partial_rotary_factor":0.1`, "partial_rotary_factor"},
		{`"rope_scaling":{"type":"longrope","short_factor":[1],"long_factor":[1]}`, "short_factor has 1 values, want 4"},
		{`"rope_scaling":{"type":"su","short_factor":[1,1,1,1]}`, "long_factor"},
		{`"rope_scaling":{"type":"linear","factor":2}`, "longrope"},
		{`"rope_scaling":{"factor":2}`, "rope_type"},
		{`"original_max_position_embeddings":0`, "original_max_position_embeddings"},
		{`"sliding_window":0`, "sliding_window"},
		{`"hidden_act":"gelu"`, "hidden_act"},
	} {
		if _, err := model.New([]byte(`{` + base + `,` + tc.extra + `}`)); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %v, want one naming %s", tc.extra, err, tc.key)
		}
	}
}

// Phi-3's rope settings: partial_rotary_factor turns int(head_dim*factor)
// features, the older longrope names su and yarn read as longrope (and are
// written back so), and original_max_position_embeddings and
// max_position_embeddings default to Phi3Config's 4096.
func TestPhi3Rope(t *testing.T) {
	long := `"rope_scaling":{"type":"su","short_factor":[1,1,1],"long_factor":[2,2,2]}`
	for _, tc := range []struct {
		name, extra  string
		typ          string
		dim, orig    int
		maxPositions int
	}{
		{"defaults", ``, llama.RopeDefault, 8, 4096, 4096},
		{"partial", `"partial_rotary_factor":0.75`, llama.RopeDefault, 6, 4096, 4096},
		{"su", `"partial_rotary_factor":0.75,"max_position_embeddings":131072,` + long, llama.RopeLongrope, 6, 4096, 131072},
		{"yarn", `"partial_rotary_factor":0.75,"original_max_position_embeddings":8,"max_position_embeddings":32,` +
			strings.Replace(long, `"su"`, `"yarn"`, 1), llama.RopeLongrope, 6, 8, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := `{` + base
			if tc.extra != "" {
				cfg += "," + tc.extra
			}
			c, err := ParseConfig([]byte(cfg + `}`))
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Rope()
			if err != nil {
				t.Fatal(err)
			}
			if r.Type != tc.typ || r.Dim != tc.dim || c.OriginalMaxPositionEmbeddings != tc.orig || c.MaxPositionEmbeddings != tc.maxPositions {
				t.Fatalf("rope %s over %d features, original %d, max %d", r.Type, r.Dim, c.OriginalMaxPositionEmbeddings, c.MaxPositionEmbeddings)
			}
			if rs, ok := c.Map()["rope_scaling"].(map[string]any); tc.typ == llama.RopeLongrope && (!ok || rs["type"] != llama.RopeLongrope) {
				t.Fatalf("config.json rope_scaling %v", c.Map()["rope_scaling"])
			}
		})
	}
}
