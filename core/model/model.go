// Package model defines what every surgeon architecture provides (a spago
// model with Hugging Face names that maps a batch of token sequences to
// logits), the batch layout, and a registry of architectures keyed by the
// Hugging Face config.json "model_type".
package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
)

// Task is what a model's logits mean.
type Task string

// The tasks surgeon's architectures implement.
const (
	// CausalLM logits are [tokens, vocab]: a next-token distribution per position.
	CausalLM Task = "causal-lm"
	// SequenceClassification logits are [sequences, labels].
	SequenceClassification Task = "sequence-classification"
)

// Model is an architecture instance.
type Model interface {
	nn.Model
	// Task tells how to read the logits.
	Task() Task
	// Logits runs the model. For CausalLM the result is [Batch*Len, vocab]
	// (row b*Len+t for token t of sequence b); for SequenceClassification
	// it is [Batch, labels]. An invalid batch (ragged, ids out of range) is
	// an error.
	Logits(b Batch) (mat.Tensor, error)
	// HFConfig returns the Hugging Face config.json object of the model.
	HFConfig() map[string]any
	// VocabSize is the number of token ids the model accepts.
	VocabSize() int
}

// Batch is a set of token sequences padded to one length.
type Batch struct {
	// IDs holds Batch rows of Len token ids each.
	IDs [][]int
	// Mask marks real tokens; nil means every token is real.
	Mask [][]bool
}

// NewBatch right-pads seqs with pad to the longest length and masks the padding.
func NewBatch(seqs [][]int, pad int) Batch {
	n := 0
	for _, s := range seqs {
		n = max(n, len(s))
	}
	b := Batch{IDs: make([][]int, len(seqs)), Mask: make([][]bool, len(seqs))}
	for i, s := range seqs {
		b.IDs[i] = make([]int, n)
		b.Mask[i] = make([]bool, n)
		for t := 0; t < n; t++ {
			if t < len(s) {
				b.IDs[i][t] = s[t]
				b.Mask[i][t] = true
			} else {
				b.IDs[i][t] = pad
			}
		}
	}
	return b
}

// Layout returns the activation layout of the batch.
func (b Batch) Layout() ops.Layout {
	n := 0
	if len(b.IDs) > 0 {
		n = len(b.IDs[0])
	}
	return ops.Layout{Batch: len(b.IDs), Len: n, Valid: b.Mask}
}

// Flat returns the token ids row by row.
func (b Batch) Flat() []int {
	var out []int
	for _, s := range b.IDs {
		out = append(out, s...)
	}
	return out
}

// Validate checks that the batch is rectangular, its mask matches, and ids
// are within [0, vocab).
func (b Batch) Validate(vocab int) error {
	if len(b.IDs) == 0 || len(b.IDs[0]) == 0 {
		return fmt.Errorf("empty batch")
	}
	n := len(b.IDs[0])
	for i, s := range b.IDs {
		if len(s) != n {
			return fmt.Errorf("sequence %d has %d tokens, want %d", i, len(s), n)
		}
		for t, id := range s {
			if id < 0 || id >= vocab {
				return fmt.Errorf("sequence %d token %d: id %d outside the vocabulary [0,%d)", i, t, id, vocab)
			}
		}
		if b.Mask != nil && len(b.Mask[i]) != n {
			return fmt.Errorf("sequence %d: mask of %d entries for %d tokens", i, len(b.Mask[i]), n)
		}
	}
	if b.Mask != nil && len(b.Mask) != len(b.IDs) {
		return fmt.Errorf("mask of %d rows for %d sequences", len(b.Mask), len(b.IDs))
	}
	return nil
}

// Builder makes an untrained model from a config.json document.
type Builder func(config []byte) (Model, error)

var (
	mu       sync.RWMutex
	builders = map[string]Builder{}
)

// Register makes an architecture available under a Hugging Face
// model_type. It panics on a duplicate or nil builder (a programming error).
func Register(modelType string, b Builder) {
	mu.Lock()
	defer mu.Unlock()
	if b == nil {
		panic("model: nil builder for " + modelType)
	}
	if _, dup := builders[modelType]; dup {
		panic("model: duplicate architecture " + modelType)
	}
	builders[modelType] = b
}

