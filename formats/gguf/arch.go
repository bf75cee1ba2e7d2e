package gguf

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// arch describes one llama.cpp architecture (general.architecture) as the
// Hugging Face family it was converted from: its tensor names, the value
// conventions llama.cpp's converter (convert_hf_to_gguf.py) changes, and
// the metadata keys beyond the common ones.
type arch struct {
	// name is general.architecture and the prefix of its metadata keys.
	name string
	// display names the family in messages ("Llama").
	display string
	// hfClass is the causal LM's class in config.json architectures.
	hfClass string
	// blockPrefix starts a block's Hugging Face names.
	blockPrefix string
	// top maps the GGUF names outside the blocks to Hugging Face names.
	top map[string]string
	// block maps a block's GGUF suffixes ("attn_q.weight") to Hugging
	// Face suffixes ("self_attn.q_proj.weight").
	block map[string]string
	// permuteQK: the converter reorders q and k rows to the interleaved
	// rotary layout (PermuteQK); llama only.
	permuteQK bool
	// normOffset: the converter stores Gemma's RMSNorm weights plus one
	// (llama.cpp scales by w, Gemma by 1 + w).
	normOffset bool
	// conv1D: block matrices are Conv1D weights, stored [in, out] by
	// Hugging Face and transposed to [out, in] by the converter (GPT-2).
	conv1D bool
	// alwaysTied: llama.cpp has no output.weight for the architecture; its
	// LM head is the token embedding (Gemma).
	alwaysTied bool
	// layerNorm: the epsilon key is attention.layer_norm_epsilon (LayerNorm)
	// rather than attention.layer_norm_rms_epsilon.
	layerNorm bool
	// config adds the family's own keys to the Hugging Face config read
	// from the file.
	config func(f *File, h hparams, cfg map[string]any) error
	// meta returns the family's own metadata keys for a Hugging Face
	// config, after the common ones.
	meta func(c map[string]any, h writeHParams) ([]KV, error)
}

// llamaBlock are the block tensors the Llama-like families share.
var llamaBlock = map[string]string{
	"attn_norm.weight":   "input_layernorm.weight",
	"ffn_norm.weight":    "post_attention_layernorm.weight",
	"attn_q.weight":      "self_attn.q_proj.weight",
	"attn_k.weight":      "self_attn.k_proj.weight",
	"attn_v.weight":      "self_attn.v_proj.weight",
	"attn_output.weight": "self_attn.o_proj.weight",
	"ffn_gate.weight":    "mlp.gate_proj.weight",
	"ffn_up.weight":      "mlp.up_proj.weight",
	"ffn_down.weight":    "mlp.down_proj.weight",
}

