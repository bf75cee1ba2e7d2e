package target

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/bert"
	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/surgery/recipe"
)

// llamaModules lists the modules of a Llama with stories260K's shapes, in
// the order and form layer.Modules produces (containers have no kind).
func llamaModules(layers int, head string) []Module {
	ms := []Module{{Path: ""}, {Path: "model"}, {Path: "model.embed_tokens", Kind: "embedding", In: 512, Out: 64}}
	for i := 0; i < layers; i++ {
		p := fmt.Sprintf("model.layers.%d", i)
		ms = append(ms,
			Module{Path: p},
			Module{Path: p + ".input_layernorm", Kind: "norm"},
			Module{Path: p + ".self_attn"},
			Module{Path: p + ".self_attn.q_proj", Kind: "linear", In: 64, Out: 64},
			Module{Path: p + ".self_attn.k_proj", Kind: "linear", In: 64, Out: 32},
			Module{Path: p + ".self_attn.v_proj", Kind: "linear", In: 64, Out: 32},
			Module{Path: p + ".self_attn.o_proj", Kind: "linear", In: 64, Out: 64},
			Module{Path: p + ".post_attention_layernorm", Kind: "norm"},
			Module{Path: p + ".mlp"},
			Module{Path: p + ".mlp.gate_proj", Kind: "linear", In: 64, Out: 172},
			Module{Path: p + ".mlp.up_proj", Kind: "linear", In: 64, Out: 172},
			Module{Path: p + ".mlp.down_proj", Kind: "linear", In: 172, Out: 64},
		)
	}
	ms = append(ms, Module{Path: "model.norm", Kind: "norm"})
	switch head {
	case "lm_head":
		ms = append(ms, Module{Path: "lm_head", Kind: "linear", In: 64, Out: 512})
	case "score":
		ms = append(ms, Module{Path: "score", Kind: "linear", In: 64, Out: 2})
	}
	return ms
}

// bertModules lists the modules of a small BERT classifier.
func bertModules(layers int) []Module {
	ms := []Module{{Path: ""}, {Path: "bert"}, {Path: "bert.embeddings"},
		{Path: "bert.embeddings.word_embeddings", Kind: "embedding", In: 1000, Out: 32},
		{Path: "bert.embeddings.position_embeddings", Kind: "embedding", In: 512, Out: 32},
		{Path: "bert.embeddings.token_type_embeddings", Kind: "embedding", In: 2, Out: 32},
		{Path: "bert.embeddings.LayerNorm", Kind: "norm"},
		{Path: "bert.encoder"}}
	for i := 0; i < layers; i++ {
		p := fmt.Sprintf("bert.encoder.layer.%d", i)
		ms = append(ms,
			Module{Path: p}, Module{Path: p + ".attention"}, Module{Path: p + ".attention.self"},
			Module{Path: p + ".attention.self.query", Kind: "linear", In: 32, Out: 32},
			Module{Path: p + ".attention.self.key", Kind: "linear", In: 32, Out: 32},
			Module{Path: p + ".attention.self.value", Kind: "linear", In: 32, Out: 32},
			Module{Path: p + ".attention.output"},
			Module{Path: p + ".attention.output.dense", Kind: "linear", In: 32, Out: 32},
			Module{Path: p + ".attention.output.LayerNorm", Kind: "norm"},
			Module{Path: p + ".intermediate"},
			Module{Path: p + ".intermediate.dense", Kind: "linear", In: 32, Out: 37},
			Module{Path: p + ".output"},
			Module{Path: p + ".output.dense", Kind: "linear", In: 37, Out: 32},
			Module{Path: p + ".output.LayerNorm", Kind: "norm"},
		)
	}
	return append(ms, Module{Path: "bert.pooler"}, Module{Path: "bert.pooler.dense", Kind: "linear", In: 32, Out: 32},
		Module{Path: "classifier", Kind: "linear", In: 32, Out: 2})
}

// each expands a template over layer indices: each("model.layers.%d.mlp.up_proj", 0, 2).
func each(format string, layers ...int) []string {
	var out []string
	for _, l := range layers {
		out = append(out, fmt.Sprintf(format, l))
	}
	return out
}

// perLayer lists, layer by layer, the paths of the given projections.
func perLayer(prefix string, layers []int, names ...string) []string {
	var out []string
	for _, l := range layers {
		for _, n := range names {
			out = append(out, fmt.Sprintf("%s.%d.%s", prefix, l, n))
		}
	}
	return out
}

var all5 = []int{0, 1, 2, 3, 4}

