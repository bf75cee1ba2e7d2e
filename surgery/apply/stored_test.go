package apply

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
)

// Training with model.weights = "stored" (a BF16 Hugging Face folder's
// linear weights memory-mapped, filled one product at a time) follows the
// float32-loaded run: losses and metrics equal to 1e-5 relative and the
// saved adapter to 1e-4 of each tensor's largest value after its 10 steps (the stored base runs its product and the low-rank term as two
// operators where the float32 one fuses them, so sums round in another
// order); the memory estimate counts one layer of float32 weights instead
// of all of them. The same holds for the model as a Q8_0 GGUF, its blocks
// kept quantized (QLoRA), against the float32 load of its dequantized
// weights.
func near(a, b float64) bool { return math.Abs(a-b) <= 1e-5*math.Max(1e-3, math.Abs(a)) }

func TestStoredWeightsTrainTheSame(t *testing.T) {
	needFixtures(t)
	l, err := checkpoint.Load(fixtures + "/stories260K-gguf/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "base")
	extra, err := checkpoint.TokenizerFiles(l)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.SaveHF(base, l.Model, checkpoint.SaveOptions{DType: tensor.BF16, Extra: extra}); err != nil {
		t.Fatal(err)
	}
	// QLoRA: the same model as Q8_0 GGUF trains with its blocks kept
	// quantized (multiplied in place, dequantized for backward) as with
	// the float32 load of the dequantized weights.
	q8 := filepath.Join(t.TempDir(), "q8.gguf")
	if err := checkpoint.SaveGGUF(q8, l, "q8_0"); err != nil {
		t.Fatal(err)
	}
	t.Run("bf16-folder", func(t *testing.T) { storedTrainsTheSame(t, base) })
	t.Run("q8_0-gguf", func(t *testing.T) { storedTrainsTheSame(t, q8) })
}

func storedTrainsTheSame(t *testing.T, base string) {
	run := func(weights string) (*Report, []byte, Memory) {
		out := filepath.Join(t.TempDir(), "out")
		body := smallRecipe("\n[output]\ndir = \"" + out + "\"\n")
		r, err := prepare(t, writeRecipe(t, body), "model.path="+base, "model.weights="+weights, "data.max_examples=200")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		mem := r.estimateMemory()
		// Weights: the float32 parameters plus one stored weight
		// (the largest) filled at a time, each counted once.
		var total, stored, largest int64
		for _, p := range layer.Params(r.Model) {
			total += int64(p.Param.Size())
		}
		for _, s := range layer.Storables(r.Model) {
			n := int64(s.WeightParam().Size())
			if s.Stored() != nil {
				stored += n
				largest = max(largest, n)
			}
		}
		if want := 4 * (total - stored + largest); mem.Weights != want || mem.Weights <= 0 {
			t.Fatalf("%s: weights estimated at %d bytes, want %d", weights, mem.Weights, want)
		}
		rep, err := r.Execute(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(out, "adapter", "adapter_model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return rep, raw, mem
	}
	f32, f32Adapter, f32Mem := run("f32")
	st, stAdapter, stMem := run("stored")
	for i := range f32.Epochs {
		a, b := f32.Epochs[i], st.Epochs[i]
		if !near(a.Loss, b.Loss) || !reflect.DeepEqual(a.Metrics, b.Metrics) {
			t.Fatalf("epoch %d: stored %+v, f32 %+v", i, b, a)
		}
	}
	if !reflect.DeepEqual(f32.After, st.After) {
		t.Fatalf("metrics after: stored %v, f32 %v", st.After, f32.After)
	}
	fa, err := safetensors.Parse(f32Adapter)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := safetensors.Parse(stAdapter)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fa.Names(), sa.Names()) {
		t.Fatalf("adapter tensors %v, f32 %v", sa.Names(), fa.Names())
	}
	for _, name := range fa.Names() {
		x, _ := fa.Float32(name)
		y, _ := sa.Float32(name)
		var scale, diff float64
		for i := range x {
			scale = math.Max(scale, math.Abs(float64(x[i])))
			diff = math.Max(diff, math.Abs(float64(x[i]-y[i])))
		}
		if diff > 1e-4*scale {
			t.Fatalf("%s: stored and f32 differ by up to %g, %g of the largest value", name, diff, diff/scale)
		}
	}
	if stMem.Weights >= f32Mem.Weights {
		t.Fatalf("memory estimate of stored weights %d, float32 %d", stMem.Weights, f32Mem.Weights)
	}
	// The stored linears are mapped from the file, in fewer bytes than
	// float32 holds the whole model in.
	if f32Mem.Mapped != 0 || stMem.Mapped <= 0 || stMem.Mapped >= f32Mem.Weights {
		t.Fatalf("mapped bytes: stored %d, float32 %d", stMem.Mapped, f32Mem.Mapped)
	}
}

// train.gradient_checkpointing trains exactly as without it (same losses,
// metrics and adapter bytes), recomputing blocks in backward; with adapter
// dropout it is refused before training.
func TestGradientCheckpointingTrainsTheSame(t *testing.T) {
	needFixtures(t)
	run := func(sets ...string) (*Report, []byte) {
		out := filepath.Join(t.TempDir(), "out")
		r, err := prepare(t, writeRecipe(t, smallRecipe("\n[output]\ndir = \""+out+"\"\n")), append(sets, "data.max_examples=200")...)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rep, err := r.Execute(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(out, "adapter", "adapter_model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return rep, raw
	}
	plain, a := run()
	before := ops.Recomputed()
	ckpt, b := run("train.gradient_checkpointing=true")
	if ops.Recomputed() == before {
		t.Fatal("no block was recomputed")
	}
	if !reflect.DeepEqual(plain.Epochs, ckpt.Epochs) || !bytes.Equal(a, b) {
		t.Fatalf("checkpointed run %+v differs from %+v (or its adapter does)", ckpt.Epochs, plain.Epochs)
	}
	before = ops.Recomputed()
	first, c := run("train.gradient_checkpointing=true", "train.checkpoint_blocks=1")
	if ops.Recomputed() == before {
		t.Fatal("checkpoint_blocks = 1: no block was recomputed")
	}
	if !reflect.DeepEqual(plain.Epochs, first.Epochs) || !bytes.Equal(a, c) {
		t.Fatalf("run checkpointing its first block %+v differs from %+v (or its adapter does)", first.Epochs, plain.Epochs)
	}
	_, err := prepare(t, writeRecipe(t, smallRecipe("")), "train.gradient_checkpointing=true", "targets.0.config.lora_dropout=0.1")
	if err == nil || !strings.Contains(err.Error(), "gradient_checkpointing") || !strings.Contains(err.Error(), "draw other masks") {
		t.Fatalf("checkpointing with dropout: %v", err)
	}
}

// With model.weights = "stored", a module trained fully (the classifier
// head a checkpoint already has, modules_to_save; the word embeddings,
// a table otherwise read by rows from the file) is read into memory and
// trains as with float32 weights: the saved head and table equal the
// float32 run's and are not the zeros the unread parameters hold.
func TestStoredWeightsTrainSavedModules(t *testing.T) {
	dir := t.TempDir()
	var data strings.Builder
	for i := range 24 {
		text := []string{"the bad cat", "a fine dog", "the good bird"}[i%3]
		data.WriteString(`{"text": "` + text + `", "label": ` + []string{`"negative"`, `"neutral"`, `"positive"`}[i%3] + "}\n")
	}
	bert, err := filepath.Abs("../../core/testdata/reference/bert-f32") // paths are relative to the recipe
	if err != nil {
		t.Fatal(err)
	}
	train := filepath.Join(dir, "train.jsonl")
	if err := os.WriteFile(train, []byte(data.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(weights string) *safetensors.File {
		out := filepath.Join(t.TempDir(), "out")
		r, err := prepare(t, writeRecipe(t, `
[model]
path = "`+bert+`"
task = "sequence-classification"
labels = ["negative", "neutral", "positive"]
weights = "`+weights+`"
max_length = 16

[data]
train = "`+train+`"
test_fraction = 0.25

[[targets]]
modules = ["query", "value"]
config = { r = 2, lora_alpha = 4 }

[train]
epochs = 1
batch_size = 6
lr = 1e-2
modules_to_save = ["classifier", "word_embeddings"]

[output]
dir = "`+out+`"
`))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, err := r.Execute(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(out, "adapter", "adapter_model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := safetensors.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f32, st := run("f32"), run("stored")
	var names []string
	for _, n := range f32.Names() {
		if strings.Contains(n, "classifier") && strings.HasSuffix(n, "weight") || strings.Contains(n, "word_embeddings") {
			names = append(names, n)
		}
	}
	if len(names) != 2 {
		t.Fatalf("saved head and table: %v (tensors %v)", names, f32.Names())
	}
	for _, name := range names {
		x, err := f32.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		y, err := st.Float32(name)
		if err != nil {
			t.Fatalf("%v (tensors %v)", err, st.Names())
		}
		var scale, diff float64
		for i := range x {
			scale = math.Max(scale, math.Abs(float64(x[i])))
			diff = math.Max(diff, math.Abs(float64(x[i]-y[i])))
		}
		if scale == 0 || diff > 1e-4*scale {
			t.Fatalf("%s: stored and f32 differ by up to %g (largest value %g)", name, diff, scale)
		}
	}
}
