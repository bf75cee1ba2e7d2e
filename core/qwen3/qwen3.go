// Package qwen3 registers the Qwen3 architecture (Qwen3ForCausalLM,
// Qwen3ForSequenceClassification, config model_type "qwen3"). Qwen3 is
// Llama with an RMSNorm over each head's query and key features before the
// rotary embedding (q_norm, k_norm) and head_dim from the config (128 by
// default, independent of hidden_size), so it runs on package llama's
// implementation with those options.
package qwen3

import (
	"encoding/json"
	"fmt"

	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
)

func init() {
	model.Register("qwen3", func(cfg []byte) (model.Model, error) {
		c, err := ParseConfig(cfg)
		if err != nil {
			return nil, err
		}
		return llama.New(c), nil
	})
}

// ParseConfig decodes a Qwen3 config.json with Hugging Face's Qwen3Config
// defaults (head_dim 128). Sliding-window attention is refused.
func ParseConfig(data []byte) (*llama.Config, error) {
	var extra struct {
		HeadDim          *int `json:"head_dim"`
		UseSlidingWindow bool `json:"use_sliding_window"`
	}
	if err := json.Unmarshal(data, &extra); err != nil {
		return nil, fmt.Errorf("qwen3 config: %w", err)
	}
	if extra.UseSlidingWindow {
		return nil, fmt.Errorf("qwen3 config: use_sliding_window = true is not supported")
	}
	if extra.HeadDim == nil {
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		m["head_dim"] = 128
		data, _ = json.Marshal(m)
	}
	c, err := llama.ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("qwen3: %w", err)
	}
	c.ArchPrefix, c.QKNorm = "Qwen3", true
	return c, nil
}
