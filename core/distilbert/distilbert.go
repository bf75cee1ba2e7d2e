// Package distilbert implements DistilBertForSequenceClassification (config
// model_type "distilbert") in spago, named as Hugging Face checkpoints are:
// BERT's embeddings without token types (package bert's), a post-norm
// encoder of q_lin/k_lin/v_lin/out_lin attention and ffn.lin1/lin2 with
// the configured activation, and the head pre_classifier + ReLU +
// classifier on the first token.
package distilbert

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

func init() {
	for _, v := range []any{&Model{}, &Backbone{}, &Transformer{}, &Block{}, &Attention{}, &FFN{}} {
		gob.Register(v)
	}
	model.RegisterNativeType[*Model]("distilbert")
	model.Register("distilbert", func(cfg []byte) (model.Model, error) {
		c, err := ParseConfig(cfg)
		if err != nil {
			return nil, err
		}
		return New(c), nil
	})
}

// LayerNormEps is the epsilon of every DistilBERT LayerNorm; Hugging Face
// hard-codes it (DistilBertConfig has no key for it).
const LayerNormEps = 1e-12

// Config mirrors the fields of a Hugging Face DistilBertConfig that affect
// the computation or identify the model. DistilBERT's own key names are
// kept (dim, n_layers, n_heads, hidden_dim) so that config.json round-trips.
type Config struct {
	Architectures         []string          `json:"architectures,omitempty"`
	ModelType             string            `json:"model_type"`
	VocabSize             int               `json:"vocab_size"`
	Dim                   int               `json:"dim"`
	NLayers               int               `json:"n_layers"`
	NHeads                int               `json:"n_heads"`
	HiddenDim             int               `json:"hidden_dim"`
	Activation            string            `json:"activation"`
	MaxPositionEmbeddings int               `json:"max_position_embeddings"`
	SinusoidalPosEmbds    bool              `json:"sinusoidal_pos_embds"`
	PadTokenID            int               `json:"pad_token_id"`
	ID2Label              map[string]string `json:"id2label,omitempty"`
	Label2ID              map[string]int    `json:"label2id,omitempty"`
	NumLabels             int               `json:"num_labels,omitempty"`
	TorchDtype            string            `json:"torch_dtype,omitempty"`
	// Unknown holds the config.json keys no field reads (dropouts,
	// initializer_range, ...), written back unchanged by HFConfig.
	Unknown map[string]json.RawMessage `json:"-"`
}

// ParseConfig decodes and validates a config.json document with
// DistilBertConfig's defaults (activation gelu, max_position_embeddings
// 512, pad 0). Sinusoidal position embeddings need nothing special: the
// table is stored in the checkpoint like a learned one.
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{Activation: "gelu", MaxPositionEmbeddings: 512}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("distilbert config: %w", err)
	}
	c.Unknown = model.UnknownKeys[Config](data)
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("distilbert config: %s: %s", key, fmt.Sprintf(format, args...))
	}
	for _, k := range []struct {
		key string
		v   int
	}{{"dim", c.Dim}, {"n_layers", c.NLayers}, {"n_heads", c.NHeads}, {"hidden_dim", c.HiddenDim},
		{"vocab_size", c.VocabSize}, {"max_position_embeddings", c.MaxPositionEmbeddings}} {
		if k.v <= 0 {
			return nil, bad(k.key, "must be positive, not %d", k.v)
		}
	}
	switch {
	case c.Dim%c.NHeads != 0:
		return nil, bad("dim", "%d is not a multiple of n_heads %d", c.Dim, c.NHeads)
	case c.Activation != "gelu" && c.Activation != "relu":
		return nil, bad("activation", "%q not supported (gelu or relu)", c.Activation)
	}
	if c.NumLabels == 0 {
		c.NumLabels = len(c.ID2Label)
	}
	if c.NumLabels == 0 {
		c.NumLabels = 2
	}
	return c, nil
}

// Model is DistilBertForSequenceClassification.
type Model struct {
	nn.Module
	Config        *Config
	DistilBert    *Backbone   `hf:"distilbert"`
	PreClassifier *layer.Slot `hf:"pre_classifier"`
	Classifier    *layer.Slot `hf:"classifier"`
}

// Backbone is DistilBertModel: embeddings and the transformer.
type Backbone struct {
	nn.Module
	// Embeddings are BERT's with no token-type table.
	Embeddings  *bert.Embeddings `hf:"embeddings"`
	Transformer *Transformer     `hf:"transformer"`
}

// Transformer is the list of encoder blocks.
type Transformer struct {
	nn.Module
	Layer []*Block `hf:"layer"`
}

// Block is one post-norm TransformerBlock.
type Block struct {
	nn.Module
	Attention       *Attention       `hf:"attention"`
	SALayerNorm     *layer.LayerNorm `hf:"sa_layer_norm"`
	FFN             *FFN             `hf:"ffn"`
	OutputLayerNorm *layer.LayerNorm `hf:"output_layer_norm"`
}

// Attention is MultiHeadSelfAttention: q/k/v projections and the output
// projection.
type Attention struct {
	nn.Module
	QLin   *layer.Slot `hf:"q_lin"`
	KLin   *layer.Slot `hf:"k_lin"`
	VLin   *layer.Slot `hf:"v_lin"`
	OutLin *layer.Slot `hf:"out_lin"`
}

// FFN is the feed-forward network lin2(act(lin1(x))).
type FFN struct {
	nn.Module
	Lin1 *layer.Slot `hf:"lin1"`
	Lin2 *layer.Slot `hf:"lin2"`
}

// New returns an untrained model of the given configuration.
func New(c *Config) *Model {
	lin := func(in, out int) *layer.Slot { return layer.NewSlot(layer.NewLinear(in, out, true)) }
	h := c.Dim
	m := &Model{
		Config: c,
		DistilBert: &Backbone{
			Embeddings: &bert.Embeddings{
				WordEmbeddings:     layer.NewEmbedding(c.VocabSize, h),
				PositionEmbeddings: layer.NewEmbedding(c.MaxPositionEmbeddings, h),
				LayerNorm:          layer.NewLayerNorm(h, LayerNormEps),
			},
			Transformer: &Transformer{},
		},
		PreClassifier: lin(h, h),
		Classifier:    lin(h, c.NumLabels),
	}
	for i := 0; i < c.NLayers; i++ {
		m.DistilBert.Transformer.Layer = append(m.DistilBert.Transformer.Layer, &Block{
			Attention:       &Attention{QLin: lin(h, h), KLin: lin(h, h), VLin: lin(h, h), OutLin: lin(h, h)},
			SALayerNorm:     layer.NewLayerNorm(h, LayerNormEps),
			FFN:             &FFN{Lin1: lin(h, c.HiddenDim), Lin2: lin(c.HiddenDim, h)},
			OutputLayerNorm: layer.NewLayerNorm(h, LayerNormEps),
		})
	}
	return m
}

// Task reports SequenceClassification.
func (m *Model) Task() model.Task { return model.SequenceClassification }

// ClassifierFor returns the model itself when its classifier has as many
// classes as labels; the head is part of the checkpoint, so another number
// of classes is an error.
func (m *Model) ClassifierFor(labels []string, _ uint64) (model.Model, error) {
	if m.Config.NumLabels != len(labels) {
		return nil, fmt.Errorf("the DistilBERT classifier has %d classes, not %d", m.Config.NumLabels, len(labels))
	}
	return m, nil
}

// HeadModules names the classification head: pre_classifier and
// classifier. PEFT's SEQ_CLS default modules_to_save is ["classifier",
// "score"], matched as a plain name suffix, so it wraps
// "pre_classifier" too and a PEFT adapter saves both.
func (m *Model) HeadModules() []string { return []string{"pre_classifier", "classifier"} }

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

// Forward runs the block on hidden states x [tokens, dim] laid out as lay
// (padding keys masked), with heads attention heads and the activation
// act ("gelu" or "relu").
func (b *Block) Forward(x mat.Tensor, lay ops.Layout, heads int, act string) mat.Tensor {
	a := b.Attention
	att := ops.Attention(a.QLin.Forward(x), a.KLin.Forward(x), a.VLin.Forward(x), lay, heads, heads, false)
	x = b.SALayerNorm.Forward(ops.Add(a.OutLin.Forward(att), x))
	f := b.FFN.Lin1.Forward(x)
	if act == "relu" {
		f = ops.ReLU(f)
	} else {
		f = ops.GELU(f)
	}
	return b.OutputLayerNorm.Forward(ops.Add(b.FFN.Lin2.Forward(f), x))
}

// Hidden returns the last block's hidden states [Batch*Len, dim].
func (m *Model) Hidden(b model.Batch) (mat.Tensor, error) {
	c := m.Config
	lay := b.Layout()
	if lay.Len > c.MaxPositionEmbeddings {
		return nil, fmt.Errorf("distilbert: %d tokens exceed max_position_embeddings %d", lay.Len, c.MaxPositionEmbeddings)
	}
	pos := make([]int, lay.Batch*lay.Len)
	for i := range pos {
		pos[i] = i % lay.Len
	}
	x := m.DistilBert.Embeddings.Forward(b.Flat(), pos, nil)
	for i, l := range m.DistilBert.Transformer.Layer {
		x = ops.Block(i, x, func(x mat.Tensor) mat.Tensor { return l.Forward(x, lay, c.NHeads, c.Activation) })
	}
	return x, nil
}

// Logits returns class logits [Batch, labels]:
// classifier(relu(pre_classifier(h))) of the first token ([CLS]).
func (m *Model) Logits(b model.Batch) (mat.Tensor, error) {
	if err := b.Validate(m.Config.VocabSize); err != nil {
		return nil, fmt.Errorf("distilbert: %w", err)
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
	x := ops.ReLU(m.PreClassifier.Forward(ops.SelectRows(h, first)))
	return m.Classifier.Forward(x), nil
}
