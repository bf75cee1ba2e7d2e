package llama

import (
	"encoding/gob"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

var _ model.Model = (*Model)(nil)

func init() {
	gob.Register(&Model{})
	gob.Register(&Backbone{})
	gob.Register(&Decoder{})
	gob.Register(&Attention{})
	gob.Register(&MLP{})
	model.RegisterNativeType[*Model]("llama")
	model.Register("llama", func(cfg []byte) (model.Model, error) {
		c, err := ParseConfig(cfg)
		if err != nil {
			return nil, err
		}
		return New(c), nil
	})
}

// Model is LlamaForCausalLM, or LlamaForSequenceClassification when Score
// is set.
type Model struct {
	nn.Module
	Config *Config
	Base   *Backbone   `hf:"model"`
	LMHead *layer.Slot `hf:"lm_head"` // nil when tied to the embeddings or for a classifier
	Score  *layer.Slot `hf:"score"`   // classifier head, nil for a causal LM
}

// Backbone is LlamaModel: embeddings, decoder layers and the final norm.
type Backbone struct {
	nn.Module
	EmbedTokens *layer.Embedding `hf:"embed_tokens"`
	Layers      []*Decoder       `hf:"layers"`
	Norm        *layer.RMSNorm   `hf:"norm"`
}

// Decoder is one LlamaDecoderLayer.
type Decoder struct {
	nn.Module
	InputLayernorm         *layer.RMSNorm `hf:"input_layernorm"`
	SelfAttn               *Attention     `hf:"self_attn"`
	PostAttentionLayernorm *layer.RMSNorm `hf:"post_attention_layernorm"`
	MLP                    *MLP           `hf:"mlp"`
}

// Attention is grouped-query self-attention with rotary embeddings.
type Attention struct {
	nn.Module
	QProj *layer.Slot `hf:"q_proj"`
	KProj *layer.Slot `hf:"k_proj"`
	VProj *layer.Slot `hf:"v_proj"`
	// QKVProj replaces QProj, KProj and VProj when they are fused into one
	// [q; k; v] projection (Phi-3); nil otherwise.
	QKVProj *layer.Slot `hf:"qkv_proj"`
	OProj   *layer.Slot `hf:"o_proj"`
	// QNorm and KNorm normalise each head (Qwen3); nil otherwise.
	QNorm *layer.RMSNorm `hf:"q_norm"`
	KNorm *layer.RMSNorm `hf:"k_norm"`
}

// MLP is the gated feed-forward block: down(act(gate(x)) * up(x)), act
// silu (SwiGLU) or GELU-tanh (Gemma).
type MLP struct {
	nn.Module
	GateProj *layer.Slot `hf:"gate_proj"`
	UpProj   *layer.Slot `hf:"up_proj"`
	// GateUpProj replaces GateProj and UpProj when they are fused into one
	// [gate; up] projection (Phi-3); nil otherwise.
	GateUpProj *layer.Slot `hf:"gate_up_proj"`
	DownProj   *layer.Slot `hf:"down_proj"`
}

// New returns an untrained model of the given configuration.
func New(c *Config) *Model {
	eps := float32(c.RMSNormEps)
	d, kv := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	lin := func(in, out int, bias bool) *layer.Slot { return layer.NewSlot(layer.NewLinear(in, out, bias)) }
	m := &Model{Config: c, Base: &Backbone{
		EmbedTokens: layer.NewEmbedding(c.VocabSize, c.HiddenSize),
		Norm:        layer.NewRMSNorm(c.HiddenSize, eps),
	}}
	qkvBias := c.AttentionBias || c.QKVBias
	for i := 0; i < c.NumHiddenLayers; i++ {
		att := &Attention{OProj: lin(d, c.HiddenSize, c.AttentionBias)}
		mlp := &MLP{DownProj: lin(c.IntermediateSize, c.HiddenSize, c.MLPBias)}
		if c.Fused {
			att.QKVProj = lin(c.HiddenSize, d+2*kv, qkvBias)
			mlp.GateUpProj = lin(c.HiddenSize, 2*c.IntermediateSize, c.MLPBias)
		} else {
			att.QProj = lin(c.HiddenSize, d, qkvBias)
			att.KProj = lin(c.HiddenSize, kv, qkvBias)
			att.VProj = lin(c.HiddenSize, kv, qkvBias)
			mlp.GateProj = lin(c.HiddenSize, c.IntermediateSize, c.MLPBias)
			mlp.UpProj = lin(c.HiddenSize, c.IntermediateSize, c.MLPBias)
		}
		if c.QKNorm {
			att.QNorm = layer.NewRMSNorm(c.HeadDim, eps)
			att.KNorm = layer.NewRMSNorm(c.HeadDim, eps)
		}
		m.Base.Layers = append(m.Base.Layers, &Decoder{
			InputLayernorm:         layer.NewRMSNorm(c.HiddenSize, eps),
			SelfAttn:               att,
			PostAttentionLayernorm: layer.NewRMSNorm(c.HiddenSize, eps),
			MLP:                    mlp,
		})
	}
	if c.NormUnitOffset { // (1 + w) with w = 0 is the identity scale
		for _, p := range layer.Params(m) {
			if strings.HasSuffix(p.Path, "norm.weight") {
				clear(ops.Data(p.Param))
			}
		}
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
	return m.hidden(b.Flat(), lay.Positions(), SeqLen(lay), func(_ int, q, k, v mat.Tensor) mat.Tensor {
		if c.SlidingWindow > 0 {
			return ops.AttentionWindow(q, k, v, lay, c.NumAttentionHeads, c.NumKeyValueHeads, c.SlidingWindow)
		}
		return ops.Attention(q, k, v, lay, c.NumAttentionHeads, c.NumKeyValueHeads, true)
	})
}

// attendFunc computes layer i's attention from its rotated queries and keys
// and its values: over the whole batch (Hidden) or against a key/value
// cache (Step).
type attendFunc func(i int, q, k, v mat.Tensor) mat.Tensor

// hidden runs the decoder layers over the token ids at the given positions,
// with the rotary frequencies of a sequence of seqLen tokens, and returns
// the final normalised hidden states [len(ids), hidden].
func (m *Model) hidden(ids, pos []int, seqLen int, attend attendFunc) mat.Tensor {
	c := m.Config
	inv, attn := RopeFrequencies(c, seqLen)
	h := m.Base.EmbedTokens.Forward(ids)
	if c.ScaleEmbeddings {
		h = ops.Scale(h, float32(math.Sqrt(float64(c.HiddenSize))))
	}
	for i, l := range m.Base.Layers {
		h = ops.Block(i, h, func(h mat.Tensor) mat.Tensor {
			x := m.norm(l.InputLayernorm, h)
			a := l.SelfAttn
			var q, k, v mat.Tensor
			if a.QKVProj != nil {
				d, kv := c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
				qkv := a.QKVProj.Forward(x)
				q, k, v = ops.SliceCols(qkv, 0, d), ops.SliceCols(qkv, d, d+kv), ops.SliceCols(qkv, d+kv, d+2*kv)
			} else {
				q, k = a.QProj.Forward(x), a.KProj.Forward(x)
			}
			if a.QNorm != nil {
				q = headNorm(a.QNorm, q, c.NumAttentionHeads)
				k = headNorm(a.KNorm, k, c.NumKeyValueHeads)
			}
			q = ops.RotaryFreqs(q, pos, c.NumAttentionHeads, inv, attn)
			k = ops.RotaryFreqs(k, pos, c.NumKeyValueHeads, inv, attn)
			if v == nil {
				v = a.VProj.Forward(x)
			}
			h = ops.Add(h, a.OProj.Forward(attend(i, q, k, v)))
			x = m.norm(l.PostAttentionLayernorm, h)
			h = ops.Add(h, l.MLP.DownProj.Forward(m.gate(l.MLP, x)))
			return h
		})
	}
	return m.norm(m.Base.Norm, h)
}

// RopeFrequencies returns the inverse frequencies and attention factor of
// c's rotary embedding for a forward pass over a sequence of seqLen tokens
// (see Rope and SeqLen). c must be valid: Validate has checked its rope.
func RopeFrequencies(c *Config, seqLen int) ([]float32, float32) {
	r, err := c.Rope()
	if err != nil {
		panic(fmt.Sprintf("llama: %v", err))
	}
	return r.Frequencies(seqLen)
}

// norm applies an RMSNorm: x * rsqrt(mean(x^2) + eps) * w, or * (1 + w)
// with NormUnitOffset (Gemma), both in float32.
func (m *Model) norm(n *layer.RMSNorm, x mat.Tensor) mat.Tensor {
	if !m.Config.NormUnitOffset {
		return n.Forward(x)
	}
	return ops.RMSNorm(x, ops.Binary(ops.AddOp, n.Weight, ops.New(1, 1, []float32{1})), n.Eps)
}

// gate returns the MLP's gated activation act(gate(x)) * up(x).
func (m *Model) gate(f *MLP, x mat.Tensor) mat.Tensor {
	var g, u mat.Tensor
	if f.GateUpProj != nil {
		gu := f.GateUpProj.Forward(x)
		n := m.Config.IntermediateSize
		g, u = ops.SliceCols(gu, 0, n), ops.SliceCols(gu, n, 2*n)
	} else {
		g, u = f.GateProj.Forward(x), f.UpProj.Forward(x)
	}
	if m.Config.Activation == "gelu_pytorch_tanh" {
		return ops.GELUTanhGate(g, u)
	}
	return ops.SwiGLU(g, u)
}

// headNorm applies an RMSNorm over each head's features of x [rows,
// heads*dh].
func headNorm(n *layer.RMSNorm, x mat.Tensor, heads int) mat.Tensor {
	rows, d := ops.Rows(x), ops.Cols(x)
	y := n.Forward(ops.Reshape(x, rows*heads, d/heads))
	return ops.Reshape(y, rows, d)
}

// Logits returns next-token logits [Batch*Len, vocab] for a causal LM, or
// class logits [Batch, labels] read at each sequence's last token that is
// not the pad id (LastTokens) for a classifier.
func (m *Model) Logits(b model.Batch) (mat.Tensor, error) {
	if err := b.Validate(m.Config.VocabSize); err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	h := m.Hidden(b)
	if m.Score != nil {
		return m.Score.Forward(ops.SelectRows(h, LastTokens(b, m.Config.PadTokenID))), nil
	}
	if m.LMHead != nil {
		return m.LMHead.Forward(h), nil
	}
	return m.Base.EmbedTokens.Project(h), nil
}

// LastTokens returns, for each sequence, the row index of the token a
// <Family>ForSequenceClassification head reads, as transformers (>= 4.48)
// pools it. With a pad id (config pad_token_id) that is the rightmost
// position whose id is not the pad id, whatever the mask says: a text
// ending with the pad id is read one token earlier, and a row of pad ids
// at position 0. Without one, transformers reads the last position (and
// refuses batches of more than one sequence); here it is the last real
// token of the mask, which is the same for a single unpadded sequence.
func LastTokens(b model.Batch, pad *int) []int {
	lay := b.Layout()
	idx := make([]int, lay.Batch)
	for i := range idx {
		last := lay.Len - 1
		switch {
		case pad != nil:
			for last > 0 && b.IDs[i][last] == *pad {
				last--
			}
		case b.Mask != nil:
			for last > 0 && !b.Mask[i][last] {
				last--
			}
		}
		idx[i] = i*lay.Len + last
	}
	return idx
}

var _ model.Classifier = (*Model)(nil)

// ClassifierFor returns the model as LlamaForSequenceClassification over
// labels: itself when its score head already has that many classes, else
// the backbone with a new head (AsClassifier).
func (m *Model) ClassifierFor(labels []string, seed uint64) (model.Model, error) {
	if len(labels) == 0 {
		return nil, fmt.Errorf("llama: a classifier needs at least one label")
	}
	if m.Score != nil && m.Config.NumLabels() == len(labels) {
		return m, nil
	}
	return m.AsClassifier(labels, seed), nil
}

// HeadModules names the classification head: score.
func (m *Model) HeadModules() []string { return []string{"score"} }

// AsClassifier turns a causal LM into LlamaForSequenceClassification with
// labels classes, sharing the backbone's parameters. The new score head is
// initialised from N(0, 0.02^2) (transformers' initializer_range) with seed.
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
