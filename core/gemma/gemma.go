// Package gemma registers the Gemma architecture (GemmaForCausalLM,
// GemmaForSequenceClassification, config model_type "gemma"). Gemma is
// Llama with three differences, all options of package llama's
// implementation: every RMSNorm scales by (1 + weight), computed in
// float32; token embeddings are multiplied by sqrt(hidden_size) (a float32
// constant, as transformers computes it in the model's dtype and surgeon
// computes in float32); and the MLP gate is GELU with the tanh
// approximation (hidden_activation "gelu_pytorch_tanh"). head_dim comes
// from the config (256 by default) and the LM head is tied to the
// embeddings by default.
package gemma

import (
	"encoding/json"
	"fmt"

	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
)

func init() {
	model.Register("gemma", func(cfg []byte) (model.Model, error) {
		c, err := ParseConfig(cfg)
		if err != nil {
			return nil, err
		}
		return llama.New(c), nil
	})
}

// GELUTanh is the activation Gemma's MLP gate uses.
const GELUTanh = "gelu_pytorch_tanh"

// ParseConfig decodes a Gemma config.json with Hugging Face's GemmaConfig
// defaults (head_dim 256, tie_word_embeddings true, hidden_act
// gelu_pytorch_tanh).
//
// The MLP activation is hidden_activation when set (the key transformers
// 4.38 to 4.41 read, and which the published google/gemma-* configs set to
// gelu_pytorch_tanh beside hidden_act "gelu"), else hidden_act. Only
// gelu_pytorch_tanh is supported; hidden_act "gelu" without
// hidden_activation is refused because transformers' versions disagree on
// it (the older ones use the tanh approximation, the newer exact GELU).
func ParseConfig(data []byte) (*llama.Config, error) {
	var extra struct {
		HeadDim           *int            `json:"head_dim"`
		Tie               *bool           `json:"tie_word_embeddings"`
		HiddenAct         *string         `json:"hidden_act"`
		HiddenActivation  json.RawMessage `json:"hidden_activation"`
		Bidirectional     *bool           `json:"use_bidirectional_attention"`
		MLPBias           *bool           `json:"mlp_bias"`
		SlidingWindow     json.RawMessage `json:"sliding_window"`
		PartialRotary     json.RawMessage `json:"partial_rotary_factor"`
		FinalLogitSoftcap json.RawMessage `json:"final_logit_softcapping"`
	}
	if err := json.Unmarshal(data, &extra); err != nil {
		return nil, fmt.Errorf("gemma config: %w", err)
	}
	switch {
	case extra.Bidirectional != nil && *extra.Bidirectional:
		return nil, fmt.Errorf("gemma config: use_bidirectional_attention = true is not supported")
	case extra.MLPBias != nil && *extra.MLPBias:
		return nil, fmt.Errorf("gemma config: mlp_bias is not a Gemma key (Gemma's MLP has no biases)")
	case notNull(extra.SlidingWindow):
		return nil, fmt.Errorf("gemma config: sliding_window is not a Gemma key (Gemma 2 has one: model_type gemma2)")
	case notNull(extra.PartialRotary):
		return nil, fmt.Errorf("gemma config: partial_rotary_factor is not supported")
	case notNull(extra.FinalLogitSoftcap):
		return nil, fmt.Errorf("gemma config: final_logit_softcapping is not a Gemma key (model_type gemma2 has it)")
	}
	act, key := GELUTanh, "hidden_act"
	switch {
	case notNull(extra.HiddenActivation):
		key = "hidden_activation"
		if err := json.Unmarshal(extra.HiddenActivation, &act); err != nil {
			return nil, fmt.Errorf("gemma config: hidden_activation: %w", err)
		}
	case extra.HiddenAct != nil:
		act = *extra.HiddenAct
		if act == "gelu" {
			return nil, fmt.Errorf("gemma config: hidden_act %q without hidden_activation is ambiguous (transformers before 4.42 use gelu_pytorch_tanh, later ones exact gelu); set hidden_activation", act)
		}
	}
	if act != GELUTanh {
		return nil, fmt.Errorf("gemma config: %s %q not supported (only %s)", key, act, GELUTanh)
	}
	c, err := llama.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("gemma: %w", err)
	}
	if extra.HeadDim == nil {
		c.HeadDim = 256
	}
	if extra.Tie == nil {
		c.TieWordEmbeddings = true
	}
	if extra.HiddenAct == nil {
		c.HiddenAct = GELUTanh
	}
	c.ArchPrefix, c.NormUnitOffset, c.ScaleEmbeddings, c.Activation = "Gemma", true, true, GELUTanh
	if notNull(extra.HiddenActivation) {
		c.Extra = map[string]json.RawMessage{"hidden_activation": extra.HiddenActivation}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("gemma: %w", err)
	}
	return c, nil
}

func notNull(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }
