package recipe

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// validate checks every value; defined holds the keys the document sets.
func (r *Recipe) validate(defined map[string]bool) error {
	var errs errorList
	bad := func(key, format string, args ...any) {
		errs.add(&Error{File: r.Path, Key: key, Msg: key + ": " + fmt.Sprintf(format, args...)})
	}
	oneOf := func(key, v string, allowed ...string) {
		if !slices.Contains(allowed, v) {
			bad(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
		}
	}
	finite := func(key string, v float64) bool {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			bad(key, "must be a finite number, got %v", v)
			return false
		}
		return true
	}
	atLeast := func(key string, v, lo int) {
		if v < lo {
			bad(key, "must be >= %d, got %d", lo, v)
		}
	}

	// [model]
	m := &r.Model
	if m.Path == "" {
		bad("model.path", "required: a model file or folder, or hf://owner/repo/path")
	}
	switch m.Task {
	case "":
		bad("model.task", "required: %q or %q", TaskCausalLM, TaskSequenceClassification)
	case TaskSequenceClassification:
		if len(m.Labels) == 0 {
			bad("model.labels", "required for %s: the class names in label-id order", m.Task)
		} else if len(m.Labels) < 2 {
			bad("model.labels", "needs at least 2 classes, got %d", len(m.Labels))
		}
		seen := map[string]bool{}
		for i, l := range m.Labels {
			switch {
			case strings.TrimSpace(l) == "":
				bad(fmt.Sprintf("model.labels.%d", i), "empty label")
			case seen[l]:
				bad(fmt.Sprintf("model.labels.%d", i), "duplicate label %q", l)
			}
			seen[l] = true
		}
	case TaskCausalLM:
		if len(m.Labels) > 0 {
			bad("model.labels", "only for %s", TaskSequenceClassification)
		}
	default:
		oneOf("model.task", m.Task, TaskCausalLM, TaskSequenceClassification)
	}
	atLeast("model.max_length", m.MaxLength, 1)
	if m.Weights != "" {
		oneOf("model.weights", m.Weights, WeightsF32, WeightsStored)
	}
	if m.Weights == WeightsStored && r.Train.Mode == ModeFull {
		bad("model.weights", "%q keeps the base weights frozen where they are stored; train.mode = %q trains them (use %q)", WeightsStored, ModeFull, WeightsF32)
	}

	// [data]
	dt := &r.Data
	formats := []string{"jsonl", "json", "csv", "tsv", "text"}
	if dt.Train == "" {
		bad("data.train", "required: the training data file")
	}
	if defined["data.format"] {
		oneOf("data.format", dt.Format, formats...)
	} else if dt.Train != "" {
		for _, f := range []struct{ key, file string }{{"data.train", dt.Train}, {"data.validation", dt.Validation}, {"data.test", dt.Test}} {
			if f.file == "" {
				continue
			}
			ext := strings.ToLower(filepath.Ext(f.file))
			got, ok := Formats[ext]
			switch {
			case ext == "":
				bad(f.key, "%q has no extension: set data.format (%s)", f.file, strings.Join(formats, ", "))
			case !ok:
				bad(f.key, "cannot tell the format of %q from its extension: set data.format (%s)", f.file, strings.Join(formats, ", "))
			case got != dt.Format && dt.Format != "":
				bad(f.key, "%q is %s but data.train is %s: set data.format or use one format", f.file, got, dt.Format)
			}
		}
	}
	if dt.TextField == "" {
		bad("data.text_field", "must not be empty")
	}
	if dt.LabelField == "" && m.Task == TaskSequenceClassification {
		bad("data.label_field", "must not be empty")
	}
	if defined["data.separator"] && dt.Format != "text" && dt.Format != "" {
		bad("data.separator", "only for text files (data.format = \"text\"), the format is %s", dt.Format)
	}
	if defined["data.header"] && dt.Format != "csv" && dt.Format != "tsv" && dt.Format != "" {
		bad("data.header", "only for csv and tsv files, the format is %s", dt.Format)
	}
	fracOK := true
	for _, f := range []struct {
		key  string
		v    float64
		file string
		fkey string
	}{{"data.validation_fraction", dt.ValidationFraction, dt.Validation, "data.validation"}, {"data.test_fraction", dt.TestFraction, dt.Test, "data.test"}} {
		if !finite(f.key, f.v) {
			fracOK = false
			continue
		}
		if f.v < 0 || f.v >= 1 {
			bad(f.key, "must be in [0, 1), got %v", f.v)
			fracOK = false
		}
		if f.v > 0 && f.file != "" {
			bad(f.key, "cannot be combined with %s: split the training file or give a file, not both", f.fkey)
		}
	}
	if fracOK && dt.ValidationFraction+dt.TestFraction >= 1 {
		bad("data.validation_fraction", "plus data.test_fraction must be < 1 (nothing left to train on), got %v", dt.ValidationFraction+dt.TestFraction)
	}
	atLeast("data.max_examples", dt.MaxExamples, 0)

	// [[targets]]
	tr := &r.Train
	switch tr.Mode {
	case ModeAdapter:
		if len(r.Targets) == 0 {
			bad("targets", "at least one [[targets]] group is required when train.mode is %q", ModeAdapter)
		}
	case ModeFull, ModeHead:
		if len(r.Targets) > 0 {
			bad("targets", "train.mode %q attaches no adapters: remove the [[targets]] groups or use mode %q", tr.Mode, ModeAdapter)
		}
	default:
		oneOf("train.mode", tr.Mode, ModeAdapter, ModeFull, ModeHead)
	}
	names := map[string]int{}
	for i, g := range r.Targets {
		k := func(s string) string { return fmt.Sprintf("targets.%d.%s", i, s) }
		if j, dup := names[g.Name]; dup {
			bad(k("name"), "%q is also the name of targets.%d", g.Name, j)
		}
		names[g.Name] = i
		for j, p := range g.Modules {
			if strings.TrimSpace(p) == "" {
				bad(fmt.Sprintf("%s.%d", k("modules"), j), "empty pattern")
			}
		}
		if g.Regex != "" {
			if _, err := regexp.Compile(g.Regex); err != nil {
				errs.add(&Error{File: r.Path, Key: k("regex"), Msg: fmt.Sprintf("%s: %v", k("regex"), err), Err: err})
			}
		}
		for j, kind := range g.Kinds {
			if !slices.Contains(Kinds, kind) {
				bad(fmt.Sprintf("%s.%d", k("kinds"), j), "%q is not one of %s", kind, strings.Join(Kinds, ", "))
			}
		}
		for j, p := range g.Exclude {
			if strings.TrimSpace(p) == "" {
				bad(fmt.Sprintf("%s.%d", k("exclude"), j), "empty pattern")
			}
		}
		for j, o := range g.Overrides {
			if strings.TrimSpace(o.Pattern) == "" {
				bad(fmt.Sprintf("%s.%d.pattern", k("overrides"), j), "required: a glob of the modules to configure")
			}
		}
	}

	// [train]
	if tr.Epochs < 0 {
		bad("train.epochs", "must be >= 0, got %d", tr.Epochs)
	}
	if tr.MaxSteps < 0 {
		bad("train.max_steps", "must be >= 0, got %d", tr.MaxSteps)
	}
	if tr.Epochs < 1 && tr.MaxSteps < 1 {
		bad("train.epochs", "train.epochs or train.max_steps must be >= 1")
	}
	atLeast("train.batch_size", tr.BatchSize, 1)
	atLeast("train.grad_accum", tr.GradAccum, 1)
	if finite("train.lr", tr.LR) && tr.LR <= 0 {
		bad("train.lr", "must be > 0, got %v", tr.LR)
	}
	if finite("train.weight_decay", tr.WeightDecay) && tr.WeightDecay < 0 {
		bad("train.weight_decay", "must be >= 0, got %v", tr.WeightDecay)
	}
	if finite("train.warmup", tr.Warmup) && (tr.Warmup < 0 || tr.Warmup >= 1) {
		bad("train.warmup", "must be a fraction of the steps in [0, 1), got %v", tr.Warmup)
	}
	atLeast("train.warmup_steps", tr.WarmupSteps, 0)
	if defined["train.warmup"] && defined["train.warmup_steps"] {
		bad("train.warmup_steps", "set either train.warmup (a fraction) or train.warmup_steps, not both")
	}
	oneOf("train.schedule", tr.Schedule, "linear", "cosine", "constant")
	if finite("train.max_grad_norm", tr.MaxGradNorm) && tr.MaxGradNorm < 0 {
		bad("train.max_grad_norm", "must be >= 0 (0 disables clipping), got %v", tr.MaxGradNorm)
	}
	for _, b := range []struct {
		key string
		v   float64
	}{{"train.beta1", tr.Beta1}, {"train.beta2", tr.Beta2}} {
		if finite(b.key, b.v) && (b.v < 0 || b.v >= 1) {
			bad(b.key, "must be in [0, 1), got %v", b.v)
		}
	}
	if finite("train.eps", tr.Eps) && tr.Eps <= 0 {
		bad("train.eps", "must be > 0, got %v", tr.Eps)
	}
	for i, p := range tr.ModulesToSave {
		if strings.TrimSpace(p) == "" {
			bad(fmt.Sprintf("train.modules_to_save.%d", i), "empty pattern")
		}
	}
	if len(tr.ModulesToSave) > 0 && tr.Mode == ModeFull {
		bad("train.modules_to_save", "has no effect when train.mode is %q (every module is trained)", ModeFull)
	}
	atLeast("train.checkpoint_every", tr.CheckpointEvery, 0)
	atLeast("train.seq_len", tr.SeqLen, 1)
	atLeast("train.steps_per_epoch", tr.StepsPerEpoch, 0)
	atLeast("train.checkpoint_blocks", tr.CheckpointBlocks, 0)
	if tr.CheckpointBlocks > 0 && !tr.GradientCheckpointing {
		bad("train.checkpoint_blocks", "has no effect without train.gradient_checkpointing = true")
	}
	if m.Task == TaskSequenceClassification {
		if defined["train.seq_len"] {
			bad("train.seq_len", "only for %s (use model.max_length)", TaskCausalLM)
		}
		if tr.StepsPerEpoch > 0 {
			bad("train.steps_per_epoch", "only for %s", TaskCausalLM)
		}
	}

	// [eval]
	ev := &r.Eval
	atLeast("eval.batch_size", ev.BatchSize, 1)
	atLeast("eval.max_examples", ev.MaxExamples, 0)
	var known []string
	switch m.Task {
	case TaskSequenceClassification:
		known = ClassificationMetrics
	case TaskCausalLM:
		known = CausalLMMetrics
	}
	if known != nil {
		for i, name := range ev.Metrics {
			if !slices.Contains(known, name) {
				bad(fmt.Sprintf("eval.metrics.%d", i), "%q is not a %s metric (%s)", name, m.Task, strings.Join(known, ", "))
			}
		}
	}
	oneOf("eval.split", ev.Split, "test", "validation", "train")
	if defined["eval.split"] && ev.Split != "train" && !dt.HasSplit(ev.Split) {
		bad("eval.split", "%q but the data has no %s split (set data.%s or data.%s_fraction)", ev.Split, ev.Split, ev.Split, ev.Split)
	}

	// [output]
	if strings.TrimSpace(r.Output.Dir) == "" {
		bad("output.dir", "must not be empty")
	}
	return errs.err()
}
