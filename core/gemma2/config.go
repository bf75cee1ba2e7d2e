// Package gemma2 implements the Gemma 2 architecture (Gemma2ForCausalLM,
// Gemma2ForSequenceClassification, config model_type "gemma2") in spago,
// with Hugging Face parameter names, as transformers' modeling_gemma2.py
// computes it (eval mode, eager attention; transformers 4.50, whose masks
// and layer pattern 4.53's masking_utils and layer_types keep):
//
//   - Gemma's RMSNorm x*rsqrt(mean(x^2)+eps)*(1+w) in float32, embeddings
//     times sqrt(hidden_size), the GELU-tanh gated MLP, head_dim from the
//     config and the LM head tied to the embeddings by default;
//   - four norms per layer: input_layernorm before attention,
//     post_attention_layernorm on the attention output before its
//     residual add, pre_feedforward_layernorm before the MLP and
//     post_feedforward_layernorm on its output before the residual add;
//   - attention scores scaled by query_pre_attn_scalar^-0.5 and soft-capped
//     to c*tanh(s/c) with c = attn_logit_softcapping before the masks;
//   - a sliding window of sliding_window keys (query i sees keys
//     i-w < j <= i) on the even layers 0, 2, 4, ... (layer_idx % 2 == 0),
//     or on the layers config layer_types names "sliding_attention";
//   - causal-LM logits soft-capped to c*tanh(x/c) with c =
//     final_logit_softcapping (the classifier's score head is not capped);
//   - rope_scaling as every Llama-based family reads it (llama.Rope), but
//     longrope.
//
// It has its own model type, built from package llama's attention and MLP
// modules, so package llama stays free of Gemma 2's options.
package gemma2

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/surgeon-ml/surgeon/core/llama"
)

// Gemma2Config's defaults for the keys a config.json may leave out.
const (
	DefaultHeadDim               = 256
	DefaultQueryPreAttnScalar    = 256
	DefaultAttnLogitSoftcapping  = 50.0
	DefaultFinalLogitSoftcapping = 30.0
	DefaultSlidingWindow         = 4096
)

// GELUTanh is the only MLP activation Gemma 2 checkpoints use.
const GELUTanh = "gelu_pytorch_tanh"

// Layer types of config layer_types.
const (
	SlidingAttention = "sliding_attention"
	FullAttention    = "full_attention"
)

// Config is a Gemma 2 config.json: Llama's fields (with Gemma's options
// set) and Gemma 2's own.
type Config struct {
	llama.Config
	// QueryPreAttnScalar sets the attention scale to its inverse square
	// root (query_pre_attn_scalar).
	QueryPreAttnScalar float64
	// AttnLogitSoftcapping caps attention scores (attn_logit_softcapping);
	// 0 when null.
	AttnLogitSoftcapping float64
	// FinalLogitSoftcapping caps the causal LM's logits
	// (final_logit_softcapping); 0 when null.
	FinalLogitSoftcapping float64
	// Window is sliding_window, used by the sliding layers; 0 when null.
	Window int
	// Sliding says which layers use the window (layer_types, or the even
	// layers).
	Sliding []bool
}

