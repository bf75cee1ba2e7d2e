// Package recipe reads the TOML recipes that drive `surgeon apply`, `plan`
// and `sweep`: which model and data to use, which modules to adapt and how,
// how to train and evaluate, and where to write the results.
//
// Recipes are decoded strictly. An unknown key or a value of the wrong type
// is an error that points at its line and column in the file, and values
// are checked before anything runs, so a typo costs a second, not a
// training run. Command-line overrides (`--set train.lr=1e-4`) are applied
// to the document before it is checked. recipes/README.md documents every
// key.
package recipe

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Tasks a recipe can train a model for.
const (
	TaskCausalLM               = "causal-lm"
	TaskSequenceClassification = "sequence-classification"
)

// Training modes (train.mode).
const (
	// ModeAdapter trains adapters attached to the target modules (and the
	// modules listed in train.modules_to_save); the base model stays frozen.
	ModeAdapter = "adapter"
	// ModeFull trains every parameter of the model.
	ModeFull = "full"
	// ModeHead trains only the task head (score, classifier or lm_head) and
	// the modules listed in train.modules_to_save.
	ModeHead = "head"
)

// Recipe is a decoded recipe file with defaults applied.
type Recipe struct {
	Model   Model         `toml:"model" json:"model"`
	Data    Data          `toml:"data" json:"data"`
	Targets []TargetGroup `toml:"targets" json:"targets"`
	Train   Train         `toml:"train" json:"train"`
	Eval    Eval          `toml:"eval" json:"eval"`
	Output  Output        `toml:"output" json:"output"`
	// Sweep is the raw [sweep] table; package sweep interprets it.
	Sweep map[string]any `toml:"sweep" json:"sweep,omitempty"`

	// Path is the recipe file as given to Load.
	Path string `toml:"-" json:"-"`
	// Dir is the absolute directory of the recipe file; relative paths in
	// the recipe are relative to it (see Resolve).
	Dir string `toml:"-" json:"-"`
}

// Model says which checkpoint to start from and what it is trained for.
type Model struct {
	// Path is a local file or folder, relative to the recipe file, or a hub
	// address hf://owner/repo/path.
	Path string `toml:"path" json:"path"`
	// Task is TaskCausalLM or TaskSequenceClassification.
	Task string `toml:"task" json:"task"`
	// Labels are the class names in label-id order (classification only).
	Labels []string `toml:"labels" json:"labels,omitempty"`
	// MaxLength is the maximum number of tokens per example.
	MaxLength int `toml:"max_length" json:"max_length"`
	// Weights says how frozen linear weights are held: WeightsF32 (read
	// into float32 memory, the default) or WeightsStored (a Hugging Face
	// folder's or llama GGUF file's weights stay memory-mapped in their
	// dtype, quantized blocks included, and are
	// converted one layer at a time while a product runs; same results,
	// a fraction of the memory, for adapter training on large models).
	Weights string `toml:"weights" json:"weights,omitempty"`
}

// The values of model.weights.
const (
	WeightsF32    = "f32"
	WeightsStored = "stored"
)

// Data says where the examples come from and how to read them.
type Data struct {
	// Train, Validation and Test are data files relative to the recipe
	// file. Train is required.
	Train      string `toml:"train" json:"train"`
	Validation string `toml:"validation" json:"validation,omitempty"`
	Test       string `toml:"test" json:"test,omitempty"`
	// Format is jsonl, json, csv, tsv or text; by default it follows the
	// extension of Train.
	Format string `toml:"format" json:"format"`
	// TextField and LabelField name the fields (or csv/tsv columns) that
	// hold the text and the label.
	TextField  string `toml:"text_field" json:"text_field"`
	LabelField string `toml:"label_field" json:"label_field"`
	// Header says whether the first line of a csv/tsv file names the
	// columns. Load always sets it.
	Header *bool `toml:"header" json:"header"`
	// ValidationFraction and TestFraction split Train when the
	// corresponding file is absent.
	ValidationFraction float64 `toml:"validation_fraction" json:"validation_fraction"`
	TestFraction       float64 `toml:"test_fraction" json:"test_fraction"`
	// Seed drives the split and the shuffling of examples.
	Seed int64 `toml:"seed" json:"seed"`
	// Separator splits "text" files into documents: "" takes the whole
	// file as one document (cut into chunks); otherwise a line equal to
	// Separator ("%") or the string itself ("\n\n") separates documents.
	Separator string `toml:"separator" json:"separator,omitempty"`
	// MaxExamples caps the number of examples read (0: all).
	MaxExamples int `toml:"max_examples" json:"max_examples"`
	// AddBOS and AddEOS override the tokenizer's own settings for the
	// special tokens put around each text (nil: follow the tokenizer).
	AddBOS *bool `toml:"add_bos" json:"add_bos,omitempty"`
	AddEOS *bool `toml:"add_eos" json:"add_eos,omitempty"`
}

// TargetGroup selects modules of the model and the adapter to attach to
// them. Package target does the selection.
type TargetGroup struct {
	// Name identifies the group in errors and reports. Default "targets.N".
	Name string `toml:"name" json:"name"`
	// Adapter is the adapter type, provided by a plugin. Default
	// DefaultAdapter.
	Adapter string `toml:"adapter" json:"adapter"`
	// Modules are globs over dotted module paths: '*' matches within a
	// path segment, '**' across segments, and a glob without a dot also
	// matches the last segment ("q_proj").
	Modules []string `toml:"modules" json:"modules,omitempty"`
	// Regex is a Go regular expression that must match a whole path.
	Regex string `toml:"regex" json:"regex,omitempty"`
	// Layers restricts the group to modules of the listed layer indices,
	// e.g. "0-3,5".
	Layers string `toml:"layers" json:"layers,omitempty"`
	// Kinds are the module kinds eligible ("linear", "embedding", "norm").
	// Default ["linear"].
	Kinds []string `toml:"kinds" json:"kinds"`
	// Exclude are globs of modules never selected by this group.
	Exclude []string `toml:"exclude" json:"exclude,omitempty"`
	// Config is the adapter configuration (r, lora_alpha, ...).
	Config map[string]any `toml:"config" json:"config,omitempty"`
	// Overrides change Config for the modules matching their pattern;
	// later overrides win.
	Overrides []Override `toml:"overrides" json:"overrides,omitempty"`
}

// Override changes the adapter configuration of some modules of a group.
type Override struct {
	// Pattern is a glob over module paths, as in TargetGroup.Modules.
	Pattern string `toml:"pattern" json:"pattern"`
	// Config is merged over the group's Config.
	Config map[string]any `toml:"config" json:"config,omitempty"`
}

// Train holds the optimisation settings.
type Train struct {
	Mode        string  `toml:"mode" json:"mode"`
	Epochs      int     `toml:"epochs" json:"epochs"`
	MaxSteps    int     `toml:"max_steps" json:"max_steps"`
	BatchSize   int     `toml:"batch_size" json:"batch_size"`
	GradAccum   int     `toml:"grad_accum" json:"grad_accum"`
	LR          float64 `toml:"lr" json:"lr"`
	WeightDecay float64 `toml:"weight_decay" json:"weight_decay"`
	// Warmup is the fraction of optimizer steps spent warming up;
	// WarmupSteps, when > 0, gives the count directly and wins.
	Warmup      float64 `toml:"warmup" json:"warmup"`
	WarmupSteps int     `toml:"warmup_steps" json:"warmup_steps"`
	Schedule    string  `toml:"schedule" json:"schedule"`
	// MaxGradNorm clips the global gradient norm; 0 disables clipping.
	MaxGradNorm float64 `toml:"max_grad_norm" json:"max_grad_norm"`
	Seed        int64   `toml:"seed" json:"seed"`
	// ModulesToSave are module paths or globs trained fully next to the
	// adapters (PEFT's modules_to_save), typically the head.
	ModulesToSave []string `toml:"modules_to_save" json:"modules_to_save,omitempty"`
	Beta1         float64  `toml:"beta1" json:"beta1"`
	Beta2         float64  `toml:"beta2" json:"beta2"`
	Eps           float64  `toml:"eps" json:"eps"`
	// CheckpointEvery is the checkpoint interval in optimizer steps; 0
	// checkpoints at the end of each epoch.
	CheckpointEvery int `toml:"checkpoint_every" json:"checkpoint_every"`
	// SeqLen is the causal-LM chunk length; defaults to Model.MaxLength.
	SeqLen int `toml:"seq_len" json:"seq_len"`
	// StepsPerEpoch, when > 0 (causal-LM), makes an epoch that many batches
	// of random windows instead of one pass over the chunks.
	StepsPerEpoch int `toml:"steps_per_epoch" json:"steps_per_epoch"`
	// GradientCheckpointing keeps only each block's input for the
	// backward pass and runs the block again there: activation memory of
	// one block instead of all, for about a third more compute. Adapters
	// must have no dropout (a block run twice must draw the same values).
	GradientCheckpointing bool `toml:"gradient_checkpointing" json:"gradient_checkpointing,omitempty"`
	// CheckpointBlocks, when > 0 with GradientCheckpointing, checkpoints
	// only the model's first CheckpointBlocks blocks; the others keep
	// their activations. Fewer blocks run twice, for more memory: a
	// budget between no checkpointing and all of it (Megatron's
	// recompute-num-layers). 0 checkpoints every block.
	CheckpointBlocks int `toml:"checkpoint_blocks" json:"checkpoint_blocks,omitempty"`
}

// Eval holds the evaluation settings.
type Eval struct {
	BatchSize int `toml:"batch_size" json:"batch_size"`
	// Metrics to report; see ClassificationMetrics and CausalLMMetrics.
	Metrics []string `toml:"metrics" json:"metrics"`
	// Split is the split evaluated after training: "test", "validation"
	// or "train".
	Split       string `toml:"split" json:"split"`
	MaxExamples int    `toml:"max_examples" json:"max_examples"`
}

