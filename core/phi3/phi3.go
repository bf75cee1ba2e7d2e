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

// Phi3Config's defaults for the keys a config.json may leave out.
const (
	DefaultMaxPositionEmbeddings         = 4096
	DefaultOriginalMaxPositionEmbeddings = 4096
)

// ParseConfig decodes a Phi-3 config.json with Hugging Face's Phi3Config
// defaults (no sliding window unless sliding_window is set,
// max_position_embeddings and original_max_position_embeddings 4096).
//
// As in transformers' Phi3 modeling, partial_rotary_factor rotates only
// the first int(head_dim*factor) features of each head, and rope_scaling
// may only be longrope (its older names su and yarn are read as longrope,
// as Phi3Config does): long_factor past original_max_position_embeddings,
// short_factor up to it, cos and sin scaled by
// sqrt(1 + ln(max/original)/ln(original)).
func ParseConfig(data []byte) (*llama.Config, error) {
	var extra struct {
		SlidingWindow json.RawMessage `json:"sliding_window"`
		RopeScaling   json.RawMessage `json:"rope_scaling"`
		MaxPositions  *int            `json:"max_position_embeddings"`
		OrigPositions *int            `json:"original_max_position_embeddings"`
		AttentionBias *bool           `json:"attention_bias"`
		MLPBias       *bool           `json:"mlp_bias"`
	}
	if err := json.Unmarshal(data, &extra); err != nil {
		return nil, fmt.Errorf("phi3 config: %w", err)
	}
	switch {
	case extra.AttentionBias != nil && *extra.AttentionBias || extra.MLPBias != nil && *extra.MLPBias:
		return nil, fmt.Errorf("phi3 config: attention_bias and mlp_bias are not Phi-3 keys (Phi-3 has no biases)")
	case extra.OrigPositions != nil && *extra.OrigPositions <= 0:
		return nil, fmt.Errorf("phi3 config: original_max_position_embeddings %d is not positive", *extra.OrigPositions)
	}
	window, raw, err := llama.ParseSlidingWindow(extra.SlidingWindow, 0)
	if err != nil {
		return nil, fmt.Errorf("phi3 config: %w", err)
	}
	c, err := llama.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("phi3: %w", err)
	}
	c.ArchPrefix, c.Fused, c.SlidingWindow, c.PartialRotary = "Phi3", true, window, true
	c.Extra = map[string]json.RawMessage{"sliding_window": raw}
	if extra.MaxPositions == nil {
		c.MaxPositionEmbeddings = DefaultMaxPositionEmbeddings
	}
	if extra.OrigPositions == nil {
		c.OriginalMaxPositionEmbeddings = DefaultOriginalMaxPositionEmbeddings
	}
	if c.RopeScaling, err = longrope(extra.RopeScaling); err != nil {
		return nil, fmt.Errorf("phi3 config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("phi3: %w", err)
	}
	return c, nil
}

// longrope checks that rope_scaling is null or longrope, and rewrites the
// older type names su and yarn to longrope.
func longrope(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return raw, nil
	}
	var rs map[string]any
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil, fmt.Errorf("rope_scaling: %w", err)
	}
	renamed := false
	for _, key := range []string{"type", "rope_type"} {
		v, ok := rs[key]
		if !ok {
			continue
		}
		switch v {
		case llama.RopeLongrope:
		case "su", "yarn":
			rs[key], renamed = llama.RopeLongrope, true
		default:
			return nil, fmt.Errorf("rope_scaling type %v is not supported (Phi-3 takes only %s, or its older names su and yarn)", v, llama.RopeLongrope)
		}
	}
	if !renamed {
		return raw, nil
	}
	return json.Marshal(rs)
}
