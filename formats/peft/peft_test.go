package peft

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

const fixture = "../../../shared/fixtures/peft-lora-gpt2-smartreview"

func TestReadRealAdapter(t *testing.T) {
	if _, err := os.Stat(fixture); err != nil {
		t.Skipf("PEFT fixture missing (../shared/fixtures): %v", err)
	}
	a, err := Read(fixture)
	if err != nil {
		t.Fatal(err)
	}
	c := a.Config
	if c.R != 8 || c.LoraAlpha != 16 || !c.FanInFanOut || c.PeftType != "LORA" {
		t.Fatalf("config %+v", c)
	}
	if len(a.Modules) != 12 || len(a.Saved) != 0 {
		t.Fatalf("%d modules, %d saved", len(a.Modules), len(a.Saved))
	}
	m := a.Modules["transformer.h.3.attn.c_attn"]
	if s := m["lora_A.weight"].Shape; s[0] != 8 || s[1] != 768 {
		t.Errorf("lora_A shape %v", s)
	}
	if s := m["lora_B.weight"].Shape; s[0] != 2304 || s[1] != 8 {
		t.Errorf("lora_B shape %v", s)
	}
	// Round trip: write and read back, values bit-exact, config kept.
	dir := filepath.Join(t.TempDir(), "out")
	if err := Write(dir, a); err != nil {
		t.Fatal(err)
	}
	b, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, params := range a.Modules {
		for p, tt := range params {
			if !bytes.Equal(tt.Data, b.Modules[name][p].Data) {
				t.Fatalf("%s.%s changed in the round trip", name, p)
			}
		}
	}
	if b.Config.Extra["megatron_core"] != "megatron.core" || b.Config.RankPattern == nil {
		t.Errorf("config keys lost: %+v", b.Config.Extra)
	}
}

func TestPatterns(t *testing.T) {
	c := Config{R: 8, LoraAlpha: 16,
		RankPattern:  map[string]int{"down_proj": 2, `layers\.1\.self_attn\.q_proj`: 4},
		AlphaPattern: map[string]float64{"layers.1.self_attn.q_proj": 32}}
	cases := []struct {
		module string
		r      int
		alpha  float64
	}{
		{"model.layers.0.mlp.down_proj", 2, 16},
		{"model.layers.1.self_attn.q_proj", 4, 32},
		{"model.layers.0.self_attn.q_proj", 8, 16},
		{"model.layers.11.self_attn.q_proj", 8, 16}, // "1" must not match "11"
		{"model.layers.0.mlp.xdown_proj", 8, 16},    // suffix only at a '.' boundary
	}
	for _, cs := range cases {
		if r := c.RankFor(cs.module); r != cs.r {
			t.Errorf("%s: rank %d, want %d", cs.module, r, cs.r)
		}
		if a := c.AlphaFor(cs.module); a != cs.alpha {
			t.Errorf("%s: alpha %v, want %v", cs.module, a, cs.alpha)
		}
	}
}

func TestTargets(t *testing.T) {
	cases := []struct {
		targets any
		module  string
		want    bool
	}{
		{[]any{"q_proj", "v_proj"}, "model.layers.0.self_attn.q_proj", true},
		{[]any{"q_proj"}, "model.layers.0.self_attn.k_proj", false},
		{[]any{"proj"}, "model.layers.0.self_attn.q_proj", false},
		{[]any{"self_attn.q_proj"}, "model.layers.0.self_attn.q_proj", true},
		{`.*\.(q|v)_proj`, "model.layers.3.self_attn.v_proj", true},
		{`(q|v)_proj`, "model.layers.3.self_attn.v_proj", false}, // regex must match the whole name
		{nil, "x", false},
	}
	for _, cs := range cases {
		c := Config{TargetModules: cs.targets}
		got, err := c.Targets(cs.module)
		if err != nil || got != cs.want {
			t.Errorf("targets %v, module %s: %v %v, want %v", cs.targets, cs.module, got, err, cs.want)
		}
	}
}

func TestBadAdapters(t *testing.T) {
	dir := t.TempDir()
	write := func(name, cfg string) string {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, ConfigFile), []byte(cfg), 0o644)
		return d
	}
	for name, d := range map[string]string{
		"no weights":   write("a", `{"peft_type":"LORA","r":4}`),
		"bad json":     write("b", `{"peft_type":`),
		"prefix tuner": write("c", `{"peft_type":"PREFIX_TUNING"}`),
		"rank 0":       write("d", `{"peft_type":"LORA","r":0}`),
		"no config":    filepath.Join(dir, "nothing"),
	} {
		if _, err := Read(d); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