// Output says where results go.
type Output struct {
	// Dir is the run directory, relative to the recipe file.
	Dir string `toml:"dir" json:"dir"`
	// SaveMerged also writes the model with the adapters merged in.
	SaveMerged bool `toml:"save_merged" json:"save_merged"`
	// SaveNative also writes the model in spago's native format.
	SaveNative bool `toml:"save_native" json:"save_native"`
	// Overwrite allows writing into a non-empty Dir.
	Overwrite bool `toml:"overwrite" json:"overwrite"`
}

// Metrics each task can report (eval.metrics).
var (
	ClassificationMetrics = []string{"accuracy", "f1", "f1_positive"}
	CausalLMMetrics       = []string{"perplexity", "loss"}
)

// Kinds of modules a target group can select (targets.kinds).
var Kinds = []string{"linear", "embedding", "norm"}

// Formats of data files (data.format), and the extension each is inferred
// from.
var Formats = map[string]string{".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".txt": "text"}

// defaults returns a recipe holding every default that does not depend on
// other values; decoding overwrites what the file sets.
func defaults() *Recipe {
	header := true
	return &Recipe{
		Model: Model{MaxLength: 128},
		Data:  Data{TextField: "text", LabelField: "label", Header: &header, Seed: 42},
		Train: Train{
			Mode: ModeAdapter, Epochs: 3, BatchSize: 16, GradAccum: 1, LR: 1e-3,
			Warmup: 0.06, Schedule: "linear", MaxGradNorm: 1.0, Seed: 42,
			Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
		},
		Eval: Eval{BatchSize: 64},
	}
}

// derive fills the defaults that depend on other values.
func (r *Recipe) derive() {
	if r.Data.Format == "" {
		r.Data.Format = Formats[strings.ToLower(filepath.Ext(r.Data.Train))]
	}
	if r.Data.Header == nil {
		h := true
		r.Data.Header = &h
	}
	for i := range r.Targets {
		g := &r.Targets[i]
		if g.Name == "" {
			g.Name = fmt.Sprintf("targets.%d", i)
		}
		if g.Adapter == "" {
			g.Adapter = DefaultAdapter
		}
		if len(g.Kinds) == 0 {
			g.Kinds = []string{"linear"}
		}
	}
	if r.Train.SeqLen == 0 {
		r.Train.SeqLen = r.Model.MaxLength
	}
	if r.Eval.Metrics == nil {
		switch r.Model.Task {
		case TaskSequenceClassification:
			r.Eval.Metrics = []string{"accuracy", "f1"}
		case TaskCausalLM:
			r.Eval.Metrics = []string{"perplexity"}
		}
	}
	if r.Eval.Split == "" {
		r.Eval.Split = "validation"
		if r.Data.Test != "" || r.Data.TestFraction > 0 {
			r.Eval.Split = "test"
		}
	}
	if r.Output.Dir == "" && r.Path != "" {
		stem := strings.TrimSuffix(filepath.Base(r.Path), filepath.Ext(r.Path))
		r.Output.Dir = filepath.ToSlash(filepath.Join("runs", stem))
	}
}

// Resolve returns p relative to the recipe's directory. Hub addresses
// (hf://...), absolute paths and "" are returned unchanged.
func (r *Recipe) Resolve(p string) string {
	if p == "" || strings.HasPrefix(p, "hf://") || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.Dir, filepath.FromSlash(p))
}

// HasSplit reports whether the data defines the named split ("train",
// "validation" or "test"), as a file or as a fraction of Train.
func (d *Data) HasSplit(name string) bool {
	switch name {
	case "train":
		return d.Train != ""
	case "validation":
		return d.Validation != "" || d.ValidationFraction > 0
	case "test":
		return d.Test != "" || d.TestFraction > 0
	}
	return false
}

// Hash returns the hex sha256 of the canonical recipe: its JSON encoding
// with defaults applied, independent of the file's formatting, comments
// and location. Reports use it to tell runs of different recipes apart.
func (r *Recipe) Hash() string {
	b, err := json.Marshal(r)
	if err != nil {
		// Non-finite floats (TOML allows nan and inf) have no JSON form:
		// spell them as strings and encode again.
		b, err = json.Marshal(finite(reflect.ValueOf(*r)))
		if err != nil {
			b = []byte(err.Error())
		}
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// finite converts v into plain maps, slices and scalars named as in JSON,
// with non-finite floats written as strings.
func finite(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return finite(v.Elem())
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return f
	case reflect.Struct:
		if _, ok := v.Interface().(time.Time); ok {
			return v.Interface()
		}
		m := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			if name != "-" && v.Type().Field(i).IsExported() {
				m[name] = finite(v.Field(i))
			}
		}
		return m
	case reflect.Map:
		m := map[string]any{}
		for _, k := range v.MapKeys() {
			m[fmt.Sprint(k.Interface())] = finite(v.MapIndex(k))
		}
		return m
	case reflect.Slice, reflect.Array:
		s := make([]any, v.Len())
		for i := range s {
			s[i] = finite(v.Index(i))
		}
		return s
	case reflect.Invalid:
		return nil
	}
	return v.Interface()
}

// DefaultAdapter is the adapter component of a target group that names
// none (the LoRA plugin's).
const DefaultAdapter = "lora"