func TestSelect(t *testing.T) {
	llm := llamaModules(5, "lm_head")
	brt := bertModules(2)
	attn := []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"}
	mlp := []string{"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}
	tests := []struct {
		name   string
		mods   []Module
		groups []recipe.TargetGroup
		want   []string
	}{
		{"bare names", llm, []recipe.TargetGroup{{Modules: []string{"v_proj", "q_proj"}}},
			perLayer("model.layers", all5, "self_attn.q_proj", "self_attn.v_proj")},
		{"star within a segment", llm, []recipe.TargetGroup{{Modules: []string{"model.layers.*.self_attn.*"}}},
			perLayer("model.layers", all5, attn...)},
		{"double star across segments", llm, []recipe.TargetGroup{{Modules: []string{"**.mlp.*_proj"}}},
			perLayer("model.layers", all5, mlp...)},
		{"bare glob", llm, []recipe.TargetGroup{{Modules: []string{"*_proj"}}},
			perLayer("model.layers", all5, append(append([]string{}, attn...), mlp...)...)},
		{"question mark and class", llm, []recipe.TargetGroup{{Modules: []string{"model.layers.[!0-2].self_attn.?_proj"}}},
			perLayer("model.layers", []int{3, 4}, attn...)},
		{"no pattern: every linear", llm, []recipe.TargetGroup{{}},
			append(perLayer("model.layers", all5, append(append([]string{}, attn...), mlp...)...), "lm_head")},
		{"regex", llm, []recipe.TargetGroup{{Regex: `model\.layers\.[0-2]\.self_attn\.(q|v)_proj`}},
			perLayer("model.layers", []int{0, 1, 2}, "self_attn.q_proj", "self_attn.v_proj")},
		{"regex must match the whole path", llm, []recipe.TargetGroup{{Regex: `.*o_proj`}},
			perLayer("model.layers", all5, "self_attn.o_proj")},
		{"globs or regex", llm, []recipe.TargetGroup{{Modules: []string{"q_proj"}, Regex: `lm_head`}},
			append(perLayer("model.layers", all5, "self_attn.q_proj"), "lm_head")},
		{"layer ranges", llm, []recipe.TargetGroup{{Modules: []string{"q_proj"}, Layers: "0-1,4"}},
			each("model.layers.%d.self_attn.q_proj", 0, 1, 4)},
		{"layer ranges drop modules outside layers", llm, []recipe.TargetGroup{{Layers: "4"}},
			perLayer("model.layers", []int{4}, append(append([]string{}, attn...), mlp...)...)},
		{"embedding kind", llm, []recipe.TargetGroup{{Kinds: []string{"embedding"}}}, []string{"model.embed_tokens"}},
		{"several kinds", llm, []recipe.TargetGroup{{Kinds: []string{"linear", "norm"}, Modules: []string{"*layernorm", "o_proj"}, Layers: "0"}},
			[]string{"model.layers.0.input_layernorm", "model.layers.0.self_attn.o_proj", "model.layers.0.post_attention_layernorm"}},
		{"excludes", llm, []recipe.TargetGroup{{Modules: []string{"*_proj"}, Exclude: []string{"down_proj", "model.layers.4.**", "**.self_attn.[ko]_proj"}}},
			perLayer("model.layers", []int{0, 1, 2, 3}, "self_attn.q_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj")},
		{"two groups", llm, []recipe.TargetGroup{{Name: "mlp", Modules: []string{"up_proj"}, Layers: "1"}, {Name: "attn", Modules: []string{"q_proj"}, Layers: "1-2"}},
			[]string{"model.layers.1.self_attn.q_proj", "model.layers.1.mlp.up_proj", "model.layers.2.self_attn.q_proj"}},
		{"repeated paths, as layer.Modules lists slots", append(llamaModules(2, ""), llamaModules(2, "")...), []recipe.TargetGroup{{Modules: []string{"q_proj"}}},
			each("model.layers.%d.self_attn.q_proj", 0, 1)},
		{"bert query value", brt, []recipe.TargetGroup{{Modules: []string{"query", "value"}}},
			perLayer("bert.encoder.layer", []int{0, 1}, "attention.self.query", "attention.self.value")},
		{"bert dense", brt, []recipe.TargetGroup{{Modules: []string{"dense"}, Exclude: []string{"bert.pooler.*"}}},
			perLayer("bert.encoder.layer", []int{0, 1}, "attention.output.dense", "intermediate.dense", "output.dense")},
		{"bert layer", brt, []recipe.TargetGroup{{Modules: []string{"**.attention.**"}, Layers: "1"}},
			perLayer("bert.encoder.layer", []int{1}, "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")},
		{"bert head", brt, []recipe.TargetGroup{{Modules: []string{"classifier", "bert.pooler.dense"}}}, []string{"bert.pooler.dense", "classifier"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := Select(tt.mods, tt.groups)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range sel {
				got = append(got, s.Path)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestSelectFields(t *testing.T) {
	groups := []recipe.TargetGroup{
		{Name: "attn", Modules: []string{"q_proj", "v_proj"}, Adapter: "dora",
			Config: map[string]any{"r": int64(8), "lora_alpha": int64(16), "extra": map[string]any{"a": int64(1), "b": int64(2)}},
			Overrides: []recipe.Override{
				{Pattern: "model.layers.0.**", Config: map[string]any{"r": int64(4)}},
				{Pattern: "**.v_proj", Config: map[string]any{"r": int64(2), "extra": map[string]any{"b": int64(3)}}},
			}},
		{Modules: []string{"down_proj"}, Layers: "2"},
	}
	sel, err := Select(llamaModules(5, "lm_head"), groups)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]Selection{}
	for _, s := range sel {
		byPath[s.Path] = s
	}
	tests := []struct {
		path string
		want Selection
	}{
		{"model.layers.0.self_attn.q_proj", Selection{Group: "attn", Adapter: "dora", In: 64, Out: 64,
			Config: map[string]any{"r": int64(4), "lora_alpha": int64(16), "extra": map[string]any{"a": int64(1), "b": int64(2)}}}},
		{"model.layers.0.self_attn.v_proj", Selection{Group: "attn", Adapter: "dora", In: 64, Out: 32,
			Config: map[string]any{"r": int64(2), "lora_alpha": int64(16), "extra": map[string]any{"a": int64(1), "b": int64(3)}}}},
		{"model.layers.3.self_attn.q_proj", Selection{Group: "attn", Adapter: "dora", In: 64, Out: 64,
			Config: map[string]any{"r": int64(8), "lora_alpha": int64(16), "extra": map[string]any{"a": int64(1), "b": int64(2)}}}},
		{"model.layers.2.mlp.down_proj", Selection{Group: "targets.1", Adapter: "lora", In: 172, Out: 64, Config: map[string]any{}}},
	}
	for _, tt := range tests {
		tt.want.Path = tt.path
		if got := byPath[tt.path]; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", tt.path, got, tt.want)
		}
	}
	// Each selection owns its configuration.
	byPath["model.layers.3.self_attn.q_proj"].Config["extra"].(map[string]any)["a"] = int64(99)
	if byPath["model.layers.4.self_attn.q_proj"].Config["extra"].(map[string]any)["a"] != int64(1) ||
		groups[0].Config["extra"].(map[string]any)["a"] != int64(1) {
		t.Errorf("selections share configuration maps")
	}
}

func TestSelectErrors(t *testing.T) {
	llm := llamaModules(5, "lm_head")
	tests := []struct {
		name   string
		mods   []Module
		groups []recipe.TargetGroup
		want   []string
	}{
		{"typo in glob", llm, []recipe.TargetGroup{{Name: "attn", Modules: []string{"*.q_prj"}}},
			[]string{`target group "attn": pattern "*.q_prj" matches no linear module; nearest: model.layers.0.self_attn.q_proj, model.layers.1.self_attn.q_proj, model.layers.2.self_attn.q_proj`}},
		{"typo in bare name", llm, []recipe.TargetGroup{{Name: "mlp", Modules: []string{"up_proj", "gate_prj"}}},
			[]string{`target group "mlp": pattern "gate_prj" matches no linear module; nearest: model.layers.0.mlp.gate_proj, model.layers.1.mlp.gate_proj, model.layers.2.mlp.gate_proj`}},
		{"typo in full path", llm, []recipe.TargetGroup{{Modules: []string{"model.layer.3.self_attn.o_proj"}}},
			[]string{`target group "targets.0": pattern "model.layer.3.self_attn.o_proj" matches no linear module; nearest: model.layers.3.self_attn.o_proj,`}},
		{"wrong kind", llm, []recipe.TargetGroup{{Name: "emb", Modules: []string{"embed_tokens"}}},
			[]string{`target group "emb": pattern "embed_tokens" matches no linear module (it matches model.embed_tokens (embedding): set kinds to include their kind)`}},
		{"container", llm, []recipe.TargetGroup{{Name: "a", Modules: []string{"self_attn"}}},
			[]string{`target group "a": pattern "self_attn" matches no linear module; nearest: `}},
		{"regex matches nothing", llm, []recipe.TargetGroup{{Name: "r", Regex: `model\.layers\.\d+\.self_attn\.q_prj`}},
			[]string{`target group "r": regex "model\\.layers\\.\\d+\\.self_attn\\.q_prj" matches no linear module; nearest: model.layers.0.self_attn.q_proj`}},
		{"regex partial match", llm, []recipe.TargetGroup{{Name: "r", Regex: `q_proj`}},
			[]string{`regex "q_proj" matches no linear module; it matches part of model.layers.0.self_attn.q_proj, but must match the whole path: try ".*q_proj"`}},
		{"glob partial match", llm, []recipe.TargetGroup{{Name: "g", Modules: []string{"self_attn.*"}}},
			[]string{`pattern "self_attn.*" matches no linear module; it matches part of model.layers.0.self_attn.q_proj, but must match the whole path: try "**.self_attn.*"`}},
		{"bad regex", llm, []recipe.TargetGroup{{Name: "r", Regex: `(`}}, []string{`target group "r": regex "(": error parsing regexp`}},
		{"bad glob", llm, []recipe.TargetGroup{{Name: "g", Modules: []string{"model.layers.[0-2"}}}, []string{`target group "g": modules: pattern "model.layers.[0-2": unterminated character class`}},
		{"layer past the end", llm, []recipe.TargetGroup{{Name: "attn", Modules: []string{"q_proj"}, Layers: "3-7"}},
			[]string{`target group "attn": layers "3-7": layer 7 is past the last layer (the model has 5 layers, 0-4)`}},
		{"bad layer range", llm, []recipe.TargetGroup{{Name: "attn", Layers: "3-1"}}, []string{`target group "attn": layer ranges "3-1": "3-1": range ends before it starts`}},
		{"layers on a model without layers", []Module{{Path: "fc", Kind: "linear"}}, []recipe.TargetGroup{{Layers: "0"}},
			[]string{`layers "0": the model has no numbered layers`}},
		{"exclusions remove everything", llm, []recipe.TargetGroup{{Name: "x", Modules: []string{"q_proj"}, Exclude: []string{"**.self_attn.*"}}},
			[]string{`target group "x": selects no module`}},
		{"layers remove everything", llm, []recipe.TargetGroup{{Name: "x", Modules: []string{"lm_head"}, Layers: "0"}},
			[]string{`target group "x": selects no module`}},
		{"exclude matches nothing", llm, []recipe.TargetGroup{{Name: "x", Modules: []string{"q_proj"}, Exclude: []string{"q_prj"}}},
			[]string{`target group "x": exclude pattern "q_prj" matches no linear module; nearest: model.layers.0.self_attn.q_proj`}},
		{"override matches nothing", llm, []recipe.TargetGroup{{Name: "x", Modules: []string{"q_proj"}, Overrides: []recipe.Override{{Pattern: "v_proj"}}}},
			[]string{`target group "x": override 0 pattern "v_proj" matches no module the group selects; nearest: model.layers.0.self_attn.q_proj`}},
		{"overlap", llm, []recipe.TargetGroup{{Name: "attn", Modules: []string{"q_proj"}, Layers: "2"}, {Name: "all", Modules: []string{"**"}}},
			[]string{`module model.layers.2.self_attn.q_proj is selected by target groups "attn" and "all"`}},
		{"several problems", llm, []recipe.TargetGroup{{Name: "a", Modules: []string{"q_prj"}}, {Name: "b", Modules: []string{"v_prj"}, Layers: "9"}},
			[]string{`target group "a": pattern "q_prj"`, `target group "b": pattern "v_prj"`, `target group "b": layers "9"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := Select(tt.mods, tt.groups)
			if err == nil {
				t.Fatalf("no error; selected %v", sel)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestFullyTrained(t *testing.T) {
	tests := []struct {
		name     string
		mods     []Module
		patterns []string
		want     []string
		err      string
	}{
		{"score", llamaModules(2, "score"), []string{"score"}, []string{"score"}, ""},
		{"bert head", bertModules(2), []string{"classifier", "bert.pooler.dense"}, []string{"bert.pooler.dense", "classifier"}, ""},
		{"container swallows its children", bertModules(2), []string{"bert.pooler.dense", "bert.pooler"}, []string{"bert.pooler"}, ""},
		{"any kind", llamaModules(2, "lm_head"), []string{"model.embed_tokens", "norm"}, []string{"model.embed_tokens", "model.norm"}, ""},
		{"none", llamaModules(2, "lm_head"), nil, nil, ""},
		{"typo", llamaModules(2, "score"), []string{"scor"}, nil, `pattern "scor" matches no module; nearest: score`},
		{"missing head", llamaModules(2, "lm_head"), []string{"score"}, nil, `pattern "score" matches no module`},
		{"bad glob", llamaModules(2, "lm_head"), []string{"[x"}, nil, `pattern "[x": unterminated character class`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FullyTrained(tt.mods, tt.patterns)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want error %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLayerIndex(t *testing.T) {
	tests := []struct {
		path string
		want int
		ok   bool
	}{
		{"model.layers.3.self_attn.q_proj", 3, true},
		{"bert.encoder.layer.11.attention.self.query", 11, true},
		{"transformer.h.0.attn.c_attn", 0, true},
		{"blocks.7.mlp", 7, true},
		{"model.layers.12", 12, true},
		{"model.layers", 0, false},
		{"model.layers.x.q_proj", 0, false},
		{"model.layers.+1.q_proj", 0, false},
		{"lm_head", 0, false},
		{"model.embed_tokens", 0, false},
		{"score", 0, false},
	}
	for _, tt := range tests {
		got, ok := LayerIndex(tt.path)
		if got != tt.want || ok != tt.ok {
			t.Errorf("LayerIndex(%q) = %d, %v; want %d, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseRanges(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		err  string
	}{
		{"0-3,5", []int{0, 1, 2, 3, 5}, ""},
		{"5", []int{5}, ""},
		{" 4 , 0 - 1 ,1", []int{0, 1, 4}, ""},
		{"2-2", []int{2}, ""},
		{"3-1", nil, `"3-1": range ends before it starts`},
		{"x", nil, `"x": "x" is not a layer index`},
		{"1-x", nil, `"x" is not a layer index`},
		{"-1", nil, `"-1": negative index`},
		{"1--2", nil, `"1--2": negative index`},
		{"1,,2", nil, `empty part`},
		{"1,", nil, `empty part`},
		{"", nil, `empty`},
		{"1-", nil, `"" is not a layer index`},
		{"+1", nil, `"+1" is not a layer index`},
		{"99999999999999999999", nil, `value out of range`},
	}
	for _, tt := range tests {
		got, err := ParseRanges(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseRanges(%q) = %v, %v; want error %s", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseRanges(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"q_proj", "model.layers.0.self_attn.q_proj", true},
		{"q_proj", "q_proj", true},
		{"self_attn", "model.layers.0.self_attn.q_proj", false},
		{"*", "lm_head", true},
		{"*", "model.layers.0.self_attn.q_proj", true}, // bare: last segment
		{"model.*", "model.layers.0", false},
		{"model.*", "model.norm", true},
		{"model.**", "model.layers.0.mlp.up_proj", true},
		{"**.mlp.*", "model.layers.0.mlp.up_proj", true},
		{"**.mlp.*", "mlp.up_proj", false},
		{"model.layers.?.mlp.up_proj", "model.layers.3.mlp.up_proj", true},
		{"model.layers.?.mlp.up_proj", "model.layers.13.mlp.up_proj", false},
		{"model.layers.[13].**", "model.layers.3.mlp", true},
		{"model.layers.[!13].**", "model.layers.3.mlp", false},
		{"model.layers.[0-2].**", "model.layers.2.mlp", true},
		{"*.q_proj", "model.layers.0.self_attn.q_proj", false},
		{"**.q_proj", "model.layers.0.self_attn.q_proj", true},
		{`lm\_head`, "lm_head", true},
		{"lm.head", "lm_head", false},
		{"lm_head", "model.lm_headx", false},
	}
	for _, tt := range tests {
		got, err := Match(tt.pattern, tt.path)
		if err != nil || got != tt.want {
			t.Errorf("Match(%q, %q) = %v, %v; want %v", tt.pattern, tt.path, got, err, tt.want)
		}
	}
}

// TestModules checks the candidate list built from real models against the
// hand-written lists the other tests use.
func TestModules(t *testing.T) {
	lc, err := llama.ParseConfig([]byte(`{"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
		"num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512}`))
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bert.ParseConfig([]byte(`{"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
		"num_attention_heads": 4, "vocab_size": 1000, "num_labels": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  []Module
		want []Module
	}{
		{"llama", Modules(llama.New(lc)), llamaModules(5, "lm_head")},
		{"bert", Modules(bert.New(bc)), bertModules(2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Norms report no sizes; the hand-written lists leave them 0 too.
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got  %v\nwant %v", tt.got, tt.want)
			}
		})
	}
}
