// Package phi3 registers the Phi-3 architecture (Phi3ForCausalLM,
// Phi3ForSequenceClassification, config model_type "phi3"). Phi-3 is Llama
// with fused projections: self_attn.qkv_proj holds [q; k; v] and
// mlp.gate_up_proj holds [gate; up] as rows of one weight each, kept as
// single linear slots (so LoRA on qkv_proj is plain LoRA on the fused
// matrix, as PEFT does), with Mistral's sliding window when sliding_window
// is set. It runs on package llama's implementation with those options.
package phi3

import (
	"encoding/json"
	"fmt"

	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
)

func init() {
	model.Register("phi3", func(cfg []byte) (model.Model, error) {
		c, err := ParseConfig(cfg)
		if err != nil {
			return nil, err
		}
		return llama.New(c), nil
	})
}

// ParseConfig decodes a Phi-3 config.json with Hugging Face's Phi3Config
// defaults (no sliding window unless sliding_window is set). rope_scaling
// (longrope, su) and partial_rotary_factor other than 1 are refused.
func ParseConfig(data []byte) (*llama.Config, error) {
	var extra struct {
		SlidingWindow json.RawMessage `json:"sliding_window"`
		PartialRotary *float64        `json:"partial_rotary_factor"`
		RopeScaling   json.RawMessage `json:"rope_scaling"`
		AttentionBias *bool           `json:"attention_bias"`
		MLPBias       *bool           `json:"mlp_bias"`
	}
	if err := json.Unmarshal(data, &extra); err != nil {
		return nil, fmt.Errorf("phi3 config: %w", err)
	}
	switch {
	case extra.PartialRotary != nil && *extra.PartialRotary != 1:
		return nil, fmt.Errorf("phi3 config: partial_rotary_factor %v is not supported (only 1)", *extra.PartialRotary)
	case len(extra.RopeScaling) > 0 && string(extra.RopeScaling) != "null":
		var rs struct {
			Type     string `json:"type"`
			RopeType string `json:"rope_type"`
		}
		_ = json.Unmarshal(extra.RopeScaling, &rs)
		return nil, fmt.Errorf("phi3 config: rope_scaling %q is not supported (only null)", rs.Type+rs.RopeType)
	case extra.AttentionBias != nil && *extra.AttentionBias || extra.MLPBias != nil && *extra.MLPBias:
		return nil, fmt.Errorf("phi3 config: attention_bias and mlp_bias are not Phi-3 keys (Phi-3 has no biases)")
	}
	window, raw, err := llama.ParseSlidingWindow(extra.SlidingWindow, 0)
	if err != nil {
		return nil, fmt.Errorf("phi3 config: %w", err)
	}
	c, err := llama.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("phi3: %w", err)
	}
	c.ArchPrefix, c.Fused, c.SlidingWindow = "Phi3", true, window
	c.Extra = map[string]json.RawMessage{"sliding_window": raw}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("phi3: %w", err)
	}
	return c, nil
}
