package gguf

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// Every GGUF name of every architecture maps to a Hugging Face name and
// back, in blocks of any number; other names map to nothing.
func TestArchNames(t *testing.T) {
	for _, name := range Architectures() {
		a := archs[name]
		t.Run(name, func(t *testing.T) {
			for g := range a.top {
				hf, ok := a.hfName(g)
				if back, ok2 := a.ggufName(hf); !ok || !ok2 || back != g {
					t.Errorf("%s -> %q -> %q", g, hf, back)
				}
			}
			for suffix := range a.block {
				for _, n := range []string{"0", "7", "31"} {
					g := "blk." + n + "." + suffix
					hf, ok := a.hfName(g)
					if !ok || !strings.HasPrefix(hf, a.blockPrefix+n+".") {
						t.Errorf("%s -> %q, %v", g, hf, ok)
					}
					if back, ok := a.ggufName(hf); !ok || back != g {
						t.Errorf("%s -> %q -> %q", g, hf, back)
					}
				}
			}
			for _, g := range []string{"blk.01.attn_norm.weight", "blk.-1.attn_norm.weight", "blk.x.attn_norm.weight", "blk.0", "rope_freqs.weight", "blk.0.nope.weight"} {
				if hf, ok := a.hfName(g); ok {
					t.Errorf("%s -> %q", g, hf)
				}
			}
		})
	}
	for _, c := range []struct{ arch, gguf, hf string }{
		{"qwen2", "blk.3.attn_k.bias", "model.layers.3.self_attn.k_proj.bias"},
		{"qwen3", "blk.1.attn_q_norm.weight", "model.layers.1.self_attn.q_norm.weight"},
		{"gemma2", "blk.0.ffn_norm.weight", "model.layers.0.pre_feedforward_layernorm.weight"},
		{"gemma2", "blk.0.post_attention_norm.weight", "model.layers.0.post_attention_layernorm.weight"},
		{"gemma2", "blk.0.post_ffw_norm.weight", "model.layers.0.post_feedforward_layernorm.weight"},
		{"phi3", "blk.2.attn_qkv.weight", "model.layers.2.self_attn.qkv_proj.weight"},
		{"phi3", "blk.2.ffn_up.weight", "model.layers.2.mlp.gate_up_proj.weight"},
		{"gpt2", "position_embd.weight", "transformer.wpe.weight"},
		{"gpt2", "blk.4.attn_qkv.weight", "transformer.h.4.attn.c_attn.weight"},
		{"gpt2", "blk.4.ffn_down.bias", "transformer.h.4.mlp.c_proj.bias"},
	} {
		if hf, ok := archs[c.arch].hfName(c.gguf); !ok || hf != c.hf {
			t.Errorf("%s %s -> %q, want %q", c.arch, c.gguf, hf, c.hf)
		}
	}
	if _, ok := archs["gemma"].ggufName("lm_head.weight"); ok {
		t.Error("gemma has an output.weight")
	}
}

// archFile writes a GGUF file of the given metadata and tensors and
// parses it.
func archFile(t *testing.T, kvs []KV, ts []WriteTensor) *File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := Write(path, kvs, ts); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, data)
}

// embd is a token_embd.weight of vocab rows of width hidden.
func embd(vocab, hidden int) WriteTensor {
	data, _ := Quantize(TypeF32, make([]float32, vocab*hidden))
	return WriteTensor{Name: "token_embd.weight", Shape: []int{vocab, hidden}, Type: TypeF32, Data: data}
}

// common returns the keys every architecture's file has.
func common(arch string, layers int) []KV {
	p := arch + "."
	kvs := []KV{{"general.architecture", arch}, {p + "context_length", uint32(64)}, {p + "embedding_length", uint32(48)},
		{p + "block_count", uint32(layers)}, {p + "feed_forward_length", uint32(96)}, {p + "attention.head_count", uint32(4)}}
	if arch == "gpt2" {
		return append(kvs, KV{p + "attention.layer_norm_epsilon", float32(1e-5)})
	}
	return append(kvs, KV{p + "attention.head_count_kv", uint32(2)}, KV{p + "attention.layer_norm_rms_epsilon", float32(1e-6)})
}