// ParseConfig decodes a Gemma 2 config.json with Hugging Face's
// Gemma2Config defaults (head_dim 256, query_pre_attn_scalar 256,
// attn_logit_softcapping 50, final_logit_softcapping 30, sliding_window
// 4096, hidden_activation gelu_pytorch_tanh, tied embeddings), and refuses
// what it does not compute, naming the key.
func ParseConfig(data []byte) (*Config, error) {
	var extra struct {
		HeadDim          *int            `json:"head_dim"`
		Tie              *bool           `json:"tie_word_embeddings"`
		HiddenActivation json.RawMessage `json:"hidden_activation"`
		QueryScalar      json.RawMessage `json:"query_pre_attn_scalar"`
		AttnCap          json.RawMessage `json:"attn_logit_softcapping"`
		FinalCap         json.RawMessage `json:"final_logit_softcapping"`
		SlidingWindow    json.RawMessage `json:"sliding_window"`
		LayerTypes       []string        `json:"layer_types"`
		Bidirectional    *bool           `json:"use_bidirectional_attention"`
		MLPBias          *bool           `json:"mlp_bias"`
		PartialRotary    json.RawMessage `json:"partial_rotary_factor"`
	}
	if err := json.Unmarshal(data, &extra); err != nil {
		return nil, fmt.Errorf("gemma2 config: %w", err)
	}
	switch {
	case extra.Bidirectional != nil && *extra.Bidirectional:
		return nil, fmt.Errorf("gemma2 config: use_bidirectional_attention = true is not supported")
	case extra.MLPBias != nil && *extra.MLPBias:
		return nil, fmt.Errorf("gemma2 config: mlp_bias is not a Gemma 2 key (Gemma 2's MLP has no biases)")
	case notNull(extra.PartialRotary):
		return nil, fmt.Errorf("gemma2 config: partial_rotary_factor is not supported")
	}
	act := GELUTanh
	if notNull(extra.HiddenActivation) {
		if err := json.Unmarshal(extra.HiddenActivation, &act); err != nil {
			return nil, fmt.Errorf("gemma2 config: hidden_activation: %w", err)
		}
		if act != GELUTanh {
			return nil, fmt.Errorf("gemma2 config: hidden_activation %q not supported (only %s)", act, GELUTanh)
		}
	}
	qs, err := positive(extra.QueryScalar, "query_pre_attn_scalar", DefaultQueryPreAttnScalar, false)
	if err != nil {
		return nil, err
	}
	attnCap, err := positive(extra.AttnCap, "attn_logit_softcapping", DefaultAttnLogitSoftcapping, true)
	if err != nil {
		return nil, err
	}
	finalCap, err := positive(extra.FinalCap, "final_logit_softcapping", DefaultFinalLogitSoftcapping, true)
	if err != nil {
		return nil, err
	}
	window, windowRaw, err := llama.ParseSlidingWindow(extra.SlidingWindow, DefaultSlidingWindow)
	if err != nil {
		return nil, fmt.Errorf("gemma2 config: %w", err)
	}
	lc, err := llama.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("gemma2: %w", err)
	}
	if extra.HeadDim == nil {
		lc.HeadDim = DefaultHeadDim
	}
	if extra.Tie == nil {
		lc.TieWordEmbeddings = true
	}
	lc.ArchPrefix, lc.NormUnitOffset, lc.ScaleEmbeddings, lc.Activation = "Gemma2", true, true, GELUTanh
	if err := lc.Validate(); err != nil {
		return nil, fmt.Errorf("gemma2: %w", err)
	}
	if r, _ := lc.Rope(); r.Type == llama.RopeLongrope {
		// Its factors switch with the sequence's length, which needs the
		// key/value cache recomputed (package llama does it for Phi-3).
		return nil, fmt.Errorf("gemma2 config: rope_scaling %s is not supported", llama.RopeLongrope)
	}
	c := &Config{Config: *lc, QueryPreAttnScalar: qs, AttnLogitSoftcapping: attnCap,
		FinalLogitSoftcapping: finalCap, Window: window}
	c.Sliding = make([]bool, c.NumHiddenLayers)
	switch {
	case extra.LayerTypes == nil:
		for i := range c.Sliding {
			c.Sliding[i] = i%2 == 0
		}
	case len(extra.LayerTypes) != c.NumHiddenLayers:
		return nil, fmt.Errorf("gemma2 config: layer_types has %d entries, num_hidden_layers is %d", len(extra.LayerTypes), c.NumHiddenLayers)
	default:
		for i, t := range extra.LayerTypes {
			switch t {
			case SlidingAttention:
				c.Sliding[i] = true
			case FullAttention:
			default:
				return nil, fmt.Errorf("gemma2 config: layer_types[%d] %q is neither %s nor %s", i, t, SlidingAttention, FullAttention)
			}
		}
	}
	c.Extra = map[string]json.RawMessage{
		"hidden_activation":       mustJSON(act),
		"query_pre_attn_scalar":   mustJSON(qs),
		"attn_logit_softcapping":  capJSON(attnCap),
		"final_logit_softcapping": capJSON(finalCap),
		"sliding_window":          windowRaw,
	}
	if extra.LayerTypes != nil {
		c.Extra["layer_types"] = mustJSON(extra.LayerTypes)
	}
	return c, nil
}

// AttnScale returns the attention score scale, query_pre_attn_scalar^-0.5.
func (c *Config) AttnScale() float32 {
	return float32(1 / math.Sqrt(c.QueryPreAttnScalar))
}

// LayerWindow returns the sliding window of layer i: Window on sliding
// layers, 0 (none) on the others.
func (c *Config) LayerWindow(i int) int {
	if i < len(c.Sliding) && c.Sliding[i] {
		return c.Window
	}
	return 0
}

// positive reads a positive number: def when absent, 0 when null and
// nullable.
func positive(raw json.RawMessage, key string, def float64, nullable bool) (float64, error) {
	if raw == nil {
		return def, nil
	}
	if string(raw) == "null" {
		if nullable {
			return 0, nil
		}
		return 0, fmt.Errorf("gemma2 config: %s is null", key)
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil || v <= 0 {
		return 0, fmt.Errorf("gemma2 config: %s %s is not a positive number", key, raw)
	}
	return v, nil
}

func capJSON(v float64) json.RawMessage {
	if v == 0 {
		return json.RawMessage("null")
	}
	return mustJSON(v)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func notNull(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }
