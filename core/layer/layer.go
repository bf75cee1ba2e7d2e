// Package layer holds the building blocks shared by surgeon's architectures
// (linear, embedding and normalisation layers), the replaceable Slot that
// every linear projection sits in, and the walk that names modules and
// parameters exactly as Hugging Face checkpoints do.
//
// Names come from `hf` struct tags: a field tagged `hf:"q_proj"` is the
// path segment "q_proj", a slice field adds ".N" per element, and a Slot is
// transparent (its content takes the slot's path). Parameters stored by
// Hugging Face as 1-D tensors carry the option `hf:"bias,vector"`.
package layer

import (
	"encoding/gob"
	"fmt"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/surgeon-ml/surgeon/core/ops"
)

// Forwarder is a module that maps [tokens, in] activations to
// [tokens, out] activations. Everything that can sit in a Slot is one.
type Forwarder interface {
	nn.Model
	Forward(x mat.Tensor) mat.Tensor
}

// Kinder is implemented by modules that report a kind for selection
// ("linear", "embedding", "norm").
type Kinder interface {
	Kind() string
}

var (
	_ Forwarder = (*Linear)(nil)
	_ Forwarder = (*Slot)(nil)
)

func init() {
	gob.Register(&Linear{})
	gob.Register(&Slot{})
	gob.Register(&Embedding{})
	gob.Register(&RMSNorm{})
	gob.Register(&LayerNorm{})
}

// Linear is y = x*W^T + b with W stored [out, in] as in PyTorch.
type Linear struct {
	nn.Module
	Weight *nn.Param `hf:"weight"`
	Bias   *nn.Param `hf:"bias,vector"`
	// Conv1D marks a layer that Hugging Face implements as transformers'
	// Conv1D (GPT-2): the same map, with the weight saved transposed,
	// [in, out]. The layer still holds W as [out, in]; the walk reports the
	// weight with the saved shape and Param.Transposed set, so checkpoints
	// load and save without renaming or reshaping.
	Conv1D bool
	// Source, when set, keeps a frozen weight where it is stored (a
	// memory-mapped BF16 tensor, quantized blocks): Weight then has its
	// shape but no values (it reads as zero), and products fill a float32
	// copy only while they run (ops.StoredLinear). Materialize turns the
	// layer back into a plain one. Not saved: writers materialize first.
	Source WeightSource
}

// WeightSource supplies a frozen weight from where it is stored.
type WeightSource interface {
	ops.Filler
	// DType names the stored type ("BF16", "Q4_K", ...).
	DType() string
	// Bytes is the weight's size as stored.
	Bytes() int64
}

// Materialize fills a stored weight (Source) into Weight and drops the
// source, so that code reading the weight's values sees them. It is a
// no-op for a plain layer.
func (l *Linear) Materialize() error {
	if l.Source == nil {
		return nil
	}
	if err := l.Source.Fill(ops.Data(l.Weight)); err != nil {
		return fmt.Errorf("weight (%s): %w", l.Source.DType(), err)
	}
	l.Source = nil
	return nil
}

// NewLinear returns a zero-initialised linear layer, with a bias if bias is set.
func NewLinear(in, out int, bias bool) *Linear {
	l := &Linear{Weight: newParam(out, in)}
	if bias {
		l.Bias = newParam(out, 1)
	}
	return l
}

// In returns the number of input features.
func (l *Linear) In() int { return l.Weight.Shape()[1] }

// Out returns the number of output features.
func (l *Linear) Out() int { return l.Weight.Shape()[0] }

// Kind reports "linear".
func (l *Linear) Kind() string { return "linear" }

// HFKind names the Hugging Face module class the layer is saved as:
// "conv1d" for a Conv1D layer, else "linear". Adapter plugins are told it,
// because PEFT's saved form depends on it (fan_in_fan_out).
func (l *Linear) HFKind() string {
	if l.Conv1D {
		return "conv1d"
	}
	return "linear"
}

// Forward returns x*W^T + b.
func (l *Linear) Forward(x mat.Tensor) mat.Tensor {
	if l.Source != nil {
		if l.Bias == nil {
			return ops.StoredLinear(x, l.Source, l.Out(), l.In(), nil)
		}
		return ops.StoredLinear(x, l.Source, l.Out(), l.In(), l.Bias)
	}
	if l.Bias == nil {
		return ops.Linear(x, l.Weight, nil)
	}
	return ops.Linear(x, l.Weight, l.Bias)
}

