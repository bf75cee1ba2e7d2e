package gemma2_test

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/gemma2"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

const base = `"model_type":"gemma2","hidden_size":32,"intermediate_size":48,"num_hidden_layers":3,
	"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50`

// Gemma2Config's defaults, Hugging Face names and shapes (four norms per
// layer, initialised to the identity), the even layers sliding, and the
// config.json keys written back.
func TestDefaults(t *testing.T) {
	m, err := model.New([]byte(`{` + base + `}`))
	if err != nil {
		t.Fatal(err)
	}
	c := m.(*gemma2.Model).Config
	if c.HeadDim != 256 || !c.TieWordEmbeddings || c.QueryPreAttnScalar != 256 || c.AttnLogitSoftcapping != 50 ||
		c.FinalLogitSoftcapping != 30 || c.Window != 4096 || c.AttnScale() != 1.0/16 {
		t.Errorf("defaults: %+v", c)
	}
	if !slices.Equal(c.Sliding, []bool{true, false, true}) || c.LayerWindow(0) != 4096 || c.LayerWindow(1) != 0 {
		t.Errorf("sliding layers %v", c.Sliding)
	}
	shapes := map[string][]int{}
	for _, p := range layer.Params(m) {
		shapes[p.Path] = p.Shape
		if strings.HasSuffix(p.Path, "norm.weight") {
			for _, v := range ops.Data(p.Param) {
				if v != 0 {
					t.Fatalf("%s initialised to %v, want 0", p.Path, v)
				}
			}
		}
	}
	for name, want := range map[string][]int{
		"model.layers.2.input_layernorm.weight":            {32},
		"model.layers.2.post_attention_layernorm.weight":   {32},
		"model.layers.2.pre_feedforward_layernorm.weight":  {32},
		"model.layers.2.post_feedforward_layernorm.weight": {32},
		"model.layers.0.self_attn.q_proj.weight":           {4 * 256, 32},
		"model.layers.0.self_attn.k_proj.weight":           {2 * 256, 32},
		"model.layers.0.self_attn.o_proj.weight":           {32, 4 * 256},
		"model.layers.1.mlp.gate_proj.weight":              {48, 32},
		"model.layers.1.mlp.down_proj.weight":              {32, 48},
		"model.norm.weight":                                {32},
		"model.embed_tokens.weight":                        {50, 32},
	} {
		if !slices.Equal(shapes[name], want) {
			t.Errorf("%s: shape %v, want %v", name, shapes[name], want)
		}
	}
	if len(shapes) != 2+3*11 {
		t.Errorf("%d parameters, want %d (tied head)", len(shapes), 2+3*11)
	}
	hf := m.HFConfig()
	for k, want := range map[string]any{"query_pre_attn_scalar": 256.0, "attn_logit_softcapping": 50.0,
		"final_logit_softcapping": 30.0, "sliding_window": 4096.0, "hidden_activation": gemma2.GELUTanh, "head_dim": 256.0} {
		if hf[k] != want {
			t.Errorf("config.json %s = %v, want %v", k, hf[k], want)
		}
	}
	cl, err := m.(model.Classifier).ClassifierFor([]string{"a", "b"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a := cl.(*gemma2.Model).Config.Architectures; a[0] != "Gemma2ForSequenceClassification" || cl.Task() != model.SequenceClassification {
		t.Errorf("classifier %v", a)
	}
}

func TestConfigOptions(t *testing.T) {
	for _, tc := range []struct {
		name, extra        string
		sliding            []bool
		window             int
		attnCap, finalCap  float64
		hfAttnCap, hfFinal any
	}{
		{"layer types", `"layer_types":["full_attention","sliding_attention","sliding_attention"],"sliding_window":6`,
			[]bool{false, true, true}, 6, 50, 30, 50.0, 30.0},
		{"null caps and window", `"attn_logit_softcapping":null,"final_logit_softcapping":null,"sliding_window":null`,
			[]bool{true, false, true}, 0, 0, 0, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := gemma2.ParseConfig([]byte(`{` + base + `,` + tc.extra + `}`))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Sliding, tc.sliding) || c.Window != tc.window || c.AttnLogitSoftcapping != tc.attnCap || c.FinalLogitSoftcapping != tc.finalCap {
				t.Errorf("config %+v", c)
			}
			hf := c.Map()
			if hf["attn_logit_softcapping"] != tc.hfAttnCap || hf["final_logit_softcapping"] != tc.hfFinal {
				t.Errorf("config.json caps %v %v", hf["attn_logit_softcapping"], hf["final_logit_softcapping"])
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ extra, key string }{
		{`"hidden_activation":"silu"`, "hidden_activation"},
		{`"query_pre_attn_scalar":0`, "query_pre_attn_scalar"},
		{`"query_pre_attn_scalar":null`, "query_pre_attn_scalar"},
		{`"attn_logit_softcapping":-1`, "attn_logit_softcapping"},
		{`"final_logit_softcapping":"30"`, "final_logit_softcapping"},
		{`"sliding_window":0`, "sliding_window"},
		{`"layer_types":["sliding_attention"]`, "layer_types"},
		{`"layer_types":["sliding_attention","full_attention","chunked_attention"]`, "layer_types[2]"},
		{`"use_bidirectional_attention":true`, "use_bidirectional_attention"},
		{`"mlp_bias":true`, "mlp_bias"},
		{`"rope_scaling":{"type":"longrope","factor":2,"short_factor":[1,1,1,1,1,1,1,1],"long_factor":[1,1,1,1,1,1,1,1]}`, "longrope"},
		{`"rope_scaling":{"rope_type":"mrope"}`, "mrope"},
	} {
		if _, err := model.New([]byte(`{` + base + `,` + tc.extra + `}`)); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %v, want one naming %s", tc.extra, err, tc.key)
		}
	}
}

// The reference checkpoints keep their options through SaveHF and a spago
// native folder (bit-identical logits), and the classifier's score head is
// not soft-capped (final_logit_softcapping is the LM head's).
func TestRoundTrip(t *testing.T) {
	for _, name := range []string{"gemma2-gqa-window3-f32", "gemma2-bf16-sharded", "gemma2-cls-softcap-f32"} {
		t.Run(name, func(t *testing.T) {
			l, err := checkpoint.Load(filepath.Join("../testdata/reference", name))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ids := [][]int{{2, 5, 9, 17, 33, 41, 7, 3}}
			logits := func(m model.Model) []float32 {
				y, err := m.Logits(model.NewBatch(ids, 0))
				if err != nil {
					t.Fatal(err)
				}
				return append([]float32(nil), ops.Data(y)...)
			}
			want := logits(l.Model)
			hfDir := filepath.Join(t.TempDir(), "hf")
			if err := checkpoint.SaveHF(hfDir, l.Model, checkpoint.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			natDir := filepath.Join(t.TempDir(), "m.spago")
			if err := checkpoint.SaveNative(natDir, l); err != nil {
				t.Fatal(err)
			}
			for _, dir := range []string{hfDir, natDir} {
				r, err := checkpoint.Load(dir)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				got, exp := r.Model.HFConfig(), l.Model.HFConfig()
				for _, k := range []string{"torch_dtype", "pad_token_id"} {
					delete(got, k)
					delete(exp, k)
				}
				if !reflect.DeepEqual(got, exp) {
					t.Errorf("%s: config %v, want %v", filepath.Base(dir), got, exp)
				}
				if a, b := r.Model.(*gemma2.Model).Config, l.Model.(*gemma2.Model).Config; !slices.Equal(a.Sliding, b.Sliding) ||
					a.Window != b.Window || a.AttnLogitSoftcapping != b.AttnLogitSoftcapping || a.QueryPreAttnScalar != b.QueryPreAttnScalar {
					t.Errorf("%s: options %+v, want %+v", filepath.Base(dir), a, b)
				}
				if !slices.Equal(logits(r.Model), want) {
					t.Errorf("%s: logits differ", filepath.Base(dir))
				}
			}
			cl, err := l.Model.(model.Classifier).ClassifierFor([]string{"a", "b", "c"}, 3)
			if err != nil {
				t.Fatal(err)
			}
			g := cl.(*gemma2.Model)
			g.Config.FinalLogitSoftcapping = 1e-3 // would bound every logit by 1e-3
			y, err := g.Logits(model.NewBatch(ids, 0))
			if err != nil {
				t.Fatal(err)
			}
			h := g.Hidden(model.NewBatch(ids, 0))
			last := ops.Data(h)[(len(ids[0])-1)*ops.Cols(h):]
			w := ops.Data(g.Score.Base().Weight)
			for j, got := range ops.Data(y) {
				var s float32
				for i, x := range last {
					s += w[j*len(last)+i] * x
				}
				if d := got - s; d > 1e-5 || d < -1e-5 || s < 2e-3 && s > -2e-3 {
					t.Fatalf("class %d: logit %v, uncapped score %v", j, got, s)
				}
			}
		})
	}
}

// Gradients through the whole model (soft-capped windowed attention,
// the four norms, the capped head) match central differences of the loss.
func TestGradients(t *testing.T) {
	l, err := checkpoint.Load("../testdata/reference/gemma2-gqa-window3-f32")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b := model.Batch{IDs: [][]int{{2, 5, 9, 17, 33, 41, 7}, {2, 8, 4, 0, 0, 0, 0}},
		Mask: [][]bool{{true, true, true, true, true, true, true}, {true, true, true, false, false, false, false}}}
	targets := []int{5, 9, 17, 33, 41, 7, 3, 8, 4, 6, -100, -100, -100, -100}
	loss := func() float64 {
		var v float64
		ops.WithoutGrad(func() error {
			y, err := l.Model.Logits(b)
			if err != nil {
				return err
			}
			v = float64(ops.Data(ops.CrossEntropy(y, targets))[0])
			return nil
		})
		return v
	}
	params := map[string]*layer.Param{}
	for _, p := range layer.Params(l.Model) {
		params[p.Path] = &p
		p.Param.SetRequiresGrad(true)
		p.Param.ZeroGrad()
	}
	y, err := l.Model.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.Backward(ops.CrossEntropy(y, targets)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
		"model.layers.1.self_attn.q_proj.weight", "model.layers.2.post_attention_layernorm.weight",
		"model.layers.1.post_feedforward_layernorm.weight", "model.embed_tokens.weight",
	} {
		p := params[name].Param
		data, grad := ops.Data(p), ops.Data(p.Grad())
		// the three largest gradients of the tensor
		idx := make([]int, len(grad))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, c int) int {
			if abs(grad[a]) > abs(grad[c]) {
				return -1
			}
			return 1
		})
		for _, i := range idx[:3] {
			const h = 1e-2
			old := data[i]
			data[i] = old + h
			up := loss()
			data[i] = old - h
			down := loss()
			data[i] = old
			fd := (up - down) / (2 * h)
			if d := fd - float64(grad[i]); d > 2e-3+0.03*abs64(fd) || -d > 2e-3+0.03*abs64(fd) {
				t.Errorf("%s[%d]: gradient %v, central difference %v", name, i, grad[i], fd)
			}
		}
	}
}

func abs(x float32) float32 { return max(x, -x) }

func abs64(x float64) float64 { return max(x, -x) }

// rope_scaling reaches both of Gemma 2's paths: a scaled model's logits
// move away from the unscaled ones, and decoding with the key/value cache
// gives its forward pass's logits.
func TestRopeScaling(t *testing.T) {
	l, err := checkpoint.Load(filepath.Join("../testdata/reference", "gemma2-gqa-window3-f32"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ids := []int{2, 5, 9, 17, 33, 41, 7, 3, 11}
	plain := l.Model.(*gemma2.Model)
	for _, rs := range []string{
		`{"rope_type":"linear","factor":4}`,
		`{"rope_type":"yarn","factor":4,"original_max_position_embeddings":16}`,
		`{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":16}`,
	} {
		c := *plain.Config
		c.RopeScaling = []byte(rs)
		if _, err := c.Rope(); err != nil {
			t.Fatal(err)
		}
		m := *plain
		m.Config = &c
		logits := func(m *gemma2.Model) []float32 {
			y, err := m.Logits(model.NewBatch([][]int{ids}, 0))
			if err != nil {
				t.Fatal(err)
			}
			return ops.Data(y)
		}
		want := logits(&m)
		if slices.Equal(want, logits(plain)) {
			t.Fatalf("%s: the same logits as without rope_scaling", rs)
		}
		cache := m.NewCache()
		v := c.VocabSize
		for i := range ids {
			y, err := m.Step(cache, ids[i:i+1])
			if err != nil {
				t.Fatal(err)
			}
			for j, got := range ops.Data(y) {
				if w := want[i*v+j]; abs(got-w) > 1e-5*max(1, abs(w)) {
					t.Fatalf("%s: token %d logit %d: cached %v, forward %v", rs, i, j, got, w)
				}
			}
		}
	}
}
