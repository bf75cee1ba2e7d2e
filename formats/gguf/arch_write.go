package gguf

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// writeHParams are the hyper-parameters of a model to write, read from its
// Hugging Face config.
type writeHParams struct {
	hidden, ffn, layers, heads, kvHeads, headDim, ctx int
}

// hfHParams reads the common hyper-parameters from a Hugging Face config
// of architecture a.
func hfHParams(a *arch, c map[string]any) (writeHParams, error) {
	var h writeHParams
	keys := []struct {
		key string
		dst *int
	}{
		{"hidden_size", &h.hidden}, {"intermediate_size", &h.ffn}, {"num_hidden_layers", &h.layers},
		{"num_attention_heads", &h.heads}, {"max_position_embeddings", &h.ctx},
	}
	if a.conv1D {
		keys = []struct {
			key string
			dst *int
		}{{"n_embd", &h.hidden}, {"n_layer", &h.layers}, {"n_head", &h.heads}, {"n_positions", &h.ctx}}
	}
	for _, k := range keys {
		v, err := cfgInt(c, k.key)
		if err != nil {
			return h, err
		}
		if v <= 0 {
			return h, fmt.Errorf("config: %s is %d", k.key, v)
		}
		*k.dst = v
	}
	if h.hidden%h.heads != 0 && a.conv1D {
		return h, fmt.Errorf("config: n_embd %d is not a multiple of n_head %d", h.hidden, h.heads)
	}
	h.kvHeads = h.heads
	if v, err := cfgInt(c, "num_key_value_heads"); err == nil && v > 0 && !a.conv1D {
		h.kvHeads = v
	}
	if a.conv1D {
		h.ffn = 4 * h.hidden
		if v, err := cfgInt(c, "n_inner"); err == nil && v > 0 {
			h.ffn = v
		}
	}
	h.headDim = 0
	if hd, err := cfgInt(c, "head_dim"); err == nil && hd > 0 && !a.conv1D {
		h.headDim = hd
	}
	if h.headDim == 0 {
		if h.hidden%h.heads != 0 {
			return h, fmt.Errorf("config: hidden_size %d is not a multiple of num_attention_heads %d", h.hidden, h.heads)
		}
		h.headDim = h.hidden / h.heads
	}
	return h, nil
}

// archForModelType returns the architecture written for a Hugging Face
// model_type.
func archForModelType(path string, c map[string]any) (*arch, error) {
	mt, _ := c["model_type"].(string)
	if mt == "mistral" {
		// llama.cpp's converter writes Mistral as llama (q/k permuted);
		// its llama has no sliding window.
		if w, ok := c["sliding_window"]; ok && w != nil {
			return nil, fmt.Errorf("%s: writing GGUF: Mistral's sliding_window %v: llama.cpp runs Mistral as llama, which has no sliding window", path, w)
		}
		return archs["llama"], nil
	}
	a, ok := archs[mt]
	if !ok {
		types := append(Architectures(), "mistral")
		slices.Sort(types)
		return nil, fmt.Errorf("%s: writing GGUF: model_type %q is not supported (supported: %s)", path, mt, strings.Join(types, ", "))
	}
	return a, nil
}

// WriteModel writes a causal LM as a llama.cpp GGUF file, as llama.cpp's
// convert_hf_to_gguf.py would (Mistral without a sliding window as llama):
// general.architecture and the <arch>.*
// hyper-parameters of its family, general.file_type, the tokenizer
// metadata, and the tensors under llama.cpp's names in its conventions
// (Llama's q and k permuted to the interleaved rotary layout, Gemma's norm
// weights plus one, GPT-2's Conv1D weights transposed to [out, in]),
// converted to o.Type. tensors holds the model's parameters under Hugging
// Face names and layouts (any float dtype).
func WriteModel(path string, o ModelWrite, tensors []tensor.Tensor) error {
	mts := make([]SourceTensor, len(tensors))
	for i, t := range tensors {
		mts[i] = SourceTensor{Name: t.Name, Shape: t.Shape, Values: t.Float32}
	}
	return WriteModelFrom(path, o, mts)
}