// ModelConfig reads each family's keys, with llama.cpp's defaults for the
// ones a file leaves out, and refuses what surgeon does not compute.
func TestModelConfigKeys(t *testing.T) {
	cases := []struct {
		name  string
		kvs   []KV
		extra []WriteTensor
		want  map[string]any
		err   string
	}{
		{name: "qwen2", kvs: common("qwen2", 2), want: map[string]any{"model_type": "qwen2", "architectures": []string{"Qwen2ForCausalLM"},
			"head_dim": 12, "rope_theta": 10000.0, "tie_word_embeddings": true, "use_sliding_window": false}},
		{name: "qwen3 key_length", kvs: append(common("qwen3", 2), KV{"qwen3.attention.key_length", uint32(32)}, KV{"qwen3.rope.freq_base", float32(1e6)}),
			extra: []WriteTensor{{Name: "output.weight", Shape: []int{10, 48}, Type: TypeF32, Data: make([]byte, 4*480)}},
			want:  map[string]any{"model_type": "qwen3", "head_dim": 32, "rope_theta": 1e6, "tie_word_embeddings": false}},
		{name: "gemma", kvs: append(common("gemma", 2), KV{"gemma.attention.key_length", uint32(16)}),
			want: map[string]any{"model_type": "gemma", "head_dim": 16, "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": true}},
		{name: "gemma2 defaults", kvs: common("gemma2", 4), want: map[string]any{"query_pre_attn_scalar": 12.0,
			"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "sliding_window": 4096}},
		{name: "gemma2 keys", kvs: append(common("gemma2", 4), KV{"gemma2.attn_logit_softcapping", float32(2)}, KV{"gemma2.final_logit_softcapping", float32(5)},
			KV{"gemma2.attention.sliding_window", uint32(3)}, KV{"gemma2.attention.scale", float32(1 / math.Sqrt(24))},
			KV{"gemma2.attention.sliding_window_pattern", uint32(3)}),
			want: map[string]any{"query_pre_attn_scalar": 24.0, "attn_logit_softcapping": 2.0, "final_logit_softcapping": 5.0, "sliding_window": 3,
				"layer_types": []string{"sliding_attention", "sliding_attention", "full_attention", "sliding_attention"}}},
		{name: "gemma2 27B scale", kvs: append(common("gemma2", 46), KV{"gemma2.attention.key_length", uint32(16)}),
			want: map[string]any{"query_pre_attn_scalar": 12.0, "head_dim": 16}},
		{name: "phi3", kvs: append(common("phi3", 2), KV{"phi3.attention.sliding_window", uint32(0)}, KV{"phi3.rope.scaling.original_context_length", uint32(32)}),
			want: map[string]any{"model_type": "phi3", "sliding_window": nil, "original_max_position_embeddings": 32}},
		{name: "phi3 window", kvs: append(common("phi3", 2), KV{"phi3.attention.sliding_window", uint32(5)}), want: map[string]any{"sliding_window": 5}},
		{name: "phi3 long rope", kvs: common("phi3", 2), extra: []WriteTensor{{Name: "rope_factors_long.weight", Shape: []int{6}, Type: TypeF32, Data: make([]byte, 24)}},
			err: `"rope_factors_long.weight": Phi-3's long-context rope scaling is not supported`},
		{name: "gpt2", kvs: common("gpt2", 2), extra: []WriteTensor{{Name: "position_embd.weight", Shape: []int{64, 48}, Type: TypeF32, Data: make([]byte, 4*64*48)}},
			want: map[string]any{"model_type": "gpt2", "architectures": []string{"GPT2LMHeadModel"}, "n_embd": 48, "n_inner": 96, "n_layer": 2,
				"n_head": 4, "n_positions": 64, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new", "hidden_size": nil}},
		{name: "gpt2 without positions", kvs: common("gpt2", 2), err: "GPT-2 without position_embd.weight"},
		{name: "partial rotary", kvs: append(common("qwen2", 2), KV{"qwen2.rope.dimension_count", uint32(6)}), err: "partial rotary embeddings are not supported"},
		{name: "linear rope", kvs: append(common("qwen3", 2), KV{"qwen3.rope.scaling.type", "linear"}, KV{"qwen3.rope.scaling.factor", float32(4)}),
			want: map[string]any{"rope_scaling": map[string]any{"rope_type": "linear", "factor": 4.0}}},
		{name: "old linear key", kvs: append(common("llama", 2), KV{"llama.rope.scale_linear", float32(2)}),
			want: map[string]any{"rope_scaling": map[string]any{"rope_type": "linear", "factor": 2.0}}},
		{name: "no rope scaling", kvs: append(common("qwen2", 2), KV{"qwen2.rope.scaling.type", "none"}), want: map[string]any{"rope_scaling": nil}},
		{name: "yarn", kvs: append(common("qwen2", 2), KV{"qwen2.rope.scaling.type", "yarn"}, KV{"qwen2.rope.scaling.factor", float32(4)}),
			err: `qwen2.rope.scaling.type "yarn" is not supported (only linear)`},
		{name: "unknown", kvs: []KV{{"general.architecture", "falcon"}},
			err: `general.architecture "falcon" is not supported (supported: gemma, gemma2, gpt2, llama, phi3, qwen2, qwen3)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := archFile(t, c.kvs, append([]WriteTensor{embd(10, 48)}, c.extra...))
			cfg, err := ModelConfig(f)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range c.want {
				got, present := cfg[k]
				if want == nil {
					if got != nil {
						t.Errorf("%s = %v, want absent or null", k, got)
					}
					continue
				}
				if !present || !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", k, got, want)
				}
			}
		})
	}
}

// A Hugging Face config written by WriteModel reads back through
// ModelConfig to the same values, for every family.
func TestWriteModelConfigRoundTrip(t *testing.T) {
	cases := map[string]map[string]any{
		"llama": {"model_type": "llama", "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
			"num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 5e5, "tie_word_embeddings": true,
			"rope_scaling": map[string]any{"rope_type": "linear", "factor": 2.0}},
		"mistral": {"model_type": "mistral", "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
			"num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 1e6, "tie_word_embeddings": true,
			"sliding_window": nil},
		"qwen3": {"model_type": "qwen3", "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
			"num_key_value_heads": 2, "head_dim": 32, "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 1e6, "tie_word_embeddings": true},
		"gemma2": {"model_type": "gemma2", "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4,
			"num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
			"query_pre_attn_scalar": 24.0, "attn_logit_softcapping": 2.0, "final_logit_softcapping": 5.0, "sliding_window": 3, "tie_word_embeddings": true},
		"phi3": {"model_type": "phi3", "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
			"num_key_value_heads": 2, "max_position_embeddings": 64, "original_max_position_embeddings": 32, "rms_norm_eps": 1e-5,
			"rope_theta": 10000.0, "sliding_window": 5, "tie_word_embeddings": true},
		"gpt2": {"model_type": "gpt2", "n_embd": 48, "n_inner": 80, "n_layer": 2, "n_head": 4, "n_positions": 64,
			"layer_norm_epsilon": 1e-5, "tie_word_embeddings": true},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			ts := []tensor.Tensor{{Name: "model.embed_tokens.weight", DType: tensor.F32, Shape: []int{10, 48}, Data: make([]byte, 4*480)}}
			if name == "gpt2" {
				ts = []tensor.Tensor{{Name: "transformer.wte.weight", DType: tensor.F32, Shape: []int{10, 48}, Data: make([]byte, 4*480)},
					{Name: "transformer.wpe.weight", DType: tensor.F32, Shape: []int{64, 48}, Data: make([]byte, 4*64*48)}}
			}
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := WriteModel(path, ModelWrite{Config: cfg, Type: "f32", Name: name}, ts); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ModelConfig(f)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range cfg {
				g := got[k]
				if name == "mistral" && k == "model_type" {
					want = "llama" // llama.cpp's converter writes Mistral as llama
				}
				if want == nil {
					if g != nil {
						t.Errorf("%s = %#v, want absent", k, g)
					}
					continue
				}
				if wf, ok := want.(float64); ok {
					if gf, ok := g.(float64); !ok || math.Abs(gf-wf) > 1e-12*math.Abs(wf) {
						t.Errorf("%s = %#v, want %v", k, g, want)
					}
					continue
				}
				if !reflect.DeepEqual(g, want) {
					t.Errorf("%s = %#v, want %#v", k, g, want)
				}
			}
		})
	}
}

// WriteModel refuses, in one line naming the key, what llama.cpp would
// compute differently.
func TestWriteModelRefuses(t *testing.T) {
	base := func(mt string, kv ...any) map[string]any {
		c := map[string]any{"model_type": mt, "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2,
			"num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
			"n_embd": 48, "n_layer": 2, "n_head": 4, "n_positions": 64}
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	for _, c := range []struct {
		name string
		cfg  map[string]any
		err  string
	}{
		{"unknown model type", base("bert"), `model_type "bert" is not supported (supported: gemma, gemma2, gpt2, llama, mistral, phi3, qwen2, qwen3)`},
		{"mistral window", base("mistral", "sliding_window", 4096), "llama.cpp runs Mistral as llama, which has no sliding window"},
		{"untied gemma", base("gemma", "tie_word_embeddings", false), "untied"},
		{"gemma2 layer types", base("gemma2", "layer_types", []any{"full_attention", "sliding_attention"}), "layer_types"},
		{"gemma2 null softcap", base("gemma2", "attn_logit_softcapping", nil), "attn_logit_softcapping null"},
		{"gpt2 exact gelu", base("gpt2", "activation_function", "gelu"), `activation_function "gelu"`},
		{"gpt2 inverse layer scaling", base("gpt2", "scale_attn_by_inverse_layer_idx", true), "scale_attn_by_inverse_layer_idx"},
		{"qwen2 yarn", base("qwen2", "rope_scaling", map[string]any{"rope_type": "yarn", "factor": 4.0}), `rope_scaling type "yarn" is not supported (only linear)`},
		{"llama3 rope bands", base("llama", "rope_scaling", map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0}), "low_freq_factor < high_freq_factor"},
		{"qwen2 llama3 rope", base("qwen2", "rope_scaling", map[string]any{"rope_type": "llama3", "factor": 8.0}), `rope_scaling type "llama3" is not supported (only linear)`},
		{"phi3 partial rotary", base("phi3", "partial_rotary_factor", 0.5), "partial_rotary_factor"},
		{"bad type", base("qwen2"), `gguf type "q9" not supported`},
	} {
		t.Run(c.name, func(t *testing.T) {
			typ := "f32"
			if c.name == "bad type" {
				typ = "q9"
			}
			err := WriteModel(filepath.Join(t.TempDir(), "m.gguf"), ModelWrite{Config: c.cfg, Type: typ}, nil)
			if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want %q", err, c.err)
			}
		})
	}
}

// FuzzModel reads arbitrary bytes as a GGUF model of any architecture:
// nothing panics, and what reads has tensors under Hugging Face names.
func FuzzModel(f *testing.F) {
	for _, arch := range Architectures() {
		kvs := common(arch, 1)
		ts := []WriteTensor{embd(4, 48)}
		if arch == "gpt2" {
			ts = append(ts, WriteTensor{Name: "position_embd.weight", Shape: []int{2, 48}, Type: TypeF32, Data: make([]byte, 4*96)},
				WriteTensor{Name: "blk.0.attn_qkv.weight", Shape: []int{3, 48}, Type: TypeF32, Data: make([]byte, 4*144)})
		} else {
			ts = append(ts, WriteTensor{Name: "blk.0.attn_norm.weight", Shape: []int{48}, Type: TypeF32, Data: make([]byte, 4*48)},
				WriteTensor{Name: "blk.0.attn_q.weight", Shape: []int{4, 32}, Type: TypeQ8_0, Data: make([]byte, 4*34)})
		}
		dir := f.TempDir()
		path := filepath.Join(dir, arch+".gguf")
		if err := Write(path, kvs, ts); err != nil {
			f.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		if _, err := ModelConfig(file); err != nil {
			return
		}
		ts, err := ModelTensors(file)
		if err != nil {
			return
		}
		for i, tt := range ts {
			ti := file.Tensors()[i]
			hf, shape, ok, err := HFTensorName(file, ti.Name)
			if err != nil || !ok || hf != tt.Name || !reflect.DeepEqual(shape, tt.Shape) {
				t.Fatalf("tensor %s: HFTensorName %q %v %v %v, ModelTensors %q %v", ti.Name, hf, shape, ok, err, tt.Name, tt.Shape)
			}
			if len(shape) == 2 && ti.NumElements() < 1<<20 {
				_ = WeightInto(file, ti.Name, make([]float32, ti.NumElements()))
				_ = WeightHalvesInto(file, ti.Name, make([]uint16, ti.NumElements()))
			}
			if ti.NumElements() < 1<<20 {
				_ = ModelTensorInto(file, ti.Name, make([]float32, ti.NumElements()))
			}
			// Rows read on their own are ModelTensors' rows.
			if len(shape) == 2 && shape[0] > 0 && ti.NumElements() < 1<<20 {
				rows, cols := shape[0], shape[1]
				got := make([]float32, 2*cols)
				if tab, err := OpenTable(file, ti.Name); err == nil && tab.Into([]int{rows - 1, 0}, got) == nil {
					want, err := tt.Float32()
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(bitsOf(got[:cols]), bitsOf(want[(rows-1)*cols:])) || !slices.Equal(bitsOf(got[cols:]), bitsOf(want[:cols])) {
						t.Fatalf("tensor %s: Table rows differ from ModelTensors", ti.Name)
					}
				}
			}
		}
	})
}

// ModelTensorInto gives ModelTensor's values, bit for bit, for every
// tensor of every architecture: quantized and half-precision ones
// dequantized, llama's q and k rows put back, Gemma's norms less one,
// GPT-2's Conv1D weights transposed; wrong lengths and unknown names are
// errors.
func TestModelTensorInto(t *testing.T) {
	rnd, enc := sinValues, func(typ GGMLType, v []float32) []byte { return encoded(t, typ, v) }
	for _, arch := range Architectures() {
		t.Run(arch, func(t *testing.T) {
			ts := []WriteTensor{{Name: "token_embd.weight", Shape: []int{4, 48}, Type: TypeF16, Data: enc(TypeF16, rnd(4*48, 1))}}
			if arch == "gpt2" {
				ts = append(ts, WriteTensor{Name: "position_embd.weight", Shape: []int{2, 48}, Type: TypeF16, Data: enc(TypeF16, rnd(96, 2))},
					WriteTensor{Name: "blk.0.attn_qkv.weight", Shape: []int{144, 48}, Type: TypeF32, Data: enc(TypeF32, rnd(144*48, 3))})
			} else {
				ts = append(ts, WriteTensor{Name: "blk.0.attn_norm.weight", Shape: []int{48}, Type: TypeF32, Data: enc(TypeF32, rnd(48, 4))},
					WriteTensor{Name: "blk.0.attn_q.weight", Shape: []int{48, 64}, Type: TypeQ8_0, Data: enc(TypeQ8_0, rnd(48*64, 5))},
					WriteTensor{Name: "blk.0.attn_k.weight", Shape: []int{24, 48}, Type: TypeBF16, Data: enc(TypeBF16, rnd(24*48, 6))})
			}
			path := filepath.Join(t.TempDir(), arch+".gguf")
			if err := Write(path, common(arch, 1), ts); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, ti := range f.Tensors() {
				got := make([]float32, ti.NumElements())
				want, err := ModelTensor(f, ti.Name)
				if err != nil { // a tensor this architecture does not have
					if err2 := ModelTensorInto(f, ti.Name, got); err2 == nil || err2.Error() != err.Error() {
						t.Fatalf("%s: ModelTensor: %v; ModelTensorInto: %v", ti.Name, err, err2)
					}
					continue
				}
				wv, err := want.Float32()
				if err != nil {
					t.Fatal(err)
				}
				if err := ModelTensorInto(f, ti.Name, got); err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(wv[i]) {
						t.Fatalf("%s: element %d: ModelTensorInto %g, ModelTensor %g", ti.Name, i, got[i], wv[i])
					}
				}
				if err := ModelTensorInto(f, ti.Name, got[1:]); err == nil || !strings.Contains(err.Error(), ti.Name) {
					t.Errorf("%s: one element short: error %v", ti.Name, err)
				}
			}
			if err := ModelTensorInto(f, "blk.9.ffn_up.weight", nil); err == nil || !strings.Contains(err.Error(), "no tensor") {
				t.Errorf("unknown tensor: error %v", err)
			}
		})
	}
}
