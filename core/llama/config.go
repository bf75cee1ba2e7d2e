// Package llama implements the Llama architecture in spago: a causal
// language model (LlamaForCausalLM) and a sequence classifier
// (LlamaForSequenceClassification), configured from a Hugging Face
// config.json and named as Hugging Face checkpoints are.
package llama

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/surgeon-ml/surgeon/core/model"
)

// Config mirrors the fields of a Hugging Face LlamaConfig that affect the
// computation.
type Config struct {
	Architectures         []string          `json:"architectures,omitempty"`
	ModelType             string            `json:"model_type"`
	HiddenSize            int               `json:"hidden_size"`
	IntermediateSize      int               `json:"intermediate_size"`
	NumHiddenLayers       int               `json:"num_hidden_layers"`
	NumAttentionHeads     int               `json:"num_attention_heads"`
	NumKeyValueHeads      int               `json:"num_key_value_heads"`
	HeadDim               int               `json:"head_dim,omitempty"`
	VocabSize             int               `json:"vocab_size"`
	MaxPositionEmbeddings int               `json:"max_position_embeddings"`
	RMSNormEps            float64           `json:"rms_norm_eps"`
	RopeTheta             float64           `json:"rope_theta"`
	RopeScaling           json.RawMessage   `json:"rope_scaling,omitempty"`
	TieWordEmbeddings     bool              `json:"tie_word_embeddings"`
	HiddenAct             string            `json:"hidden_act"`
	AttentionBias         bool              `json:"attention_bias"`
	MLPBias               bool              `json:"mlp_bias"`
	BOSTokenID            *int              `json:"bos_token_id,omitempty"`
	EOSTokenID            json.RawMessage   `json:"eos_token_id,omitempty"`
	PadTokenID            *int              `json:"pad_token_id,omitempty"`
	ID2Label              map[string]string `json:"id2label,omitempty"`
	TorchDtype            string            `json:"torch_dtype,omitempty"`

	// PartialRotaryFactor is partial_rotary_factor: the share of each
	// head's features the rotary embedding turns (Phi-3); nil when absent.
	PartialRotaryFactor *float64 `json:"partial_rotary_factor,omitempty"`
	// OriginalMaxPositionEmbeddings is the top-level
	// original_max_position_embeddings (Phi-3's pretraining context, which
	// longrope scaling reads); 0 when absent.
	OriginalMaxPositionEmbeddings int `json:"original_max_position_embeddings,omitempty"`

	// Options of the families built on this implementation (Qwen2,
	// Qwen3), set by their packages from their own config keys; Llama
	// leaves them zero.

	// ArchPrefix names the architecture classes ("Llama", "Qwen2"):
	// <prefix>ForCausalLM, <prefix>ForSequenceClassification.
	ArchPrefix string `json:"-"`
	// QKVBias: the q, k and v projections have biases, o_proj none (Qwen2).
	QKVBias bool `json:"-"`
	// QKNorm: each head's query and key features are RMS-normalised
	// (q_norm, k_norm over head_dim) before the rotary embedding (Qwen3).
	QKNorm bool `json:"-"`
	// SlidingWindow, when positive, limits attention to the SlidingWindow
	// latest keys, the query's own included (Mistral's and Phi-3's
	// sliding_window; see ops.AttentionWindow).
	SlidingWindow int `json:"-"`
	// Fused: one qkv_proj [q; k; v] replaces q_proj, k_proj and v_proj, and
	// one gate_up_proj [gate; up] replaces gate_proj and up_proj (Phi-3).
	Fused bool `json:"-"`
	// NormUnitOffset: every RMSNorm scales by (1 + weight) (Gemma).
	NormUnitOffset bool `json:"-"`
	// ScaleEmbeddings: token embeddings are multiplied by
	// sqrt(hidden_size), rounded to float32, the compute dtype (Gemma).
	ScaleEmbeddings bool `json:"-"`
	// Activation is the MLP's gate activation when it is not hidden_act's
	// silu: "gelu_pytorch_tanh" (Gemma). Empty means hidden_act.
	Activation string `json:"-"`
	// PartialRotary: partial_rotary_factor may be below 1, the rotary
	// embedding turning only the first int(head_dim*factor) features of
	// each head (Phi-3). Families whose attention rotates the whole head
	// refuse other values, as transformers cannot run them.
	PartialRotary bool `json:"-"`
	// Extra holds a family's own config.json keys (sliding_window,
	// hidden_activation, ...), written back by Map.
	Extra map[string]json.RawMessage `json:"-"`
	// Unknown holds the config.json keys that neither a field above nor a
	// family reads (dropouts, initializer_range, use_cache, ...). Map
	// writes them back as they were, so a merged or converted checkpoint
	// keeps them.
	Unknown map[string]json.RawMessage `json:"-"`
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

// ParseConfig decodes and validates a config.json document, applying
// Hugging Face's defaults.
func ParseConfig(data []byte) (*Config, error) {
	c, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Decode decodes a config.json document with LlamaConfig's defaults,
// without validating it: a family sets its options, then calls Validate.
func Decode(data []byte) (*Config, error) {
	c := &Config{RMSNormEps: 1e-6, RopeTheta: 10000, HiddenAct: "silu", MaxPositionEmbeddings: 2048}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("llama config: %w", err)
	}
	c.Unknown = model.UnknownKeys[Config](data)
	if c.BOSTokenID != nil && *c.BOSTokenID == 0 {
		c.ZeroIDs = append(c.ZeroIDs, "bos_token_id")
	}
	if c.PadTokenID != nil && *c.PadTokenID == 0 {
		c.ZeroIDs = append(c.ZeroIDs, "pad_token_id")
	}
	return c, nil
}

// Validate checks the config and fills in what follows from it
// (num_key_value_heads, head_dim).
func (c *Config) Validate() error {
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	switch {
	case c.HiddenSize <= 0 || c.IntermediateSize <= 0 || c.NumHiddenLayers <= 0 || c.NumAttentionHeads <= 0 || c.VocabSize <= 0:
		return fmt.Errorf("llama config: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads and vocab_size must be positive")
	case c.NumKeyValueHeads < 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return fmt.Errorf("llama config: num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	case c.HeadDim == 0 && c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("llama config: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.Activation == "" && c.HiddenAct != "silu":
		return fmt.Errorf("llama config: hidden_act %q not supported (only silu)", c.HiddenAct)
	case c.Activation != "" && c.Activation != "gelu_pytorch_tanh":
		return fmt.Errorf("llama config: MLP activation %q not supported", c.Activation)
	case c.SlidingWindow < 0:
		return fmt.Errorf("llama config: sliding_window %d is negative", c.SlidingWindow)
	}
	if c.HeadDim == 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("llama config: head_dim %d must be even for rotary embeddings", c.HeadDim)
	}
	if _, err := c.Rope(); err != nil {
		return fmt.Errorf("llama config: %w", err)
	}
	return nil
}

// IsClassifier reports whether the config describes a sequence classifier
// (LlamaForSequenceClassification, Qwen2ForSequenceClassification, ...).
func (c *Config) IsClassifier() bool {
	return len(c.Architectures) > 0 && strings.HasSuffix(c.Architectures[0], "ForSequenceClassification")
}

// Prefix returns the architecture class prefix ("Llama" by default).
func (c *Config) Prefix() string {
	if c.ArchPrefix == "" {
		return "Llama"
	}
	return c.ArchPrefix
}

// NumLabels returns the number of classes of a classifier (2 by default).
func (c *Config) NumLabels() int {
	if len(c.ID2Label) > 0 {
		return len(c.ID2Label)
	}
	return 2
}

// Map returns the config as a generic JSON object, the family's own keys
// (Extra) included.
func (c *Config) Map() map[string]any {
	b, _ := json.Marshal(c)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	model.SetUnknown(m, c.Unknown)
	if len(c.ID2Label) > 0 {
		// transformers derives num_labels from id2label and writes
		// label2id as its inverse: keep both in step with the labels.
		delete(m, "num_labels")
		l2i := map[string]any{}
		for id, label := range c.ID2Label {
			var n int
			if _, err := fmt.Sscan(id, &n); err == nil {
				l2i[label] = n
			}
		}
		m["label2id"] = l2i
	}
	for k, raw := range c.Extra {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			m[k] = v
		}
	}
	return m
}

// ParseSlidingWindow reads a config's sliding_window value: absent gives def,
// null gives 0 (no window), else a positive integer. It also returns the
// value to write back to config.json.
func ParseSlidingWindow(raw json.RawMessage, def int) (int, json.RawMessage, error) {
	if raw == nil {
		b, _ := json.Marshal(def)
		if def == 0 {
			b = []byte("null")
		}
		return def, b, nil
	}
	if string(raw) == "null" {
		return 0, raw, nil
	}
	var w int
	if err := json.Unmarshal(raw, &w); err != nil || w <= 0 {
		return 0, nil, fmt.Errorf("sliding_window %s is not a positive integer or null", raw)
	}
	return w, raw, nil
}
