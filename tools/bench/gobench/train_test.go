package gobench

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/bert"
	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/train"
	"github.com/surgeon-ml/surgeon/plugins/builtin/lora"
	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

// storiesPath is the stories260K fixture, relative to this package.
const storiesPath = "../../../../shared/fixtures/stories260K-gguf/stories260K.gguf"

// Optimiser settings shared with the PyTorch peer (torch.optim.AdamW).
const (
	lr          = 1e-4
	beta1       = 0.9
	beta2       = 0.999
	eps         = 1e-8
	weightDecay = 0.01
)

// setup is a model ready to train: LoRA attached, trainable parameters
// collected. Benchmarks build it once per process (the testing package calls
// a benchmark function more than once), so that peak RSS counts one model.
type setup struct {
	m      model.Model
	params []*nn.Param
	opt    *train.AdamW
	warm   bool // a first step has run (pools, pages, optimiser state)
}

// loraTargets returns LoRA r=8, alpha=16 targets for every slot whose path
// ends with one of suffixes.
func loraTargets(m nn.Model, suffixes ...string) []attach.Target {
	var ts []attach.Target
	for _, mod := range layer.Modules(m) {
		if _, ok := mod.Model.(*layer.Slot); !ok {
			continue
		}
		for _, s := range suffixes {
			if strings.HasSuffix(mod.Path, "."+s) {
				ts = append(ts, attach.Target{Path: mod.Path, Adapter: "lora", Config: map[string]any{"r": 8, "lora_alpha": 16.0}})
			}
		}
	}
	return ts
}

// trainable returns the parameters that require gradients, in model order.
func trainable(m nn.Model) []*nn.Param {
	var out []*nn.Param
	seen := map[*nn.Param]bool{}
	for _, p := range layer.Params(m) {
		if p.Param.RequiresGrad() && !seen[p.Param] {
			seen[p.Param] = true
			out = append(out, p.Param)
		}
	}
	return out
}

// peakRSSMiB returns the process's peak resident set size (VmHWM) in MiB,
// or -1 where /proc is not available.
func peakRSSMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return -1
			}
			return kb / 1024
		}
	}
	return -1
}

// step runs one training step: forward, cross-entropy, deterministic
// backward, AdamW update (which also clears the gradients).
func (s *setup) step(b *testing.B, batch model.Batch, targets []int) {
	logits, err := s.m.Logits(batch)
	if err != nil {
		b.Fatal(err)
	}
	if err := ops.Backward(ops.CrossEntropy(logits, targets)); err != nil {
		b.Fatal(err)
	}
	s.opt.Step(lr)
	if gcTuner != nil {
		gcTuner.Step()
	}
}

// gcTuner sets the collector's target as train.Run does.
var gcTuner *train.GCTuner

// warmUp runs one untimed step the first time it is called.
func (s *setup) warmUp(b *testing.B, batch model.Batch, targets []int) {
	if !s.warm {
		gcTuner = train.TuneGC() // as train.Run does; kept for the rest of the process
		s.step(b, batch, targets)
		s.warm = true
	}
}

// BERT-base as in bert-base-uncased's config.json, with two labels.
var bertBase = &bert.Config{
	ModelType: "bert", VocabSize: 30522, HiddenSize: 768, NumHiddenLayers: 12,
	NumAttentionHeads: 12, IntermediateSize: 3072, HiddenAct: "gelu",
	MaxPositionEmbeddings: 512, TypeVocabSize: 2, LayerNormEps: 1e-12, NumLabels: 2,
}

var (
	bertOnce  sync.Once
	bertSetup *setup
	bertErr   error
)

