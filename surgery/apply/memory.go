package apply

import (
	"fmt"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/internal/memavail"
	"github.com/surgeon-ml/surgeon/surgery/recipe"
)

// Memory is an estimate of the memory a run needs, in bytes, by part.
type Memory struct {
	// Weights are every parameter as held in memory: float32, except
	// weights kept stored, which count as one float32 layer.
	Weights int64 `json:"weights"`
	// TrainState is the gradient and the two AdamW moments of every
	// trainable parameter.
	TrainState int64 `json:"train_state"`
	// Activations are what one training batch keeps for backward: each
	// linear layer's output (attention's copies of the queries, keys and
	// values, the MLP activation's inputs, ...) and the input of each
	// layer that something trainable reads (an adapter, a trained weight).
	// A block gives back what no backward pass reads as soon as it ends
	// (ops.Block), and attention computes its probabilities again in
	// backward, so neither counts.
	Activations int64 `json:"activations"`
	// Runtime is the process itself, the buffer pool and the collector's
	// headroom.
	Runtime int64 `json:"runtime"`
	// Total is the sum.
	Total int64 `json:"total"`
	// Mapped is the size, as stored, of the weights kept stored: pages of
	// their file the run maps and reads at every step. They are resident
	// while in use (a peak RSS includes them) but belong to the page
	// cache, which the kernel may drop and read again, so Total leaves
	// them out and the run is not refused for them.
	Mapped int64 `json:"mapped"`
}

// runtimeBase is the resident size of the process beyond the model
// (binary, plugins' clients, tokenizer, data) plus the buffer pool's cap.
const runtimeBase = 256 << 20

// estimateMemory estimates the run's memory from its plan, the model's
// linear layers and the recipe's batch, whatever the family.
func (r *Run) estimateMemory() Memory {
	rec := r.Recipe
	var m Memory
	m.Weights = 4 * r.Plan.Total
	// Weights kept stored (model.weights = "stored") are mapped from their
	// file and filled into float32 one layer at a time: they count as the
	// largest such layer. So are embedding tables.
	var stored, largest, perToken int64
	full := rec.Train.Mode == recipe.ModeFull
	// An adapter's base layer counts once, under the adapter's path.
	linears := layer.Linears(r.Model)
	for path, a := range r.Adapters {
		if a.Base != nil {
			delete(linears, path+".base_layer")
			linears[path] = a.Base
		}
	}
	for path, l := range linears {
		in, out := int64(l.In()), int64(l.Out())
		perToken += out
		if _, adapted := r.Adapters[path]; adapted || full {
			perToken += in
		}
		if l.Source != nil {
			m.Mapped += l.Source.Bytes()
			stored += in * out
			largest = max(largest, in*out)
		}
	}
	// Tables kept stored are read a row per token; a tied output layer
	// multiplies the whole table, which then counts as a layer.
	for _, e := range layer.Embeddings(r.Model) {
		if e.Source != nil {
			n := int64(e.Weight.Value().Size())
			m.Mapped += e.Source.Bytes()
			stored += n
			largest = max(largest, n)
		}
	}
	m.Weights += 4 * (largest - stored)
	m.TrainState = 3 * 4 * r.Plan.Trainable
	tokens := int64(rec.Train.BatchSize)
	if r.Classifier() {
		tokens *= int64(rec.Model.MaxLength)
	} else {
		tokens *= int64(rec.Train.SeqLen)
	}
	cfg := r.Model.HFConfig()
	layers := cfgInt(cfg, "num_hidden_layers", "n_layer", "n_layers")
	// The norms' inputs, the residual stream, come to about the outputs
	// of the projections back into it, counted above but given back.
	m.Activations = 4 * tokens * perToken
	if rec.Train.GradientCheckpointing && layers > 0 {
		// Each checkpointed block's input, and the later blocks'
		// activations; backward reaches a checkpointed block, whose
		// activations it makes again, after releasing those (at least one
		// block's worth).
		hidden := int64(cfgInt(cfg, "hidden_size", "n_embd", "dim"))
		ck := int64(layers)
		if n := rec.Train.CheckpointBlocks; n > 0 && n < layers {
			ck = int64(n)
		}
		block := m.Activations / int64(layers)
		m.Activations = 4*tokens*hidden*ck + block*max(int64(layers)-ck, 1)
	}
	live := m.Weights + m.TrainState + m.Activations
	m.Runtime = runtimeBase + max(128<<20, live*15/100)
	if rec.Train.Mode == recipe.ModeFull {
		m.Runtime += m.Weights // the best-epoch copy of a fully trained model
	}
	m.Total = live + m.Runtime
	return m
}

func cfgInt(cfg map[string]any, keys ...string) int {
	for _, k := range keys {
		switch v := cfg[k].(type) {
		case float64:
			return int(v)
		case int:
			return v
		}
	}
	return 0
}

// MemoryEnv overrides the memory surgeon believes is available, in bytes
// or with a K/M/G suffix (for example on a cluster node whose limit the
// process cannot read).
const MemoryEnv = memavail.Env

// mib formats bytes in MiB.
func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// checkMemory refuses a run whose estimate exceeds the memory available.
func (r *Run) checkMemory() error {
	est := r.Plan.Memory
	avail, from, ok, err := memavail.Available()
	if err != nil {
		return err
	}
	if !ok || est.Total <= avail {
		return nil
	}
	return fmt.Errorf("%s: the run needs about %s (weights %s, gradients and optimizer state %s, activations of a batch of %d %s, runtime %s) but %s available (%s); lower train.batch_size or the sequence length, or train fewer parameters",
		r.Recipe.Path, mib(est.Total), mib(est.Weights), mib(est.TrainState), r.Recipe.Train.BatchSize, mib(est.Activations), mib(est.Runtime), mib(avail)+" is", from)
}
