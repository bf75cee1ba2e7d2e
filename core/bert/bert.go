// Package bert implements BertForSequenceClassification in spago,
// configured from a Hugging Face config.json and named as Hugging Face
// checkpoints are: embeddings with LayerNorm, a post-norm encoder with exact
// GELU, the tanh pooler and a linear classifier.
package bert

import (
	"encoding/gob"
	"encoding/json"
	"fmt"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

var _ model.Model = (*Model)(nil)

func init() {
	for _, v := range []any{&Model{}, &Encoder{}, &Embeddings{}, &Stack{}, &Layer{}, &AttentionBlock{}, &SelfAttention{}, &DenseNorm{}, &Dense{}} {
		gob.Register(v)
	}
	model.RegisterNativeType[*Model]("bert")
	model.Register("bert", func(cfg []byte) (model.Model, error) {
		c, err := ParseConfig(cfg)
		if err != nil {
			return nil, err
		}
		return New(c), nil
	})
}

// Config mirrors the fields of a Hugging Face BertConfig that affect the
// computation.
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
	ID2Label              map[string]string `json:"id2label,omitempty"`
	Label2ID              map[string]int    `json:"label2id,omitempty"`
	NumLabels             int               `json:"num_labels,omitempty"`
	TorchDtype            string            `json:"torch_dtype,omitempty"`
	// Unknown holds the config.json keys no field reads (dropouts,
	// initializer_range, ...), written back unchanged by HFConfig.
	Unknown map[string]json.RawMessage `json:"-"`
}

// ParseConfig decodes and validates a config.json document.
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{HiddenAct: "gelu", LayerNormEps: 1e-12, TypeVocabSize: 2, MaxPositionEmbeddings: 512}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("bert config: %w", err)
	}
	c.Unknown = model.UnknownKeys[Config](data)
	switch {
	case c.HiddenSize <= 0 || c.NumHiddenLayers <= 0 || c.NumAttentionHeads <= 0 || c.IntermediateSize <= 0 || c.VocabSize <= 0:
		return nil, fmt.Errorf("bert config: hidden_size, num_hidden_layers, num_attention_heads, intermediate_size and vocab_size must be positive")
	case c.HiddenSize%c.NumAttentionHeads != 0:
		return nil, fmt.Errorf("bert config: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.HiddenAct != "gelu":
		return nil, fmt.Errorf("bert config: hidden_act %q not supported (only exact gelu)", c.HiddenAct)
	case c.TypeVocabSize <= 0 || c.MaxPositionEmbeddings <= 0:
		return nil, fmt.Errorf("bert config: type_vocab_size and max_position_embeddings must be positive")
	}
	if c.NumLabels == 0 {
		c.NumLabels = len(c.ID2Label)
	}
	if c.NumLabels == 0 {
		c.NumLabels = 2
	}
	return c, nil
}

// Model is BertForSequenceClassification.
type Model struct {
	nn.Module
	Config     *Config
	Bert       *Encoder    `hf:"bert"`
	Classifier *layer.Slot `hf:"classifier"`
}

// Encoder is BertModel: embeddings, the layer stack and the pooler.
type Encoder struct {
	nn.Module
	Embeddings *Embeddings `hf:"embeddings"`
	Encoder    *Stack      `hf:"encoder"`
	Pooler     *Dense      `hf:"pooler"`
}

// Embeddings sums word, position and token-type embeddings, then normalises.
type Embeddings struct {
	nn.Module
	WordEmbeddings      *layer.Embedding `hf:"word_embeddings"`
	PositionEmbeddings  *layer.Embedding `hf:"position_embeddings"`
	TokenTypeEmbeddings *layer.Embedding `hf:"token_type_embeddings"`
	LayerNorm           *layer.LayerNorm `hf:"LayerNorm"`
}

// Stack is the list of encoder layers.
type Stack struct {
	nn.Module
	Layer []*Layer `hf:"layer"`
}

// Layer is one post-norm transformer encoder layer.
type Layer struct {
	nn.Module
	Attention    *AttentionBlock `hf:"attention"`
	Intermediate *Dense          `hf:"intermediate"`
	Output       *DenseNorm      `hf:"output"`
}

// AttentionBlock is self-attention followed by its output projection.
type AttentionBlock struct {
	nn.Module
	Self   *SelfAttention `hf:"self"`
	Output *DenseNorm     `hf:"output"`
}

// SelfAttention holds the query, key and value projections.
type SelfAttention struct {
	nn.Module
	Query *layer.Slot `hf:"query"`
	Key   *layer.Slot `hf:"key"`
	Value *layer.Slot `hf:"value"`
}

// DenseNorm is a projection followed by residual addition and LayerNorm.
type DenseNorm struct {
	nn.Module
	Dense     *layer.Slot      `hf:"dense"`
	LayerNorm *layer.LayerNorm `hf:"LayerNorm"`
}

// Dense wraps one projection (the intermediate layer and the pooler).
type Dense struct {
	nn.Module
	Dense *layer.Slot `hf:"dense"`
}

