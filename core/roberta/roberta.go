// Package roberta implements RobertaForSequenceClassification and
// XLMRobertaForSequenceClassification (config model_type "roberta" and
// "xlm-roberta") in spago, named as Hugging Face checkpoints are. The
// encoder is BERT's (package bert's embeddings and layers under
// "roberta."), with position ids counted from padding_idx + 1 over the
// non-padding tokens, and the head is classifier.dense + tanh +
// classifier.out_proj on the first token (no pooler).
package roberta

import (
	"encoding/gob"
	"encoding/json"
	"fmt"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/surgeon-ml/surgeon/core/bert"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

var (
	_ model.Model      = (*Model)(nil)
	_ model.Classifier = (*Model)(nil)
)

// ModelTypes are the config.json model_type values this package builds.
var ModelTypes = []string{"roberta", "xlm-roberta"}

func init() {
	gob.Register(&Model{})
	gob.Register(&Head{})
	model.RegisterNativeType[*Model]("roberta")
	for _, t := range ModelTypes {
		model.Register(t, func(cfg []byte) (model.Model, error) {
			c, err := ParseConfig(cfg)
			if err != nil {
				return nil, err
			}
			return New(c), nil
		})
	}
}

// Config mirrors the fields of a Hugging Face RobertaConfig (and
// XLMRobertaConfig) that affect the computation or identify the model.
type Config struct {
	Architectures         []string          `json:"architectures,omitempty"`
	ModelType             string            `json:"model_type"`
	VocabSize             int               `json:"vocab_size"`
	HiddenSize            int               `json:"hidden_size"`
	NumHiddenLayers       int               `json:"num_hidden_layers"`
	NumAttentionHeads     int               `json:"num_attention_heads"`
	IntermediateSize      int               `json:"intermediate_size"`
	HiddenAct             string            `json:"hidden_act"`
	MaxPositionEmbeddings int               `json:"max_position_embeddings"`
	TypeVocabSize         int               `json:"type_vocab_size"`
	LayerNormEps          float64           `json:"layer_norm_eps"`
	PadTokenID            int               `json:"pad_token_id"`
	BOSTokenID            int               `json:"bos_token_id"`
	EOSTokenID            int               `json:"eos_token_id"`
	PositionEmbeddingType string            `json:"position_embedding_type,omitempty"`
	ID2Label              map[string]string `json:"id2label,omitempty"`
	Label2ID              map[string]int    `json:"label2id,omitempty"`
	NumLabels             int               `json:"num_labels,omitempty"`
	TorchDtype            string            `json:"torch_dtype,omitempty"`
	// Unknown holds the config.json keys no field reads (dropouts,
	// initializer_range, ...), written back unchanged by HFConfig.
	Unknown map[string]json.RawMessage `json:"-"`
}

// ParseConfig decodes and validates a config.json document with
// RobertaConfig's defaults (pad 1, bos 0, eos 2, type_vocab_size 2,
// layer_norm_eps 1e-12, max_position_embeddings 512; released
// checkpoints set 514, 1 and 1e-5).
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{HiddenAct: "gelu", LayerNormEps: 1e-12, TypeVocabSize: 2, MaxPositionEmbeddings: 512,
		PadTokenID: 1, BOSTokenID: 0, EOSTokenID: 2, PositionEmbeddingType: "absolute"}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("roberta config: %w", err)
	}
	c.Unknown = model.UnknownKeys[Config](data)
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("roberta config: %s: %s", key, fmt.Sprintf(format, args...))
	}
	for _, k := range []struct {
		key string
		v   int
	}{{"hidden_size", c.HiddenSize}, {"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads},
		{"intermediate_size", c.IntermediateSize}, {"vocab_size", c.VocabSize}, {"type_vocab_size", c.TypeVocabSize}} {
		if k.v <= 0 {
			return nil, bad(k.key, "must be positive, not %d", k.v)
		}
	}
	switch {
	case c.HiddenSize%c.NumAttentionHeads != 0:
		return nil, bad("hidden_size", "%d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.HiddenAct != "gelu":
		return nil, bad("hidden_act", "%q not supported (only exact gelu)", c.HiddenAct)
	case c.PositionEmbeddingType != "absolute":
		return nil, bad("position_embedding_type", "%q not supported (only absolute)", c.PositionEmbeddingType)
	case c.PadTokenID < 0 || c.PadTokenID >= c.VocabSize:
		return nil, bad("pad_token_id", "%d outside the vocabulary [0,%d)", c.PadTokenID, c.VocabSize)
	case c.MaxPositionEmbeddings <= c.PadTokenID+1:
		return nil, bad("max_position_embeddings", "%d leaves no position after padding_idx %d", c.MaxPositionEmbeddings, c.PadTokenID)
	}
	if c.NumLabels == 0 {
		c.NumLabels = len(c.ID2Label)
	}
	if c.NumLabels == 0 {
		c.NumLabels = 2
	}
	return c, nil
}

// Model is RobertaForSequenceClassification (or its XLM-RoBERTa twin,
// which has the same modules).
type Model struct {
	nn.Module
	Config     *Config
	Roberta    *bert.Encoder `hf:"roberta"`
	Classifier *Head         `hf:"classifier"`
}

// Head is RobertaClassificationHead: out_proj(tanh(dense(x))) on the
// first token's hidden state.
type Head struct {
	nn.Module
	Dense   *layer.Slot `hf:"dense"`
	OutProj *layer.Slot `hf:"out_proj"`
}

// New returns an untrained model of the given configuration. Its encoder
// is package bert's without the pooler, which RobertaForSequenceClassification
// does not have.
func New(c *Config) *Model {
	eps := float32(c.LayerNormEps)
	lin := func(in, out int) *layer.Slot { return layer.NewSlot(layer.NewLinear(in, out, true)) }
	h := c.HiddenSize
	m := &Model{Config: c, Roberta: &bert.Encoder{
		Embeddings: &bert.Embeddings{
			WordEmbeddings:      layer.NewEmbedding(c.VocabSize, h),
			PositionEmbeddings:  layer.NewEmbedding(c.MaxPositionEmbeddings, h),
			TokenTypeEmbeddings: layer.NewEmbedding(c.TypeVocabSize, h),
			LayerNorm:           layer.NewLayerNorm(h, eps),
		},
		Encoder: &bert.Stack{},
	}, Classifier: &Head{Dense: lin(h, h), OutProj: lin(h, c.NumLabels)}}
	for i := 0; i < c.NumHiddenLayers; i++ {
		m.Roberta.Encoder.Layer = append(m.Roberta.Encoder.Layer, &bert.Layer{
			Attention: &bert.AttentionBlock{
				Self:   &bert.SelfAttention{Query: lin(h, h), Key: lin(h, h), Value: lin(h, h)},
				Output: &bert.DenseNorm{Dense: lin(h, h), LayerNorm: layer.NewLayerNorm(h, eps)},
			},
			Intermediate: &bert.Dense{Dense: lin(h, c.IntermediateSize)},
			Output:       &bert.DenseNorm{Dense: lin(c.IntermediateSize, h), LayerNorm: layer.NewLayerNorm(h, eps)},
		})
	}
	return m
}

// Task reports SequenceClassification.
func (m *Model) Task() model.Task { return model.SequenceClassification }

// ClassifierFor returns the model itself when its head has as many classes
// as labels; the head is part of the checkpoint, so another number of
// classes is an error.
func (m *Model) ClassifierFor(labels []string, _ uint64) (model.Model, error) {
	if m.Config.NumLabels != len(labels) {
		return nil, fmt.Errorf("the %s classifier has %d classes, not %d", m.Config.ModelType, m.Config.NumLabels, len(labels))
	}
	return m, nil
}

// HeadModules names the classification head: classifier (dense and
// out_proj), as PEFT's SEQ_CLS default modules_to_save ["classifier",
// "score"] wraps it.
func (m *Model) HeadModules() []string { return []string{"classifier"} }

// VocabSize returns the vocabulary size.
func (m *Model) VocabSize() int { return m.Config.VocabSize }

// HFConfig returns the config.json object.
func (m *Model) HFConfig() map[string]any {
	b, _ := json.Marshal(m.Config)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	model.SetUnknown(out, m.Config.Unknown)
	return out
}

// Positions returns the position ids of a batch as Hugging Face's
// create_position_ids_from_input_ids does: a token equal to pad gets pad,
// every other token pad + 1 + the number of non-pad tokens before it in
// its row. The mask plays no part, as in Hugging Face.
func Positions(ids [][]int, pad int) []int {
	var out []int
	for _, row := range ids {
		n := 0
		for _, id := range row {
			if id == pad {
				out = append(out, pad)
				continue
			}
			n++
			out = append(out, pad+n)
		}
	}
	return out
}

// Hidden returns the last encoder layer's hidden states [Batch*Len, hidden].
func (m *Model) Hidden(b model.Batch) (mat.Tensor, error) {
	c := m.Config
	lay := b.Layout()
	pos := Positions(b.IDs, c.PadTokenID)
	for _, p := range pos {
		if p >= c.MaxPositionEmbeddings {
			return nil, fmt.Errorf("%s: %d tokens need position %d, beyond max_position_embeddings %d (padding_idx %d)",
				c.ModelType, lay.Len, p, c.MaxPositionEmbeddings, c.PadTokenID)
		}
	}
	x := m.Roberta.Embeddings.Forward(b.Flat(), pos, make([]int, len(pos)))
	for i, l := range m.Roberta.Encoder.Layer {
		x = ops.Block(i, x, func(x mat.Tensor) mat.Tensor { return l.Forward(x, lay, c.NumAttentionHeads) })
	}
	return x, nil
}

// Logits returns class logits [Batch, labels] from the first token (<s>).
func (m *Model) Logits(b model.Batch) (mat.Tensor, error) {
	if err := b.Validate(m.Config.VocabSize); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Config.ModelType, err)
	}
	h, err := m.Hidden(b)
	if err != nil {
		return nil, err
	}
	lay := b.Layout()
	first := make([]int, lay.Batch)
	for i := range first {
		first[i] = i * lay.Len
	}
	x := ops.Tanh(m.Classifier.Dense.Forward(ops.SelectRows(h, first)))
	return m.Classifier.OutProj.Forward(x), nil
}