// Types lists the registered model types, sorted.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	var out []string
	for k := range builders {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// New builds an untrained model from a config.json document.
func New(config []byte) (Model, error) {
	var head struct {
		ModelType string `json:"model_type"`
	}
	if err := json.Unmarshal(config, &head); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	mu.RLock()
	b, ok := builders[head.ModelType]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("config: no architecture for model_type %q (known: %v)", head.ModelType, Types())
	}
	return b(config)
}

// NativeDecoder decodes a spago native (gob) model of one architecture.
type NativeDecoder func(data []byte) (Model, error)

var natives []NativeDecoder

// RegisterNative adds a decoder tried by DecodeNative.
func RegisterNative(d NativeDecoder) {
	mu.Lock()
	defer mu.Unlock()
	natives = append(natives, d)
}

// RegisterNativeType registers the spago native (nn.Dump gob) decoding of
// the concrete model type T. A decoded model is accepted only when it has
// exactly the parameters of a fresh model built from its own config.json,
// because gob decodes fields by name and would happily fill another
// architecture's type with whatever fields happen to match.
func RegisterNativeType[T Model](name string) {
	RegisterNative(func(data []byte) (m Model, err error) {
		defer func() {
			if r := recover(); r != nil {
				m, err = nil, fmt.Errorf("%s: incomplete model: %v", name, r)
			}
		}()
		t, err := nn.Load[T](bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if d, ok := any(t).(NativeDecoded); ok {
			d.DecodedNative()
		}
		cfg, err := json.Marshal(t.HFConfig())
		if err != nil {
			return nil, fmt.Errorf("%s: config: %w", name, err)
		}
		fresh, err := New(cfg)
		if err != nil {
			return nil, err
		}
		if err := layer.SameParams(t, fresh); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return t, nil
	})
}

// NativeDecoded is implemented by models that complete themselves once
// decoded from gob (RegisterNativeType calls it before anything reads the
// model). gob transmits no pointer to a zero value, so an optional config
// field set to 0 (pad_token_id 0) arrives nil unless the model restores it
// from what else it encoded.
type NativeDecoded interface {
	DecodedNative()
}

// DecodeNative decodes a native model with the first registered
// architecture that accepts it.
func DecodeNative(data []byte) (Model, error) {
	mu.RLock()
	ds := append([]NativeDecoder(nil), natives...)
	mu.RUnlock()
	var errs []string
	for _, d := range ds {
		m, err := d(data)
		if err == nil {
			return m, nil
		}
		errs = append(errs, err.Error())
	}
	return nil, fmt.Errorf("not a spago native model of a known architecture (%s)", strings.Join(errs, "; "))
}

// Classifier is implemented by families with a sequence-classification
// head. The rest of surgeon reaches classification only through it, so a
// new family needs no switch elsewhere.
type Classifier interface {
	Model
	// ClassifierFor returns the model as a sequence classifier over labels:
	// itself when it already classifies that many labels, else a model
	// sharing its backbone with a new head initialised from seed. An error
	// says why the model cannot classify labels.
	ClassifierFor(labels []string, seed uint64) (Model, error)
	// HeadModules names the modules of the classification head (the
	// default of train.modules_to_save): "score" for decoders,
	// "classifier" for BERT.
	HeadModules() []string
}

// NumLabels returns the number of classes of a sequence classifier's head
// from its config (num_labels, else id2label), 0 when it has none.
func NumLabels(m Model) int {
	c := m.HFConfig()
	if n, ok := c["num_labels"].(float64); ok && n > 0 {
		return int(n)
	}
	if n, ok := c["num_labels"].(int); ok && n > 0 {
		return n
	}
	if l, ok := c["id2label"].(map[string]any); ok {
		return len(l)
	}
	if l, ok := c["id2label"].(map[string]string); ok {
		return len(l)
	}
	return 0
}

// ShapeExplainer is implemented by families that can say which config
// keys set each dimension of a parameter (["num_key_value_heads",
// "head_dim"] for the rows of k_proj), so that a checkpoint whose tensors
// contradict its config.json is reported by key. nil means unknown.
type ShapeExplainer interface {
	ShapeKeys(param string) [][]string
}
