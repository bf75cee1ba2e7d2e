package gpt2

import (
	"encoding/gob"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/surgeon-ml/surgeon/core/layer"
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
	gob.Register(&Block{})
	gob.Register(&Attention{})
	gob.Register(&MLP{})
	// Config.Extra holds config.json values as encoding/json decodes
	// them: objects (label2id, task_specific_params) and arrays need
	// registering for a native (gob) model to carry them.
	gob.Register(map[string]any{})
	gob.Register([]any{})
	model.RegisterNativeType[*Model]("gpt2")
	model.Register("gpt2", func(cfg []byte) (model.Model, error) {
		c, err := ParseConfig(cfg)
		if err != nil {
			return nil, err
		}
		return New(c), nil
	})
}

// Model is GPT2LMHeadModel, or GPT2ForSequenceClassification when Score is
// set.
type Model struct {
	nn.Module
	Config      *Config
	Transformer *Backbone   `hf:"transformer"`
	LMHead      *layer.Slot `hf:"lm_head"` // nil when tied to wte (GPT-2's default) or for a classifier
	Score       *layer.Slot `hf:"score"`   // classifier head, nil for a causal LM
}

// Backbone is GPT2Model: token and learned position embeddings, the
// blocks and the final LayerNorm.
type Backbone struct {
	nn.Module
	WTE *layer.Embedding `hf:"wte"`
	WPE *layer.Embedding `hf:"wpe"`
	H   []*Block         `hf:"h"`
	LnF *layer.LayerNorm `hf:"ln_f"`
}

// Block is one GPT2Block: pre-LayerNorm attention and MLP with residuals.
type Block struct {
	nn.Module
	Ln1  *layer.LayerNorm `hf:"ln_1"`
	Attn *Attention       `hf:"attn"`
	Ln2  *layer.LayerNorm `hf:"ln_2"`
	MLP  *MLP             `hf:"mlp"`
}

// Attention is GPT2Attention: fused q, k, v projection (c_attn, in that
// order along its outputs) and the output projection c_proj.
type Attention struct {
	nn.Module
	CAttn *layer.Slot `hf:"c_attn"`
	CProj *layer.Slot `hf:"c_proj"`
}

// MLP is GPT2MLP: c_fc, the activation, c_proj.
type MLP struct {
	nn.Module
	CFc   *layer.Slot `hf:"c_fc"`
	CProj *layer.Slot `hf:"c_proj"`
}

// conv1D returns a slot holding a Conv1D-stored linear layer with a bias.
func conv1D(in, out int) *layer.Slot {
	l := layer.NewLinear(in, out, true)
	l.Conv1D = true
	return layer.NewSlot(l)
}