// with returns a copy of m with the pairs kv (GGUF, HF, ...) added and
// the keys in drop removed.
func with(m map[string]string, drop []string, kv ...string) map[string]string {
	out := make(map[string]string, len(m)+len(kv)/2)
	for k, v := range m {
		if !slices.Contains(drop, k) {
			out[k] = v
		}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

var (
	qwen2Block = with(llamaBlock, nil,
		"attn_q.bias", "self_attn.q_proj.bias",
		"attn_k.bias", "self_attn.k_proj.bias",
		"attn_v.bias", "self_attn.v_proj.bias")
	qwen3Block = with(llamaBlock, nil,
		"attn_q_norm.weight", "self_attn.q_norm.weight",
		"attn_k_norm.weight", "self_attn.k_norm.weight")
	gemma2Block = with(llamaBlock, []string{"ffn_norm.weight"},
		"post_attention_norm.weight", "post_attention_layernorm.weight",
		"ffn_norm.weight", "pre_feedforward_layernorm.weight",
		"post_ffw_norm.weight", "post_feedforward_layernorm.weight")
	phi3Block = map[string]string{
		"attn_norm.weight":   "input_layernorm.weight",
		"attn_qkv.weight":    "self_attn.qkv_proj.weight",
		"attn_output.weight": "self_attn.o_proj.weight",
		"ffn_norm.weight":    "post_attention_layernorm.weight",
		"ffn_up.weight":      "mlp.gate_up_proj.weight",
		"ffn_down.weight":    "mlp.down_proj.weight",
	}
	gpt2Top = map[string]string{
		"token_embd.weight":    "transformer.wte.weight",
		"position_embd.weight": "transformer.wpe.weight",
		"output_norm.weight":   "transformer.ln_f.weight",
		"output_norm.bias":     "transformer.ln_f.bias",
		"output.weight":        "lm_head.weight",
	}
	gpt2Block = map[string]string{
		"attn_norm.weight":   "ln_1.weight",
		"attn_norm.bias":     "ln_1.bias",
		"attn_qkv.weight":    "attn.c_attn.weight",
		"attn_qkv.bias":      "attn.c_attn.bias",
		"attn_output.weight": "attn.c_proj.weight",
		"attn_output.bias":   "attn.c_proj.bias",
		"ffn_norm.weight":    "ln_2.weight",
		"ffn_norm.bias":      "ln_2.bias",
		"ffn_up.weight":      "mlp.c_fc.weight",
		"ffn_up.bias":        "mlp.c_fc.bias",
		"ffn_down.weight":    "mlp.c_proj.weight",
		"ffn_down.bias":      "mlp.c_proj.bias",
	}
)

// archs are the architectures surgeon reads and writes, by
// general.architecture.
var archs = map[string]*arch{
	"llama": {name: "llama", display: "Llama", hfClass: "LlamaForCausalLM", blockPrefix: "model.layers.",
		top: llamaTopNames, block: llamaBlockNames, permuteQK: true,
		config: llamaLikeConfig(map[string]any{"attention_bias": false, "mlp_bias": false, "head_dim": nil}),
		meta:   noMeta},
	"qwen2": {name: "qwen2", display: "Qwen2", hfClass: "Qwen2ForCausalLM", blockPrefix: "model.layers.",
		top: llamaTopNames, block: qwen2Block,
		config: llamaLikeConfig(map[string]any{"use_sliding_window": false}),
		meta:   qwen2Meta},
	"qwen3": {name: "qwen3", display: "Qwen3", hfClass: "Qwen3ForCausalLM", blockPrefix: "model.layers.",
		top: llamaTopNames, block: qwen3Block,
		config: llamaLikeConfig(map[string]any{"head_dim": nil, "attention_bias": false, "use_sliding_window": false}),
		meta:   qwen2Meta},
	"gemma": {name: "gemma", display: "Gemma", hfClass: "GemmaForCausalLM", blockPrefix: "model.layers.",
		top: gemmaTop, block: llamaBlock, normOffset: true, alwaysTied: true,
		config: llamaLikeConfig(map[string]any{"head_dim": nil, "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh"}),
		meta:   noMeta},
	"gemma2": {name: "gemma2", display: "Gemma2", hfClass: "Gemma2ForCausalLM", blockPrefix: "model.layers.",
		top: gemmaTop, block: gemma2Block, normOffset: true, alwaysTied: true,
		config: gemma2Config, meta: gemma2Meta},
	"phi3": {name: "phi3", display: "Phi3", hfClass: "Phi3ForCausalLM", blockPrefix: "model.layers.",
		top: llamaTopNames, block: phi3Block,
		config: phi3Config, meta: phi3Meta},
	"gpt2": {name: "gpt2", display: "GPT-2", hfClass: "GPT2LMHeadModel", blockPrefix: "transformer.h.",
		top: gpt2Top, block: gpt2Block, conv1D: true, layerNorm: true,
		config: gpt2Config, meta: noMeta},
}

var gemmaTop = map[string]string{
	"token_embd.weight":  "model.embed_tokens.weight",
	"output_norm.weight": "model.norm.weight",
}

// Architectures lists the general.architecture values surgeon reads and
// writes, sorted.
func Architectures() []string {
	var names []string
	for k := range archs {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// lookupArch returns the architecture called name, or an error naming it
// and the supported ones.
func lookupArch(name string) (*arch, error) {
	if a, ok := archs[name]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("general.architecture %q is not supported (supported: %s)", name, strings.Join(Architectures(), ", "))
}

// fileArch returns the file's architecture.
func (f *File) fileArch() (*arch, error) {
	name, err := f.String("general.architecture")
	if err != nil {
		return nil, err
	}
	a, err := lookupArch(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	return a, nil
}

// Architecture returns the file's general.architecture when surgeon can
// read it as a Hugging Face model, else an error that names it and the
// supported ones.
func Architecture(f *File) (string, error) {
	a, err := f.fileArch()
	if err != nil {
		return "", err
	}
	return a.name, nil
}

// hparams are the hyper-parameters read from a file's metadata.
type hparams struct {
	arch                                              *arch
	hidden, ffn, layers, heads, kvHeads, headDim, ctx int
	eps, ropeTheta                                    float64
}

// readHParams reads the common hyper-parameters of architecture a.
func (f *File) readHParams(a *arch) (hparams, error) {
	h := hparams{arch: a}
	p := a.name + "."
	var err error
	ints := []struct {
		key string
		dst *int
	}{
		{p + "embedding_length", &h.hidden},
		{p + "feed_forward_length", &h.ffn},
		{p + "block_count", &h.layers},
		{p + "attention.head_count", &h.heads},
		{p + "context_length", &h.ctx},
	}
	for _, it := range ints {
		if *it.dst, err = f.positiveInt(it.key); err != nil {
			return h, err
		}
	}
	h.kvHeads = h.heads
	if f.Has(p + "attention.head_count_kv") {
		if h.kvHeads, err = f.positiveInt(p + "attention.head_count_kv"); err != nil {
			return h, err
		}
	}
	if h.heads%h.kvHeads != 0 {
		return h, fmt.Errorf("%s: head_count %d is not a multiple of head_count_kv %d", f.name, h.heads, h.kvHeads)
	}
	if f.Has(p + "attention.key_length") {
		if h.headDim, err = f.positiveInt(p + "attention.key_length"); err != nil {
			return h, err
		}
	} else {
		if h.hidden%h.heads != 0 {
			return h, fmt.Errorf("%s: embedding_length %d is not a multiple of head_count %d", f.name, h.hidden, h.heads)
		}
		h.headDim = h.hidden / h.heads
	}
	if a.layerNorm {
		h.eps, err = f.decimalFloat(p + "attention.layer_norm_epsilon")
	} else {
		h.eps, err = f.decimalFloat(p + "attention.layer_norm_rms_epsilon")
	}
	if err != nil {
		return h, err
	}
	h.ropeTheta = 10000
	if f.Has(p + "rope.freq_base") {
		if h.ropeTheta, err = f.decimalFloat(p + "rope.freq_base"); err != nil {
			return h, err
		}
	}
	if f.Has(p+"rope.dimension_count") && !a.conv1D {
		n, err := f.positiveInt(p + "rope.dimension_count")
		if err != nil {
			return h, err
		}
		if n != h.headDim {
			return h, fmt.Errorf("%s: %srope.dimension_count %d is not the head size %d: partial rotary embeddings are not supported", f.name, p, n, h.headDim)
		}
	}
	return h, nil
}

// fileHParams reads the file's architecture and hyper-parameters.
func (f *File) fileHParams() (hparams, error) {
	a, err := f.fileArch()
	if err != nil {
		return hparams{}, err
	}
	return f.readHParams(a)
}

// llamaLikeConfig returns the config hook of the families built on
// Llama's config keys: set overrides or adds keys, and a nil value
// removes one; a "head_dim" key set to nil means the head size.
func llamaLikeConfig(set map[string]any) func(*File, hparams, map[string]any) error {
	return func(_ *File, h hparams, cfg map[string]any) error {
		for k, v := range set {
			switch {
			case k == "head_dim" && v == nil:
				cfg[k] = h.headDim
			case v == nil:
				delete(cfg, k)
			default:
				cfg[k] = v
			}
		}
		return nil
	}
}

func gemma2Config(f *File, h hparams, cfg map[string]any) error {
	if err := llamaLikeConfig(map[string]any{"head_dim": nil, "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh"})(f, h, cfg); err != nil {
		return err
	}
	p := "gemma2."
	// llama.cpp scales queries by 1/sqrt(head_dim), by
	// 1/sqrt(hidden/heads) for the 46-layer (27B) model; a file that says
	// otherwise carries attention.scale.
	scalar := float64(h.headDim)
	if h.layers == 46 {
		scalar = float64(h.hidden / h.heads)
	}
	if f.Has(p + "attention.scale") {
		s, err := f.decimalFloat(p + "attention.scale")
		if err != nil {
			return err
		}
		if !(s > 0) {
			return fmt.Errorf("%s: metadata key %q: %v is not positive", f.name, p+"attention.scale", s)
		}
		scalar = roundScalar(1 / (s * s))
	}
	cfg["query_pre_attn_scalar"] = scalar
	for _, k := range []struct {
		key, hf string
		def     float64
	}{{"attn_logit_softcapping", "attn_logit_softcapping", 50}, {"final_logit_softcapping", "final_logit_softcapping", 30}} {
		v := k.def
		if f.Has(p + k.key) {
			var err error
			if v, err = f.decimalFloat(p + k.key); err != nil {
				return err
			}
		}
		cfg[k.hf] = v
	}
	window := 4096
	if f.Has(p + "attention.sliding_window") {
		var err error
		if window, err = f.positiveInt(p + "attention.sliding_window"); err != nil {
			return err
		}
	}
	cfg["sliding_window"] = window
	if f.Has(p + "attention.sliding_window_pattern") {
		period, err := f.positiveInt(p + "attention.sliding_window_pattern")
		if err != nil {
			return err
		}
		types := make([]string, h.layers)
		for i := range types {
			// llama.cpp: layer i slides when i % period < period-1.
			types[i] = "full_attention"
			if i%period < period-1 {
				types[i] = "sliding_attention"
			}
		}
		cfg["layer_types"] = types
	}
	return nil
}

// roundScalar undoes the float32 rounding of 1/sqrt(x): integral values
// come back exact.
func roundScalar(x float64) float64 {
	if r := math.Round(x); math.Abs(x-r) < 1e-4*math.Max(1, r) {
		return r
	}
	return x
}

func phi3Config(f *File, h hparams, cfg map[string]any) error {
	p := "phi3."
	for _, name := range []string{"rope_factors_long.weight", "rope_factors_short.weight"} {
		if _, ok := f.TensorInfo(name); ok {
			return fmt.Errorf("%s: tensor %q: Phi-3's long-context rope scaling is not supported", f.name, name)
		}
	}
	window := 0
	if f.Has(p + "attention.sliding_window") {
		u, err := f.Uint(p + "attention.sliding_window")
		if err != nil {
			return err
		}
		if u > 1<<40 {
			return fmt.Errorf("%s: metadata key %q: value %d out of range", f.name, p+"attention.sliding_window", u)
		}
		window = int(u)
	}
	if window > 0 {
		cfg["sliding_window"] = window
	} else {
		cfg["sliding_window"] = nil
	}
	cfg["original_max_position_embeddings"] = h.ctx
	if f.Has(p + "rope.scaling.original_context_length") {
		n, err := f.positiveInt(p + "rope.scaling.original_context_length")
		if err != nil {
			return err
		}
		cfg["original_max_position_embeddings"] = n
	}
	return nil
}

func gpt2Config(f *File, h hparams, cfg map[string]any) error {
	if _, ok := f.TensorInfo("position_embd.weight"); !ok {
		return fmt.Errorf("%s: GPT-2 without position_embd.weight", f.name)
	}
	if h.kvHeads != h.heads || h.headDim*h.heads != h.hidden {
		return fmt.Errorf("%s: GPT-2 with %d heads, %d key-value heads and head size %d for width %d is not supported", f.name, h.heads, h.kvHeads, h.headDim, h.hidden)
	}
	for _, k := range []string{"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
		"num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "max_position_embeddings", "hidden_act",
		"attention_bias", "mlp_bias"} {
		delete(cfg, k)
	}
	cfg["n_embd"] = h.hidden
	cfg["n_inner"] = h.ffn
	cfg["n_layer"] = h.layers
	cfg["n_head"] = h.heads
	cfg["n_positions"] = h.ctx
	cfg["n_ctx"] = h.ctx
	cfg["layer_norm_epsilon"] = h.eps
	cfg["activation_function"] = "gelu_new"
	return nil
}

// splitBlock splits "blk.N.suffix" into N and suffix.
func splitBlock(name string) (num, suffix string, ok bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return "", "", false
	}
	num, suffix, ok = strings.Cut(rest, ".")
	if !ok {
		return "", "", false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || strconv.Itoa(n) != num {
		return "", "", false
	}
	return num, suffix, true
}

// hfName maps a GGUF tensor name to its Hugging Face name.
func (a *arch) hfName(name string) (string, bool) {
	if hf, ok := a.top[name]; ok {
		return hf, true
	}
	num, suffix, ok := splitBlock(name)
	if !ok {
		return "", false
	}
	hf, ok := a.block[suffix]
	if !ok {
		return "", false
	}
	return a.blockPrefix + num + "." + hf, true
}

// ggufName maps a Hugging Face tensor name to its GGUF name.
func (a *arch) ggufName(hf string) (string, bool) {
	for g, h := range a.top {
		if h == hf {
			return g, true
		}
	}
	rest, ok := strings.CutPrefix(hf, a.blockPrefix)
	if !ok {
		return "", false
	}
	num, suffix, ok := strings.Cut(rest, ".")
	if !ok {
		return "", false
	}
	for g, h := range a.block {
		if h == suffix {
			return "blk." + num + "." + g, true
		}
	}
	return "", false
}

// transposed says the GGUF tensor is the transpose of its Hugging Face
// form: a GPT-2 Conv1D weight.
func (a *arch) transposed(ggufName string, dims int) bool {
	return a.conv1D && dims == 2 && strings.HasPrefix(ggufName, "blk.") && strings.HasSuffix(ggufName, ".weight")
}

// offsetNorm says the tensor is a Gemma RMSNorm weight stored plus one.
func (a *arch) offsetNorm(hfName string) bool {
	return a.normOffset && strings.HasSuffix(hfName, "norm.weight")
}

// qkHeads is the head count whose rows the converter permuted in the
// named GGUF tensor: the attention heads for q, the key-value heads for
// k, 0 for other tensors and architectures that do not permute.
func (h hparams) qkHeads(name string) int {
	if h.arch == nil || !h.arch.permuteQK {
		return 0
	}
	switch {
	case strings.HasSuffix(name, ".attn_q.weight"):
		return h.heads
	case strings.HasSuffix(name, ".attn_k.weight"):
		return h.kvHeads
	}
	return 0
}
