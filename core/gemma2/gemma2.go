package gemma2

import (
	"encoding/gob"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

var (
	_ model.Model      = (*Model)(nil)
	_ model.Classifier = (*Model)(nil)
)

func init() {
	gob.Register(&Model{})
	gob.Register(&Backbone{})
	gob.Register(&Decoder{})
	model.RegisterNativeType[*Model]("gemma2")
	model.Register("gemma2", func(cfg []byte) (model.Model, error) {
		c, err := ParseConfig(cfg)
		if err != nil {
			return nil, err
		}
		return New(c), nil
	})
}

// Model is Gemma2ForCausalLM, or Gemma2ForSequenceClassification when
// Score is set.
type Model struct {
	nn.Module
	Config *Config
	Base   *Backbone   `hf:"model"`
	LMHead *layer.Slot `hf:"lm_head"` // nil when tied to the embeddings or for a classifier
	Score  *layer.Slot `hf:"score"`   // classifier head, nil for a causal LM
}

// Backbone is Gemma2Model: embeddings, decoder layers and the final norm.
type Backbone struct {
	nn.Module
	EmbedTokens *layer.Embedding `hf:"embed_tokens"`
	Layers      []*Decoder       `hf:"layers"`
	Norm        *layer.RMSNorm   `hf:"norm"`
}

// Decoder is one Gemma2DecoderLayer: Llama's attention and gated MLP,
// each with a norm before it and one on its output.
type Decoder struct {
	nn.Module
	InputLayernorm           *layer.RMSNorm   `hf:"input_layernorm"`
	SelfAttn                 *llama.Attention `hf:"self_attn"`
	PostAttentionLayernorm   *layer.RMSNorm   `hf:"post_attention_layernorm"`
	PreFeedforwardLayernorm  *layer.RMSNorm   `hf:"pre_feedforward_layernorm"`
	MLP                      *llama.MLP       `hf:"mlp"`
	PostFeedforwardLayernorm *layer.RMSNorm   `hf:"post_feedforward_layernorm"`
}

// New returns an untrained model of the given configuration, its norms
// the identity (weight 0, scale 1 + 0).
func New(c *Config) *Model {
	eps := float32(c.RMSNormEps)
	d, kv := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	lin := func(in, out int, bias bool) *layer.Slot { return layer.NewSlot(layer.NewLinear(in, out, bias)) }
	norm := func(n int) *layer.RMSNorm {
		l := layer.NewRMSNorm(n, eps)
		clear(ops.Data(l.Weight))
		return l
	}
	m := &Model{Config: c, Base: &Backbone{
		EmbedTokens: layer.NewEmbedding(c.VocabSize, c.HiddenSize),
		Norm:        norm(c.HiddenSize),
	}}
	b := c.AttentionBias
	for range c.NumHiddenLayers {
		m.Base.Layers = append(m.Base.Layers, &Decoder{
			InputLayernorm: norm(c.HiddenSize),
			SelfAttn: &llama.Attention{
				QProj: lin(c.HiddenSize, d, b),
				KProj: lin(c.HiddenSize, kv, b),
				VProj: lin(c.HiddenSize, kv, b),
				OProj: lin(d, c.HiddenSize, b),
			},
			PostAttentionLayernorm:  norm(c.HiddenSize),
			PreFeedforwardLayernorm: norm(c.HiddenSize),
			MLP: &llama.MLP{
				GateProj: lin(c.HiddenSize, c.IntermediateSize, false),
				UpProj:   lin(c.HiddenSize, c.IntermediateSize, false),
				DownProj: lin(c.IntermediateSize, c.HiddenSize, false),
			},
			PostFeedforwardLayernorm: norm(c.HiddenSize),
		})
	}
	switch {
	case c.IsClassifier():
		m.Score = lin(c.HiddenSize, c.NumLabels(), false)
	case !c.TieWordEmbeddings:
		m.LMHead = lin(c.HiddenSize, c.VocabSize, false)
	}
	return m
}

// Task reports CausalLM or SequenceClassification.
func (m *Model) Task() model.Task {
	if m.Score != nil {
		return model.SequenceClassification
	}
	return model.CausalLM
}

// HFConfig returns the config.json object.
func (m *Model) HFConfig() map[string]any { return m.Config.Map() }

// VocabSize returns the vocabulary size.
func (m *Model) VocabSize() int { return m.Config.VocabSize }

// Hidden returns the final normalised hidden states [Batch*Len, hidden].
func (m *Model) Hidden(b model.Batch) mat.Tensor {
	c := m.Config
	lay := b.Layout()
	return m.hidden(b.Flat(), lay.Positions(), llama.SeqLen(lay), func(i int, q, k, v mat.Tensor) mat.Tensor {
		return ops.AttentionWith(q, k, v, lay, c.NumAttentionHeads, c.NumKeyValueHeads, m.attnOptions(i))
	})
}

// attnOptions returns layer i's attention options: its window, Gemma 2's
// score scale and soft-capping.
func (m *Model) attnOptions(i int) ops.AttentionOptions {
	c := m.Config
	return ops.AttentionOptions{
		Window:  c.LayerWindow(i),
		Scale:   c.AttnScale(),
		Softcap: float32(c.AttnLogitSoftcapping),
	}
}

// hidden runs the embeddings of ids at positions pos through the decoder
// layers and the final norm, with the rotary frequencies of a sequence of
// seqLen tokens (llama.Rope); attend(i, q, k, v) is layer i's attention
// over the rotated queries and keys (over a batch layout, or a key/value
// cache when decoding).
func (m *Model) hidden(ids, pos []int, seqLen int, attend func(i int, q, k, v mat.Tensor) mat.Tensor) mat.Tensor {
	c := m.Config
	inv, attn := llama.RopeFrequencies(&c.Config, seqLen)
	h := ops.Scale(m.Base.EmbedTokens.Forward(ids), float32(math.Sqrt(float64(c.HiddenSize))))
	for i, l := range m.Base.Layers {
		h = ops.Block(i, h, func(h mat.Tensor) mat.Tensor {
			x := norm(l.InputLayernorm, h)
			a := l.SelfAttn
			q := ops.RotaryFreqs(a.QProj.Forward(x), pos, c.NumAttentionHeads, inv, attn)
			k := ops.RotaryFreqs(a.KProj.Forward(x), pos, c.NumKeyValueHeads, inv, attn)
			att := attend(i, q, k, a.VProj.Forward(x))
			h = ops.Add(h, norm(l.PostAttentionLayernorm, a.OProj.Forward(att)))
			x = norm(l.PreFeedforwardLayernorm, h)
			f := l.MLP
			y := f.DownProj.Forward(ops.GELUTanhGate(f.GateProj.Forward(x), f.UpProj.Forward(x)))
			h = ops.Add(h, norm(l.PostFeedforwardLayernorm, y))
			return h
		})
	}
	return norm(m.Base.Norm, h)
}

// norm applies Gemma's RMSNorm, x * rsqrt(mean(x^2) + eps) * (1 + w), in
// float32.
func norm(n *layer.RMSNorm, x mat.Tensor) mat.Tensor {
	return ops.RMSNorm(x, ops.Binary(ops.AddOp, n.Weight, ops.New(1, 1, []float32{1})), n.Eps)
}

// Logits returns next-token logits [Batch*Len, vocab], soft-capped by
// final_logit_softcapping, for a causal LM, or class logits [Batch,
// labels] read at each sequence's last token that is not the pad id
// (llama.LastTokens) for a classifier.
func (m *Model) Logits(b model.Batch) (mat.Tensor, error) {
	if err := b.Validate(m.Config.VocabSize); err != nil {
		return nil, fmt.Errorf("gemma2: %w", err)
	}
	h := m.Hidden(b)
	if m.Score != nil {
		return m.Score.Forward(ops.SelectRows(h, llama.LastTokens(b, m.Config.PadTokenID))), nil
	}
	return m.lmLogits(h), nil
}

// lmLogits returns the next-token logits of hidden states h, soft-capped
// by final_logit_softcapping.
func (m *Model) lmLogits(h mat.Tensor) mat.Tensor {
	var y mat.Tensor
	if m.LMHead != nil {
		y = m.LMHead.Forward(h)
	} else {
		y = m.Base.EmbedTokens.Project(h)
	}
	if c := float32(m.Config.FinalLogitSoftcapping); c > 0 {
		y = ops.Scale(ops.Tanh(ops.Scale(y, 1/c)), c)
	}
	return y
}

// ClassifierFor returns the model as Gemma2ForSequenceClassification over
// labels: itself when its score head already has that many classes, else
// the backbone with a new head (AsClassifier).
func (m *Model) ClassifierFor(labels []string, seed uint64) (model.Model, error) {
	if len(labels) == 0 {
		return nil, fmt.Errorf("gemma2: a classifier needs at least one label")
	}
	if m.Score != nil && m.Config.NumLabels() == len(labels) {
		return m, nil
	}
	return m.AsClassifier(labels, seed), nil
}

// HeadModules names the classification head: score.
func (m *Model) HeadModules() []string { return []string{"score"} }

// AsClassifier turns a causal LM into Gemma2ForSequenceClassification
// with labels classes, sharing the backbone's parameters. The new score
// head is initialised from N(0, 0.02^2) (transformers' initializer_range)
// with seed.
func (m *Model) AsClassifier(labels []string, seed uint64) *Model {
	c := *m.Config
	c.Architectures = []string{c.Prefix() + "ForSequenceClassification"}
	c.ID2Label = map[string]string{}
	for i, l := range labels {
		c.ID2Label[fmt.Sprint(i)] = l
	}
	score := layer.NewLinear(c.HiddenSize, len(labels), false)
	r := rand.New(rand.NewPCG(seed, 0x5c0e))
	for i := range ops.Data(score.Weight) {
		ops.Data(score.Weight)[i] = float32(r.NormFloat64() * 0.02)
	}
	return &Model{Config: &c, Base: m.Base, Score: layer.NewSlot(score)}
}