// Slot holds a replaceable layer: a plain Linear until surgery swaps in an
// adapted one. Paths and forward passes go through to the content.
type Slot struct {
	nn.Module
	Layer Forwarder
}

// NewSlot returns a slot holding l.
func NewSlot(l Forwarder) *Slot { return &Slot{Layer: l} }

// Forward runs the slot's current layer.
func (s *Slot) Forward(x mat.Tensor) mat.Tensor { return s.Layer.Forward(x) }

// Base returns the plain linear layer in the slot, or nil if the slot holds
// something else.
func (s *Slot) Base() *Linear {
	l, _ := s.Layer.(*Linear)
	return l
}

// Embedding is a lookup table [vocab, dim].
type Embedding struct {
	nn.Module
	Weight *nn.Param `hf:"weight"`
	// Source, when set, keeps the frozen table where it is stored (BF16
	// rows of a safetensors file, quantized GGUF blocks), as
	// Linear.Source does for a weight: Weight has its shape but no values,
	// a lookup reads only its rows (ops.StoredEmbedding), and a tied
	// output projection (Project) multiplies the stored table.
	// Materialize turns the table back into a plain one. Not saved.
	Source TableSource
}

// TableSource supplies a frozen embedding table from where it is stored:
// its rows for lookups, the whole [vocab, dim] weight for products.
type TableSource interface {
	WeightSource
	ops.RowFiller
}

// NewEmbedding returns a zero-initialised table.
func NewEmbedding(vocab, dim int) *Embedding { return &Embedding{Weight: newParam(vocab, dim)} }

// Kind reports "embedding".
func (e *Embedding) Kind() string { return "embedding" }

// Forward returns the rows of the table for ids.
func (e *Embedding) Forward(ids []int) mat.Tensor {
	if e.Source != nil {
		s := e.Weight.Shape()
		return ops.StoredEmbedding(e.Source, s[0], s[1], ids)
	}
	return ops.Embedding(e.Weight, ids)
}

// Project returns h times the table transposed, [tokens, vocab]: the
// output layer of a model whose word embeddings are tied to it.
func (e *Embedding) Project(h mat.Tensor) mat.Tensor {
	if e.Source != nil {
		s := e.Weight.Shape()
		return ops.StoredLinear(h, e.Source, s[0], s[1], nil)
	}
	return ops.Linear(h, e.Weight, nil)
}

// Materialize fills a stored table (Source) into Weight and drops the
// source, so that code reading the table's values sees them. It is a
// no-op for a plain table.
func (e *Embedding) Materialize() error {
	if e.Source == nil {
		return nil
	}
	if err := e.Source.Fill(ops.Data(e.Weight)); err != nil {
		return fmt.Errorf("table (%s): %w", e.Source.DType(), err)
	}
	e.Source = nil
	return nil
}

// RMSNorm is root-mean-square normalisation with a learned scale.
type RMSNorm struct {
	nn.Module
	Weight *nn.Param `hf:"weight,vector"`
	Eps    float32
}

// NewRMSNorm returns an RMSNorm of dim features with unit scale.
func NewRMSNorm(dim int, eps float32) *RMSNorm {
	w := newParam(dim, 1)
	for i := range ops.Data(w) {
		ops.Data(w)[i] = 1
	}
	return &RMSNorm{Weight: w, Eps: eps}
}

// Kind reports "norm".
func (n *RMSNorm) Kind() string { return "norm" }

// Forward normalises each row of x.
func (n *RMSNorm) Forward(x mat.Tensor) mat.Tensor { return ops.RMSNorm(x, n.Weight, n.Eps) }

// LayerNorm is mean/variance normalisation with a learned scale and shift.
type LayerNorm struct {
	nn.Module
	Weight *nn.Param `hf:"weight,vector"`
	Bias   *nn.Param `hf:"bias,vector"`
	Eps    float32
}

// NewLayerNorm returns a LayerNorm of dim features with unit scale.
func NewLayerNorm(dim int, eps float32) *LayerNorm {
	w := newParam(dim, 1)
	for i := range ops.Data(w) {
		ops.Data(w)[i] = 1
	}
	return &LayerNorm{Weight: w, Bias: newParam(dim, 1), Eps: eps}
}

// Kind reports "norm".
func (n *LayerNorm) Kind() string { return "norm" }

// Forward normalises each row of x.
func (n *LayerNorm) Forward(x mat.Tensor) mat.Tensor {
	return ops.LayerNorm(x, n.Weight, n.Bias, n.Eps)
}
