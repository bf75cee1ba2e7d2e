// Package qwen2 registers the Qwen2 architecture (Qwen2ForCausalLM,
// Qwen2ForSequenceClassification, config model_type "qwen2"). Qwen2 is
// Llama with biases on the q, k and v projections (none on o_proj), so it
// runs on package llama's implementation with that option; parameters are
// named as in Hugging Face checkpoints.
package qwen2

import (
	"encoding/json"
	"fmt"

	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
)

func init() {
	model.Register("qwen2", func(cfg []byte) (model.Model, error) {
		c, err := ParseConfig(cfg)
		if err != nil {
			return nil, err
		}
		return llama.New(c), nil
	})
}

// ParseConfig decodes a Qwen2 config.json with Hugging Face's Qwen2Config
// defaults. Sliding-window attention (use_sliding_window) is refused: the
// released Qwen2 and Qwen2.5 checkpoints do not use it.
func ParseConfig(data []byte) (*llama.Config, error) {
	var extra struct {
		UseSlidingWindow bool `json:"use_sliding_window"`
	}
	if err := json.Unmarshal(data, &extra); err != nil {
		return nil, fmt.Errorf("qwen2 config: %w", err)
	}
	if extra.UseSlidingWindow {
		return nil, fmt.Errorf("qwen2 config: use_sliding_window = true is not supported")
	}
	c, err := llama.ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("qwen2: %w", err)
	}
	c.ArchPrefix, c.QKVBias = "Qwen2", true
	if c.AttentionBias {
		return nil, fmt.Errorf("qwen2 config: attention_bias is not a Qwen2 key (q, k and v always have biases)")
	}
	return c, nil
}