func newBERTSetup(b testing.TB) (*setup, error) {
	m := bert.New(bertBase)
	// Weights and embeddings ~ N(0, 0.02) (initializer_range); LayerNorm
	// stays at scale 1, shift 0, and biases at 0, as Hugging Face initialises.
	r := rand.New(rand.NewPCG(7, 7))
	for _, p := range layer.Params(m) {
		if strings.HasSuffix(p.Path, ".weight") && !strings.Contains(p.Path, "LayerNorm") {
			for i, d := 0, ops.Data(p.Param); i < len(d); i++ {
				d[i] = float32(r.NormFloat64() * 0.02)
			}
		}
	}
	layer.Freeze(m, true)
	planner := sdktest.Connect(b, lora.Adapters()...)
	if _, err := attach.Attach(context.Background(), m, planner, loraTargets(m, "query", "value"), 1); err != nil {
		return nil, err
	}
	base := m.Classifier.Base()
	base.Weight.SetRequiresGrad(true)
	base.Bias.SetRequiresGrad(true)
	params := trainable(m)
	return &setup{m: m, params: params, opt: train.NewAdamW(params, beta1, beta2, eps, weightDecay)}, nil
}

// BenchmarkLoRAStepBERTBase measures one LoRA training step (r=8, alpha=16
// on query and value; the classifier trainable; AdamW) of a BERT-base-shaped
// encoder with random weights on a batch of 8 x 128 tokens: seconds per step
// and the process's peak RSS. Run it alone in a fresh process for the RSS to
// mean anything:
//
//	go test -run XXX -bench LoRAStepBERTBase -benchtime 3x ./tools/bench/gobench
func BenchmarkLoRAStepBERTBase(b *testing.B) {
	bertOnce.Do(func() { bertSetup, bertErr = newBERTSetup(b) })
	if bertErr != nil {
		b.Fatal(bertErr)
	}
	s := bertSetup
	const batchSize, seqLen = 8, 128
	seqs := make([][]int, batchSize)
	labels := make([]int, batchSize)
	for i := range seqs {
		for t := 0; t < seqLen; t++ {
			seqs[i] = append(seqs[i], 1000+(i*131+t*17)%29000)
		}
		labels[i] = i % 2
	}
	batch := model.NewBatch(seqs, 0)
	s.warmUp(b, batch, labels)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.step(b, batch, labels)
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/step")
	b.ReportMetric(float64(b.N*batchSize*seqLen)/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric(peakRSSMiB(), "peak-RSS-MiB")
	b.ReportMetric(float64(len(s.params)), "trainable-tensors")
}

var (
	storiesOnce  sync.Once
	storiesSetup *setup
	storiesErr   error
)

func newStoriesSetup(b *testing.B) (*setup, error) {
	l, err := checkpoint.Load(storiesPath)
	if err != nil {
		return nil, err
	}
	m := l.Model.(*llama.Model)
	layer.Freeze(m, true)
	planner := sdktest.Connect(b, lora.Adapters()...)
	if _, err := attach.Attach(context.Background(), m, planner, loraTargets(m, "q_proj", "v_proj"), 1); err != nil {
		return nil, err
	}
	params := trainable(m)
	return &setup{m: m, params: params, opt: train.NewAdamW(params, beta1, beta2, eps, weightDecay)}, nil
}

// BenchmarkLoRATrainStories measures LoRA fine-tuning throughput of
// stories260K as a causal LM (r=8, alpha=16 on q_proj and v_proj; AdamW) on
// batches of 32 x 64 tokens, each position predicting the next token, in
// tokens/s.
func BenchmarkLoRATrainStories(b *testing.B) {
	if _, err := os.Stat(storiesPath); err != nil {
		b.Skipf("stories260K fixture missing: %v", err)
	}
	storiesOnce.Do(func() { storiesSetup, storiesErr = newStoriesSetup(b) })
	if storiesErr != nil {
		b.Fatal(storiesErr)
	}
	s := storiesSetup
	const batchSize, seqLen = 32, 64
	seqs := make([][]int, batchSize)
	var targets []int
	for i := range seqs {
		for t := 0; t < seqLen; t++ {
			seqs[i] = append(seqs[i], (i*31+t*7)%512)
		}
		for t := 0; t < seqLen; t++ {
			if t+1 < seqLen {
				targets = append(targets, seqs[i][t+1])
			} else {
				targets = append(targets, -1)
			}
		}
	}
	batch := model.NewBatch(seqs, 0)
	s.warmUp(b, batch, targets)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.step(b, batch, targets)
	}
	b.ReportMetric(float64(b.N*batchSize*seqLen)/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/step")
	b.ReportMetric(peakRSSMiB(), "peak-RSS-MiB")
}