// New returns an untrained model of the given configuration.
func New(c *Config) *Model {
	eps := float32(c.LayerNormEps)
	lin := func(in, out int) *layer.Slot { return layer.NewSlot(layer.NewLinear(in, out, true)) }
	h := c.HiddenSize
	m := &Model{Config: c, Bert: &Encoder{
		Embeddings: &Embeddings{
			WordEmbeddings:      layer.NewEmbedding(c.VocabSize, h),
			PositionEmbeddings:  layer.NewEmbedding(c.MaxPositionEmbeddings, h),
			TokenTypeEmbeddings: layer.NewEmbedding(c.TypeVocabSize, h),
			LayerNorm:           layer.NewLayerNorm(h, eps),
		},
		Encoder: &Stack{},
		Pooler:  &Dense{Dense: lin(h, h)},
	}, Classifier: lin(h, c.NumLabels)}
	for i := 0; i < c.NumHiddenLayers; i++ {
		m.Bert.Encoder.Layer = append(m.Bert.Encoder.Layer, &Layer{
			Attention: &AttentionBlock{
				Self:   &SelfAttention{Query: lin(h, h), Key: lin(h, h), Value: lin(h, h)},
				Output: &DenseNorm{Dense: lin(h, h), LayerNorm: layer.NewLayerNorm(h, eps)},
			},
			Intermediate: &Dense{Dense: lin(h, c.IntermediateSize)},
			Output:       &DenseNorm{Dense: lin(c.IntermediateSize, h), LayerNorm: layer.NewLayerNorm(h, eps)},
		})
	}
	return m
}

// Task reports SequenceClassification.
func (m *Model) Task() model.Task { return model.SequenceClassification }

var _ model.Classifier = (*Model)(nil)

// ClassifierFor returns the model itself when its classifier has as many
// classes as labels; a BERT checkpoint's head is part of the checkpoint,
// so another number of classes is an error.
func (m *Model) ClassifierFor(labels []string, _ uint64) (model.Model, error) {
	if m.Config.NumLabels != len(labels) {
		return nil, fmt.Errorf("the BERT classifier has %d classes, not %d", m.Config.NumLabels, len(labels))
	}
	return m, nil
}

// HeadModules names the classification head: classifier.
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

// Hidden returns the last encoder layer's hidden states [Batch*Len, hidden].
func (m *Model) Hidden(b model.Batch) (mat.Tensor, error) {
	c := m.Config
	lay := b.Layout()
	if lay.Len > c.MaxPositionEmbeddings {
		return nil, fmt.Errorf("bert: %d tokens exceed max_position_embeddings %d", lay.Len, c.MaxPositionEmbeddings)
	}
	pos := make([]int, lay.Batch*lay.Len)
	for i := range pos {
		pos[i] = i % lay.Len
	}
	x := m.Bert.Embeddings.Forward(b.Flat(), pos, make([]int, len(pos)))
	for i, l := range m.Bert.Encoder.Layer {
		x = ops.Block(i, x, func(x mat.Tensor) mat.Tensor { return l.Forward(x, lay, c.NumAttentionHeads) })
	}
	return x, nil
}

// Forward returns LayerNorm(word + position + token type embeddings) for
// tokens ids at positions pos with token types types (one per token,
// [tokens, hidden]). A nil TokenTypeEmbeddings table (DistilBERT has
// none) adds nothing, and types may then be nil.
func (e *Embeddings) Forward(ids, pos, types []int) mat.Tensor {
	x := ops.Add(e.WordEmbeddings.Forward(ids), e.PositionEmbeddings.Forward(pos))
	if e.TokenTypeEmbeddings != nil {
		x = ops.Add(x, e.TokenTypeEmbeddings.Forward(types))
	}
	return e.LayerNorm.Forward(x)
}

// Forward runs the layer on hidden states x [tokens, hidden] laid out as
// lay (padding keys masked): post-norm self-attention over heads heads,
// then the exact-GELU feed-forward block.
func (l *Layer) Forward(x mat.Tensor, lay ops.Layout, heads int) mat.Tensor {
	s := l.Attention.Self
	att := ops.Attention(s.Query.Forward(x), s.Key.Forward(x), s.Value.Forward(x), lay, heads, heads, false)
	o := l.Attention.Output
	x = o.LayerNorm.Forward(ops.Add(x, o.Dense.Forward(att)))
	f := ops.GELU(l.Intermediate.Dense.Forward(x))
	return l.Output.LayerNorm.Forward(ops.Add(x, l.Output.Dense.Forward(f)))
}

// Logits returns class logits [Batch, labels] from the pooled first token.
func (m *Model) Logits(b model.Batch) (mat.Tensor, error) {
	if err := b.Validate(m.Config.VocabSize); err != nil {
		return nil, fmt.Errorf("bert: %w", err)
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
	pooled := ops.Tanh(m.Bert.Pooler.Dense.Forward(ops.SelectRows(h, first)))
	return m.Classifier.Forward(pooled), nil
}