// New returns an untrained model of the given configuration.
func New(c *Config) *Model {
	eps := float32(c.LayerNormEpsilon)
	e := c.NEmbd
	m := &Model{Config: c, Transformer: &Backbone{
		WTE: layer.NewEmbedding(c.VocabSize, e),
		WPE: layer.NewEmbedding(c.NPositions, e),
		LnF: layer.NewLayerNorm(e, eps),
	}}
	for i := 0; i < c.NLayer; i++ {
		m.Transformer.H = append(m.Transformer.H, &Block{
			Ln1:  layer.NewLayerNorm(e, eps),
			Attn: &Attention{CAttn: conv1D(e, 3*e), CProj: conv1D(e, e)},
			Ln2:  layer.NewLayerNorm(e, eps),
			MLP:  &MLP{CFc: conv1D(e, c.Inner()), CProj: conv1D(c.Inner(), e)},
		})
	}
	switch {
	case c.IsClassifier():
		m.Score = layer.NewSlot(layer.NewLinear(e, c.NumLabels(), false))
	case !c.TieWordEmbeddings:
		m.LMHead = layer.NewSlot(layer.NewLinear(e, c.VocabSize, false))
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

// Hidden returns the final normalised hidden states [Batch*Len, n_embd].
// Position ids count the real tokens before each one (0..T-1 for a
// right-padded sequence, as transformers' default arange).
func (m *Model) Hidden(b model.Batch) (mat.Tensor, error) {
	c := m.Config
	lay := b.Layout()
	pos := lay.Positions()
	for i, p := range pos {
		if p >= c.NPositions {
			return nil, fmt.Errorf("gpt2: sequence %d has more than n_positions = %d tokens", i/lay.Len, c.NPositions)
		}
	}
	return m.hidden(b.Flat(), pos, func(_ int, q, k, v mat.Tensor) mat.Tensor {
		return ops.Attention(q, k, v, lay, c.NHead, c.NHead, true)
	}), nil
}

// hidden runs the blocks over the token ids at the given positions (all
// below n_positions) and returns the final normalised hidden states
// [len(ids), n_embd]; attend computes block i's causal attention from its
// queries (already scaled for GPT-2's options), keys and values.
func (m *Model) hidden(ids, pos []int, attend func(i int, q, k, v mat.Tensor) mat.Tensor) mat.Tensor {
	c := m.Config
	t := m.Transformer
	h := ops.Add(t.WTE.Forward(ids), t.WPE.Forward(pos))
	rows, e := len(ids), c.NEmbd
	split := [3][]int{make([]int, rows), make([]int, rows), make([]int, rows)}
	for r := 0; r < rows; r++ {
		for j := range split {
			split[j][r] = 3*r + j
		}
	}
	dh := float64(e / c.NHead)
	for i, blk := range t.H {
		h = ops.Block(i, h, func(h mat.Tensor) mat.Tensor {
			x := blk.Ln1.Forward(h)
			qkv := ops.Reshape(blk.Attn.CAttn.Forward(x), 3*rows, e)
			q := ops.SelectRows(qkv, split[0])
			k := ops.SelectRows(qkv, split[1])
			v := ops.SelectRows(qkv, split[2])
			// ops.Attention divides the scores by sqrt(head_dim); GPT-2 may
			// not, and may divide them by the layer's number as well.
			s := 1.0
			if !c.ScaleAttnWeights {
				s *= math.Sqrt(dh)
			}
			if c.ScaleAttnByInverseLayerIdx {
				s /= float64(i + 1)
			}
			if s != 1 {
				q = ops.Scale(q, float32(s))
			}
			h = ops.Add(h, blk.Attn.CProj.Forward(attend(i, q, k, v)))
			x = blk.Ln2.Forward(h)
			f := blk.MLP.CFc.Forward(x)
			if activations[c.ActivationFunction] == "erf" {
				f = ops.GELU(f)
			} else {
				f = GELUTanh(f)
			}
			h = ops.Add(h, blk.MLP.CProj.Forward(f))
			return h
		})
	}
	return t.LnF.Forward(h)
}

// Logits returns next-token logits [Batch*Len, vocab] for a causal LM, or
// class logits [Batch, labels] for a classifier, read at each sequence's
// last token that is not pad_token_id (as transformers does; by the batch
// mask when the config has no pad_token_id).
func (m *Model) Logits(b model.Batch) (mat.Tensor, error) {
	if err := b.Validate(m.Config.VocabSize); err != nil {
		return nil, fmt.Errorf("gpt2: %w", err)
	}
	h, err := m.Hidden(b)
	if err != nil {
		return nil, err
	}
	if m.Score != nil {
		return m.Score.Forward(ops.SelectRows(h, m.LastTokens(b))), nil
	}
	if m.LMHead != nil {
		return m.LMHead.Forward(h), nil
	}
	return m.Transformer.WTE.Project(h), nil
}

// LastTokens returns, for each sequence, the row index of the token the
// classifier reads: with a pad_token_id, the last position whose id is not
// the pad id (position 0 when all are), as GPT2ForSequenceClassification;
// without one, the last real token of the mask.
func (m *Model) LastTokens(b model.Batch) []int {
	lay := b.Layout()
	idx := make([]int, lay.Batch)
	for i := range idx {
		last := lay.Len - 1
		switch {
		case m.Config.PadTokenID != nil:
			pad := *m.Config.PadTokenID
			for last > 0 && b.IDs[i][last] == pad {
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

// ClassifierFor returns the model as GPT2ForSequenceClassification over
// labels: itself when its score head already has that many classes, else
// the backbone with a new head (AsClassifier).
func (m *Model) ClassifierFor(labels []string, seed uint64) (model.Model, error) {
	if len(labels) == 0 {
		return nil, fmt.Errorf("gpt2: a classifier needs at least one label")
	}
	if m.Score != nil && m.Config.NumLabels() == len(labels) {
		return m, nil
	}
	return m.AsClassifier(labels, seed), nil
}

// HeadModules names the classification head: score.
func (m *Model) HeadModules() []string { return []string{"score"} }

// AsClassifier turns the model into GPT2ForSequenceClassification with
// labels classes, sharing the backbone's parameters. The new score head is
// initialised from N(0, 0.02^2) (GPT-2's initializer_range) with seed.
func (m *Model) AsClassifier(labels []string, seed uint64) *Model {
	c := *m.Config
	c.Architectures = []string{"GPT2ForSequenceClassification"}
	c.ID2Label = map[string]string{}
	l2i := map[string]any{}
	for i, l := range labels {
		c.ID2Label[fmt.Sprint(i)] = l
		l2i[l] = i
	}
	c.Extra = map[string]any{}
	for k, v := range m.Config.Extra {
		c.Extra[k] = v
	}
	delete(c.Extra, "num_labels")
	c.Extra["label2id"] = l2i
	score := layer.NewLinear(c.NEmbd, len(labels), false)
	r := rand.New(rand.NewPCG(seed, 0x5c0e))
	for i := range ops.Data(score.Weight) {
		ops.Data(score.Weight)[i] = float32(r.NormFloat64() * 0.02)
	}
	return &Model{Config: &c, Transformer: m.Transformer, Score: layer.NewSlot(score)}
}