// WriteModelFrom is WriteModel with each tensor's values read when the
// writer reaches it: one tensor at a time is in memory (as float32, then
// encoded), whatever the model's size.
func WriteModelFrom(path string, o ModelWrite, tensors []SourceTensor) error {
	ft, ok := FileTypes[strings.ToLower(o.Type)]
	if !ok {
		var names []string
		for k := range FileTypes {
			names = append(names, k)
		}
		return fmt.Errorf("gguf type %q not supported (known: %s)", o.Type, strings.Join(slices.Sorted(slices.Values(names)), ", "))
	}
	c := o.Config
	a, err := archForModelType(path, c)
	if err != nil {
		return err
	}
	h, err := hfHParams(a, c)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if a.alwaysTied && c["tie_word_embeddings"] == false {
		return fmt.Errorf("%s: llama.cpp's %s reuses the token embedding as the LM head; this model's lm_head is untied (tie_word_embeddings false)", path, a.name)
	}
	p := a.name + "."
	var extraTensors []WriteTensor
	kvs := []KV{
		{"general.architecture", a.name},
		{"general.name", o.Name},
		{"general.file_type", ft.FileType},
		{"general.quantization_version", uint32(2)},
		{p + "context_length", uint32(h.ctx)},
		{p + "embedding_length", uint32(h.hidden)},
		{p + "block_count", uint32(h.layers)},
		{p + "feed_forward_length", uint32(h.ffn)},
	}
	if a.conv1D {
		if err := gpt2Check(c); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		kvs = append(kvs,
			KV{p + "attention.head_count", uint32(h.heads)},
			KV{p + "attention.layer_norm_epsilon", float32(cfgFloat(c, "layer_norm_epsilon", 1e-5))})
	} else {
		kvs = append(kvs,
			KV{p + "rope.dimension_count", uint32(h.headDim)},
			KV{p + "attention.head_count", uint32(h.heads)},
			KV{p + "attention.head_count_kv", uint32(h.kvHeads)},
			KV{p + "attention.layer_norm_rms_epsilon", float32(cfgFloat(c, "rms_norm_eps", 1e-6))},
			KV{p + "rope.freq_base", float32(cfgFloat(c, "rope_theta", 10000))})
		if h.headDim != h.hidden/h.heads || h.hidden%h.heads != 0 || a.name == "qwen3" || a.normOffset {
			kvs = append(kvs, KV{p + "attention.key_length", uint32(h.headDim)}, KV{p + "attention.value_length", uint32(h.headDim)})
		}
		rope, err := ropeScalingMeta(p, c)
		if err != nil && a.name == "llama" && ropeType(c) == "llama3" {
			// Llama 3's scaling goes in a tensor, as llama.cpp's
			// converter writes it.
			var freqs *WriteTensor
			if rope, freqs, err = llama3Meta(p, c, h.headDim); err == nil {
				extraTensors = append(extraTensors, *freqs)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		kvs = append(kvs, rope...)
	}
	extra, err := a.meta(c, h)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	kvs = append(kvs, extra...)
	kvs = append(kvs, o.Tokenizer...)
	out := extraTensors
	for _, t := range tensors {
		name, ok := a.ggufName(t.Name)
		if !ok {
			return fmt.Errorf("%s: tensor %q has no llama.cpp name", path, t.Name)
		}
		heads := 0
		switch {
		case a.permuteQK && strings.HasSuffix(name, ".attn_q.weight"):
			heads = h.heads
		case a.permuteQK && strings.HasSuffix(name, ".attn_k.weight"):
			heads = h.kvHeads
		}
		if heads > 0 {
			if err := checkPermute(t.Name, t.Shape, heads); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		shape := slices.Clone(t.Shape)
		transpose := a.transposed(name, len(shape))
		if transpose {
			shape = []int{shape[1], shape[0]}
		}
		typ := ft.Type
		if len(shape) != 2 {
			typ = TypeF32
		} else if shape[1]%typ.BlockSize() != 0 {
			typ = TypeF16
		}
		offset := a.offsetNorm(t.Name)
		src := t
		out = append(out, WriteTensor{Name: name, Shape: shape, Type: typ, Source: func() ([]byte, error) {
			v, err := src.Values()
			if err != nil {
				return nil, err
			}
			if len(v) != tensor.NumElements(src.Shape) {
				return nil, fmt.Errorf("%s: %d values for shape %v", src.Name, len(v), src.Shape)
			}
			if heads > 0 {
				v = permuteHeads(v, src.Shape[0], src.Shape[1], heads, false)
			}
			if offset {
				for i := range v {
					v[i]++
				}
			}
			if transpose {
				rows, cols := src.Shape[0], src.Shape[1]
				tr := make([]float32, len(v))
				for r := range rows {
					for c := range cols {
						tr[c*rows+r] = v[r*cols+c]
					}
				}
				v = tr
			}
			return Quantize(typ, v)
		}})
	}
	return Write(path, kvs, out)
}

// SourceTensor is one parameter of a model WriteModelFrom writes: its
// Hugging Face name and shape, and a function that reads its values (a
// fresh slice the writer may change) when the writer reaches it.
type SourceTensor struct {
	Name   string
	Shape  []int
	Values func() ([]float32, error)
}

func noMeta(map[string]any, writeHParams) ([]KV, error) { return nil, nil }

func qwen2Meta(c map[string]any, _ writeHParams) ([]KV, error) {
	if c["use_sliding_window"] == true {
		return nil, fmt.Errorf("writing GGUF: use_sliding_window is not supported by llama.cpp's %v", c["model_type"])
	}
	return nil, nil
}

func gemma2Meta(c map[string]any, h writeHParams) ([]KV, error) {
	p := "gemma2."
	var kvs []KV
	for _, k := range []struct {
		hf  string
		def float64
	}{{"attn_logit_softcapping", 50}, {"final_logit_softcapping", 30}} {
		v, present := c[k.hf]
		if present && v == nil {
			return nil, fmt.Errorf("writing GGUF: %s null is not expressible for llama.cpp's gemma2 (it caps at %v when the key is absent)", k.hf, k.def)
		}
		kvs = append(kvs, KV{p + k.hf, float32(cfgFloat(c, k.hf, k.def))})
	}
	window := 4096
	if v, present := c["sliding_window"]; present {
		if v == nil {
			return nil, fmt.Errorf("writing GGUF: sliding_window null is not expressible for llama.cpp's gemma2")
		}
		w, err := cfgInt(c, "sliding_window")
		if err != nil {
			return nil, err
		}
		window = w
	}
	kvs = append(kvs, KV{p + "attention.sliding_window", uint32(window)})
	if lt, ok := c["layer_types"].([]any); ok {
		for i, t := range lt {
			want := "full_attention"
			if i%2 == 0 {
				want = "sliding_attention"
			}
			if t != want {
				return nil, fmt.Errorf("writing GGUF: layer_types %v is not llama.cpp's gemma2 pattern (sliding on the even layers)", lt)
			}
		}
	}
	// llama.cpp scales queries by 1/sqrt(head_dim) (1/sqrt(hidden/heads)
	// for 46 layers); another query_pre_attn_scalar goes in
	// attention.scale, which surgeon reads back (llama.cpp does not).
	implied := float64(h.headDim)
	if h.layers == 46 {
		implied = float64(h.hidden / h.heads)
	}
	qs := cfgFloat(c, "query_pre_attn_scalar", 256)
	if qs <= 0 {
		return nil, fmt.Errorf("writing GGUF: query_pre_attn_scalar %v is not positive", qs)
	}
	if qs != implied {
		kvs = append(kvs, KV{p + "attention.scale", float32(1 / math.Sqrt(qs))})
	}
	return kvs, nil
}

func phi3Meta(c map[string]any, h writeHParams) ([]KV, error) {
	p := "phi3."
	if v, ok := c["partial_rotary_factor"]; ok && v != nil && cfgFloat(c, "partial_rotary_factor", 1) != 1 {
		return nil, fmt.Errorf("writing GGUF: partial_rotary_factor %v is not supported", v)
	}
	window := 0
	if v, ok := c["sliding_window"]; ok && v != nil {
		w, err := cfgInt(c, "sliding_window")
		if err != nil {
			return nil, err
		}
		window = w
	}
	orig := h.ctx
	if v, err := cfgInt(c, "original_max_position_embeddings"); err == nil && v > 0 {
		orig = v
	}
	return []KV{
		{p + "rope.scaling.original_context_length", uint32(orig)},
		{p + "attention.sliding_window", uint32(window)},
	}, nil
}

// gpt2Check refuses GPT-2 options llama.cpp's gpt2 does not compute.
func gpt2Check(c map[string]any) error {
	switch act, _ := c["activation_function"].(string); act {
	case "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "":
	default:
		return fmt.Errorf("writing GGUF: activation_function %q: llama.cpp's gpt2 computes the tanh GELU (gelu_new)", act)
	}
	if c["scale_attn_by_inverse_layer_idx"] == true || c["scale_attn_weights"] == false || c["reorder_and_upcast_attn"] == true {
		return fmt.Errorf("writing GGUF: llama.cpp's gpt2 scales attention by 1/sqrt(head size) only (scale_attn_weights true, scale_attn_by_inverse_layer_idx false)")
	}
	return nil
}

// ropeType returns a config's rope_scaling rope_type (or older type).
func ropeType(c map[string]any) string {
	m, _ := c["rope_scaling"].(map[string]any)
	typ, _ := m["rope_type"].(string)
	if typ == "" {
		typ, _ = m["type"].(string)
	}
	return typ
}

// llama3Meta returns Llama 3's rope scaling as llama.cpp's converter
// writes it: RopeFreqsTensor, F32, with the factors llama3Factors
// computes, and rope.scaling.original_context_length when it is not Llama
// 3.1's 8192 (which a reader assumes).
func llama3Meta(p string, c map[string]any, headDim int) ([]KV, *WriteTensor, error) {
	m, _ := c["rope_scaling"].(map[string]any)
	factor := cfgFloat(m, "factor", 8)
	lo := cfgFloat(m, "low_freq_factor", 1)
	hi := cfgFloat(m, "high_freq_factor", 4)
	orig := cfgFloat(m, "original_max_position_embeddings", 8192)
	if !(factor >= 1) || !(lo > 0) || !(hi > lo) || !(orig > 0) {
		return nil, nil, fmt.Errorf("writing GGUF: rope_scaling llama3 needs factor >= 1 and 0 < low_freq_factor < high_freq_factor, got %g, %g, %g", factor, lo, hi)
	}
	v := llama3Factors(cfgFloat(c, "rope_theta", 10000), headDim, factor, lo, hi, orig)
	data, err := Quantize(TypeF32, v)
	if err != nil {
		return nil, nil, err
	}
	var kvs []KV
	if orig != 8192 {
		kvs = append(kvs, KV{p + "rope.scaling.original_context_length", uint32(orig)})
	}
	return kvs, &WriteTensor{Name: RopeFreqsTensor, Shape: []int{len(v)}, Type: TypeF32, Data: data}, nil
}

// ropeScalingMeta returns the rope scaling keys of a config's rope_scaling:
// linear scaling as llama.cpp's converter writes it (rope.scaling.type and
// rope.scaling.factor); other types are refused, as llama.cpp would rotate
// differently (Llama 3's needs rope_freqs.weight, YaRN its own keys).
func ropeScalingMeta(p string, c map[string]any) ([]KV, error) {
	rs, ok := c["rope_scaling"]
	if !ok || rs == nil {
		return nil, nil
	}
	m, ok := rs.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("writing GGUF: rope_scaling %v is not an object", rs)
	}
	typ, _ := m["rope_type"].(string)
	if typ == "" {
		typ, _ = m["type"].(string)
	}
	if typ == "default" {
		return nil, nil
	}
	if typ != "linear" {
		return nil, fmt.Errorf("writing GGUF: rope_scaling type %q is not supported (only linear)", typ)
	}
	factor := cfgFloat(m, "factor", 0)
	if !(factor > 0) {
		return nil, fmt.Errorf("writing GGUF: rope_scaling factor %v is not a positive number", m["factor"])
	}
	return []KV{{p + "rope.scaling.type", "linear"}, {p + "rope.scaling.factor", float32(factor)}}, nil
}
