// Package mistral registers the Mistral architecture (MistralForCausalLM,
// MistralForSequenceClassification, config model_type "mistral"). Mistral
// is Llama with sliding-window attention: with config sliding_window = w,
// the query at position i attends to the keys j with i-w < j <= i (w keys,
// itself included), as Hugging Face transformers' masking_utils
// (sliding_window_overlay, transformers >= 4.53) masks them. It runs on
// package llama's implementation with that option; parameters are named as
// in Hugging Face checkpoints.
package mistral

import (
	"encoding/json"
	"fmt"

	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
)

func init() {
	model.Register("mistral", func(cfg []byte) (model.Model, error) {
		c, err := ParseConfig(cfg)
		if err != nil {
			return nil, err
		}
		return llama.New(c), nil
	})
}

// DefaultSlidingWindow is MistralConfig's sliding_window when config.json
// has no such key (null means no window).
const DefaultSlidingWindow = 4096

// ParseConfig decodes a Mistral config.json with Hugging Face's
// MistralConfig defaults (sliding_window 4096 when absent).
func ParseConfig(data []byte) (*llama.Config, error) {
	var extra struct {
		SlidingWindow json.RawMessage `json:"sliding_window"`
		AttentionBias *bool           `json:"attention_bias"`
		MLPBias       *bool           `json:"mlp_bias"`
	}
	if err := json.Unmarshal(data, &extra); err != nil {
		return nil, fmt.Errorf("mistral config: %w", err)
	}
	if extra.AttentionBias != nil && *extra.AttentionBias || extra.MLPBias != nil && *extra.MLPBias {
		return nil, fmt.Errorf("mistral config: attention_bias and mlp_bias are not Mistral keys (Mistral has no biases)")
	}
	window, raw, err := llama.ParseSlidingWindow(extra.SlidingWindow, DefaultSlidingWindow)
	if err != nil {
		return nil, fmt.Errorf("mistral config: %w", err)
	}
	c, err := llama.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("mistral: %w", err)
	}
	c.ArchPrefix, c.SlidingWindow = "Mistral", window
	c.Extra = map[string]json.RawMessage{"sliding_window": raw}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("mistral: %w", err)
	}
	return c, nil
}
