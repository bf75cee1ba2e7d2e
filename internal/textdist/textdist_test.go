package textdist

import (
	"slices"
	"testing"
)

func TestDistance(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"kitten", "sitting", 3},
		{"flaw", "lawn", 2},
		{"lr", "lr", 0},
		{"epochs", "epoch", 1},
		{"q_proj", "v_proj", 1},
		{"héllo", "hello", 1}, // runes, not bytes
		{"日本", "日本語", 1},
	}
	for _, c := range cases {
		if got := Distance(c.a, c.b); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := Distance(c.b, c.a); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d (symmetry)", c.b, c.a, got, c.want)
		}
	}
}

func TestNearest(t *testing.T) {
	cands := []string{"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.mlp.up_proj", "lm_head"}
	cases := []struct {
		name string
		s    string
		n    int
		want []string
	}{
		{"closest first, ties in input order", "model.layers.0.self_attn.x_proj", 2,
			[]string{"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj"}},
		{"n larger than candidates", "lm_head", 10,
			[]string{"lm_head", "model.layers.0.mlp.up_proj", "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj"}},
		{"n zero", "lm_head", 0, []string{}},
		{"n negative", "lm_head", -1, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Nearest(c.s, cands, c.n); !slices.Equal(got, c.want) {
				t.Fatalf("Nearest(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
			}
		})
	}
	if got := Nearest("x", nil, 3); len(got) != 0 {
		t.Fatalf("Nearest over no candidates = %q", got)
	}
}
