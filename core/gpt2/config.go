// Package gpt2 implements the GPT-2 architecture in spago (config
// model_type "gpt2"): the causal language model GPT2LMHeadModel and the
// sequence classifier GPT2ForSequenceClassification, configured from a
// Hugging Face config.json and named as Hugging Face checkpoints are
// (transformer.wte, transformer.h.N.attn.c_attn, ..., score).
//
// GPT-2's projections are transformers' Conv1D modules, whose weights are
// saved [in, out]. Here they are ordinary linear layers in replaceable
// slots, marked layer.Linear.Conv1D: the model holds W as [out, in] like
// every linear layer, and the parameter walk reports the saved shape, so
// state dicts load and save unchanged and adapters see a plain linear map
// (PEFT's LoRA A [r, in] and B [out, r], saved with fan_in_fan_out).
package gpt2

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Config mirrors the keys of a Hugging Face GPT2Config that affect the
// computation. Other keys of the config.json are kept in Extra and written
// back unchanged.
type Config struct {
	Architectures              []string          `json:"architectures,omitempty"`
	ModelType                  string            `json:"model_type"`
	VocabSize                  int               `json:"vocab_size"`
	NPositions                 int               `json:"n_positions"`
	NEmbd                      int               `json:"n_embd"`
	NLayer                     int               `json:"n_layer"`
	NHead                      int               `json:"n_head"`
	NInner                     *int              `json:"n_inner"`
	ActivationFunction         string            `json:"activation_function"`
	LayerNormEpsilon           float64           `json:"layer_norm_epsilon"`
	ScaleAttnWeights           bool              `json:"scale_attn_weights"`
	ScaleAttnByInverseLayerIdx bool              `json:"scale_attn_by_inverse_layer_idx"`
	TieWordEmbeddings          bool              `json:"tie_word_embeddings"`
	BOSTokenID                 *int              `json:"bos_token_id,omitempty"`
	EOSTokenID                 json.RawMessage   `json:"eos_token_id,omitempty"`
	PadTokenID                 *int              `json:"pad_token_id,omitempty"`
	ID2Label                   map[string]string `json:"id2label,omitempty"`
	TorchDtype                 string            `json:"torch_dtype,omitempty"`
	// Extra holds the config.json keys not listed above.
	Extra map[string]any `json:"-"`
	// ZeroIDs names the optional token ids (bos_token_id, pad_token_id)
	// that config.json sets to 0. gob drops a pointer to zero, so a
	// native model would lose them; RestoreZeroIDs puts them back.
	ZeroIDs []string `json:"-"`
}

// RestoreZeroIDs sets the token ids that ZeroIDs names back to 0 after a
// gob decoding left them nil.
func (c *Config) RestoreZeroIDs() {
	for _, k := range c.ZeroIDs {
		zero := 0
		switch k {
		case "bos_token_id":
			if c.BOSTokenID == nil {
				c.BOSTokenID = &zero
			}
		case "pad_token_id":
			if c.PadTokenID == nil {
				c.PadTokenID = &zero
			}
		}
	}
}

// activations maps GPT-2's activation_function values to the two functions
// they compute: the tanh approximation of GELU or the exact (erf) one.
var activations = map[string]string{
	"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh",
	"gelu": "erf",
}

// ParseConfig decodes and validates a config.json document with Hugging
// Face's GPT2Config defaults (GPT-2 small: 12 layers of width 768,
// gelu_new, layer_norm_epsilon 1e-5, tied embeddings).
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{VocabSize: 50257, NPositions: 1024, NEmbd: 768, NLayer: 12, NHead: 12,
		ActivationFunction: "gelu_new", LayerNormEpsilon: 1e-5, ScaleAttnWeights: true, TieWordEmbeddings: true}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("gpt2 config: %w", err)
	}
	var all map[string]any
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, fmt.Errorf("gpt2 config: %w", err)
	}
	if c.BOSTokenID != nil && *c.BOSTokenID == 0 {
		c.ZeroIDs = append(c.ZeroIDs, "bos_token_id")
	}
	if c.PadTokenID != nil && *c.PadTokenID == 0 {
		c.ZeroIDs = append(c.ZeroIDs, "pad_token_id")
	}
	known := c.fields()
	c.Extra = map[string]any{}
	for k, v := range all {
		if _, ok := known[k]; !ok {
			c.Extra[k] = v
		}
	}
	if _, ok := activations[c.ActivationFunction]; !ok {
		return nil, fmt.Errorf("gpt2 config: activation_function %q not supported (gelu_new, gelu_pytorch_tanh, gelu_fast, gelu)", c.ActivationFunction)
	}
	for _, k := range []struct {
		name string
		v    int
	}{{"vocab_size", c.VocabSize}, {"n_positions", c.NPositions}, {"n_embd", c.NEmbd}, {"n_layer", c.NLayer}, {"n_head", c.NHead}} {
		if k.v <= 0 {
			return nil, fmt.Errorf("gpt2 config: %s must be positive, got %d", k.name, k.v)
		}
	}
	if c.NEmbd%c.NHead != 0 {
		return nil, fmt.Errorf("gpt2 config: n_embd %d is not a multiple of n_head %d", c.NEmbd, c.NHead)
	}
	if c.NInner != nil && *c.NInner <= 0 {
		return nil, fmt.Errorf("gpt2 config: n_inner must be positive or null, got %d", *c.NInner)
	}
	return c, nil
}

// Inner returns the feed-forward width: n_inner, or 4*n_embd when null.
func (c *Config) Inner() int {
	if c.NInner != nil {
		return *c.NInner
	}
	return 4 * c.NEmbd
}

// IsClassifier reports whether the config describes
// GPT2ForSequenceClassification.
func (c *Config) IsClassifier() bool {
	return len(c.Architectures) > 0 && strings.HasSuffix(c.Architectures[0], "ForSequenceClassification")
}

// NumLabels returns the number of classes of a classifier (2 by default,
// as transformers' PretrainedConfig).
func (c *Config) NumLabels() int {
	if len(c.ID2Label) > 0 {
		return len(c.ID2Label)
	}
	if n, ok := c.Extra["num_labels"].(float64); ok && n > 0 {
		return int(n)
	}
	return 2
}

// fields returns the typed fields as a JSON object.
func (c *Config) fields() map[string]any {
	b, _ := json.Marshal(c)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// Map returns the config as a JSON object: the typed fields over Extra.
func (c *Config) Map() map[string]any {
	m := c.fields()
	for k, v := range c.Extra {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	return m
}
