package llama

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

func randomModel(t testing.TB, cfg string) *Model {
	t.Helper()
	c, err := ParseConfig([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	m := New(c)
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range layer.Params(m) {
		d := ops.Data(p.Param)
		for i := range d {
			d[i] = float32(r.NormFloat64() * 0.2)
			if strings.Contains(p.Path, "norm") {
				d[i] += 1
			}
		}
	}
	layer.Freeze(m, true)
	return m
}

const gqaConfig = `{"model_type":"llama","hidden_size":32,"intermediate_size":48,"num_hidden_layers":2,
	"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50,"rms_norm_eps":1e-5}`

func TestParamNames(t *testing.T) {
	m := randomModel(t, gqaConfig)
	var names []string
	for _, p := range layer.Params(m) {
		names = append(names, p.Path)
	}
	want := []string{
		"model.embed_tokens.weight",
		"model.layers.0.input_layernorm.weight",
		"model.layers.0.self_attn.q_proj.weight",
		"model.layers.0.self_attn.k_proj.weight",
		"model.layers.0.self_attn.v_proj.weight",
		"model.layers.0.self_attn.o_proj.weight",
		"model.layers.0.post_attention_layernorm.weight",
		"model.layers.0.mlp.gate_proj.weight",
		"model.layers.0.mlp.up_proj.weight",
		"model.layers.0.mlp.down_proj.weight",
	}
	for i, w := range want {
		if names[i] != w {
			t.Fatalf("param %d is %q, want %q", i, names[i], w)
		}
	}
	if last := names[len(names)-1]; last != "lm_head.weight" || len(names) != 1+2*9+2 {
		t.Fatalf("%d params, last %q", len(names), last)
	}
	shapes := map[string][]int{}
	for _, p := range layer.Params(m) {
		shapes[p.Path] = p.Shape
	}
	if s := shapes["model.layers.1.self_attn.k_proj.weight"]; s[0] != 16 || s[1] != 32 {
		t.Errorf("k_proj shape %v, want [16 32]", s)
	}
	if s := shapes["model.norm.weight"]; len(s) != 1 || s[0] != 32 {
		t.Errorf("norm shape %v, want [32]", s)
	}
	var linears int
	for _, mod := range layer.Modules(m) {
		if mod.Kind() == "linear" {
			if _, ok := mod.Model.(*layer.Slot); !ok {
				continue
			}
			linears++
		}
	}
	if linears != 2*7+1 {
		t.Errorf("%d linear slots, want 15", linears)
	}
}

// A padded batch gives each sequence the logits it has alone, with right or
// left padding.
func TestBatchPaddingInvariance(t *testing.T) {
	m := randomModel(t, gqaConfig)
	seqs := [][]int{{1, 7, 9, 3, 22}, {4, 5}, {8, 8, 8, 8, 8, 8, 2}}
	alone := make([][]float32, len(seqs))
	for i, s := range seqs {
		l, err := m.Logits(model.Batch{IDs: [][]int{s}})
		if err != nil {
			t.Fatal(err)
		}
		alone[i] = ops.Data(l)
	}
	const V = 50
	for _, side := range []string{"right", "left"} {
		b := model.NewBatch(seqs, 0)
		T := len(b.IDs[0])
		if side == "left" {
			for i, s := range seqs {
				pad := T - len(s)
				for t := 0; t < T; t++ {
					b.Mask[i][t] = t >= pad
					b.IDs[i][t] = 0
					if t >= pad {
						b.IDs[i][t] = s[t-pad]
					}
				}
			}
		}
		l, err := m.Logits(b)
		if err != nil {
			t.Fatal(err)
		}
		got := ops.Data(l)
		for i, s := range seqs {
			off := 0
			if side == "left" {
				off = T - len(s)
			}
			for tok := range s {
				for v := 0; v < V; v++ {
					g := got[(i*T+off+tok)*V+v]
					w := alone[i][tok*V+v]
					if math.Abs(float64(g-w)) > 1e-5*math.Max(1, math.Abs(float64(w))) {
						t.Fatalf("%s padding: seq %d token %d logit %d: batch %v alone %v", side, i, tok, v, g, w)
					}
				}
			}
		}
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]string{
		"heads":        `{"model_type":"llama","hidden_size":32,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":3,"vocab_size":5}`,
		"kv":           `{"model_type":"llama","hidden_size":32,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":3,"vocab_size":5}`,
		"zero":         `{"model_type":"llama","hidden_size":0}`,
		"act":          `{"model_type":"llama","hidden_size":32,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":5,"hidden_act":"gelu"}`,
		"rope_scaling": `{"model_type":"llama","hidden_size":32,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":5,"rope_scaling":{"type":"linear"}}`,
		"json":         `{"model_type":`,
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseConfig([]byte(cfg)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestClassifierLastToken(t *testing.T) {
	cfg := strings.Replace(gqaConfig, `{"model_type"`, `{"architectures":["LlamaForSequenceClassification"],"id2label":{"0":"a","1":"b","2":"c"},"model_type"`, 1)
	m := randomModel(t, cfg)
	if m.Task() != model.SequenceClassification || m.LMHead != nil {
		t.Fatal("not a classifier")
	}
	seqs := [][]int{{1, 2, 3}, {4, 5, 6, 7, 8}}
	l, err := m.Logits(model.NewBatch(seqs, 0))
	if err != nil {
		t.Fatal(err)
	}
	if ops.Rows(l) != 2 || ops.Cols(l) != 3 {
		t.Fatalf("shape %dx%d", ops.Rows(l), ops.Cols(l))
	}
	one, _ := m.Logits(model.Batch{IDs: [][]int{seqs[0]}})
	for j := 0; j < 3; j++ {
		if math.Abs(float64(ops.Data(one)[j]-ops.Data(l)[j])) > 1e-5 {
			t.Fatalf("padded classifier logits differ from unpadded")
		}
	}
}

// TestLastTokens pins transformers' pooling (>= 4.48): with a pad id, the
// rightmost position whose id is not the pad id, whatever the mask says;
// without one, the last real token of the mask.
func TestLastTokens(t *testing.T) {
	zero := 0
	for _, tc := range []struct {
		name string
		ids  [][]int
		mask [][]bool
		pad  *int
		want []int
	}{
		{"no pad id in the row", [][]int{{5, 6, 7}}, nil, &zero, []int{2}},
		{"right padded", [][]int{{5, 6, 0, 0}}, [][]bool{{true, true, false, false}}, &zero, []int{1}},
		{"left padded", [][]int{{0, 0, 5, 6}}, [][]bool{{false, false, true, true}}, &zero, []int{3}},
		{"pad id inside the text", [][]int{{5, 0, 6, 0}}, [][]bool{{true, true, true, false}}, &zero, []int{2}},
		{"text ending with the pad id", [][]int{{5, 6, 0, 0}}, [][]bool{{true, true, true, false}}, &zero, []int{1}},
		{"all pad ids", [][]int{{0, 0, 0}}, nil, &zero, []int{0}},
		{"second row offset", [][]int{{5, 0, 0}, {5, 6, 7}}, nil, &zero, []int{0, 5}},
		{"no pad_token_id: the mask", [][]int{{5, 0, 6, 0}}, [][]bool{{true, true, true, false}}, nil, []int{2}},
		{"no pad_token_id, no mask", [][]int{{5, 0, 0}}, nil, nil, []int{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LastTokens(model.Batch{IDs: tc.ids, Mask: tc.mask}, tc.pad)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}
