package recipe

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// good is a complete classification recipe; bad cases edit it.
const good = `# BERT sentiment
[model]
path = "hf://owner/bert/model.safetensors"
task = "sequence-classification"
labels = ["negative", "positive"]

[data]
train = "data/train.jsonl"
validation_fraction = 0.1

[[targets]]
name = "attn"
modules = ["query", "value"]
config = { r = 8, lora_alpha = 16 }

  [[targets.overrides]]
  pattern = "*.layer.0.**"
  config = { r = 4 }

[train]
lr = 2e-4
modules_to_save = ["classifier"]
`

const causal = `[model]
path = "../models/stories260K.gguf"
task = "causal-lm"
max_length = 64

[data]
train = "shakespeare.txt"

[[targets]]
modules = ["q_proj", "v_proj"]
layers = "0-2"

[train]
max_steps = 50
`

func write(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDefaults(t *testing.T) {
	p := write(t, "sentiment.toml", good)
	r, err := Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	want := &Recipe{
		Model: Model{Path: "hf://owner/bert/model.safetensors", Task: TaskSequenceClassification, Labels: []string{"negative", "positive"}, MaxLength: 128},
		Data: Data{Train: "data/train.jsonl", Format: "jsonl", TextField: "text", LabelField: "label", Header: &yes,
			ValidationFraction: 0.1, Seed: 42},
		Targets: []TargetGroup{{
			Name: "attn", Adapter: "lora", Modules: []string{"query", "value"}, Kinds: []string{"linear"},
			Config:    map[string]any{"r": int64(8), "lora_alpha": int64(16)},
			Overrides: []Override{{Pattern: "*.layer.0.**", Config: map[string]any{"r": int64(4)}}},
		}},
		Train: Train{Mode: ModeAdapter, Epochs: 3, BatchSize: 16, GradAccum: 1, LR: 2e-4, Warmup: 0.06,
			Schedule: "linear", MaxGradNorm: 1, Seed: 42, ModulesToSave: []string{"classifier"},
			Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, SeqLen: 128},
		Eval:   Eval{BatchSize: 64, Metrics: []string{"accuracy", "f1"}, Split: "validation"},
		Output: Output{Dir: "runs/sentiment"},
		Path:   p,
		Dir:    filepath.Dir(p),
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}

	r, err = Load(write(t, "lm.toml", causal), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Data.Format != "text" || r.Train.SeqLen != 64 || !reflect.DeepEqual(r.Eval.Metrics, []string{"perplexity"}) ||
		r.Targets[0].Name != "targets.0" || r.Targets[0].Layers != "0-2" || r.Train.MaxSteps != 50 {
		t.Errorf("causal defaults: %+v", r)
	}
}

func TestLoadErrors(t *testing.T) {
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			panic("test recipe lacks " + old)
		}
		return strings.Replace(good, old, new, 1)
	}
	tests := []struct {
		name string
		text string
		want []string // substrings of the error, after "FILE"
	}{
		{"unknown top-level table", good + "\n[trian]\nepochs = 1\n", []string{`:24:2: unknown key "trian" (did you mean "train"?)`}},
		{"unknown top-level key", "seed = 1\n" + good, []string{`:1:1: unknown key "seed"`}},
		{"unknown nested key", replace("lr = 2e-4", "lerning_rate = 2e-4"), []string{`:21:1: unknown key "train.lerning_rate"`}},
		{"unknown dotted key", "output.dirr = \"x\"\n" + good, []string{`:1:8: unknown key "output.dirr" (did you mean "output.dir"?)`}},
		{"unknown dotted table", "eval . batch.size = 2\n" + good, []string{`:1:8: unknown key "eval.batch"`}},
		{"dotted key in table", good + "eval.batch = 2\n", []string{`:23:1: unknown key "train.eval"`}},
		{"quoted key", good + "\"max steps\" = 2\n", []string{`:23:1: unknown key "train.\"max steps\"" (did you mean "train.max_steps"?)`}},
		{"unknown key in targets", replace(`name = "attn"`, "name = \"attn\"\n  modles = [\"x\"]"), []string{`:13:3: unknown key "targets.0.modles" (did you mean "targets.0.modules"?)`}},
		{"unknown key in second target group", good + "\n[[targets]]\nname = \"mlp\"\nmodules = [\"dense\"]\nrnak = 4\n",
			[]string{`:27:1: unknown key "targets.1.rnak"`}},
		{"unknown key in override", replace(`pattern = "*.layer.0.**"`, "pattern = \"*.layer.0.**\"\n  rank = 4"),
			[]string{`:18:3: unknown key "targets.0.overrides.0.rank"`}},
		{"unknown key in inline table", replace("[model]\n", "model.x = 1\n[model]\n"), []string{`:2:7: unknown key "model.x"`}},
		{"unknown keys reported together", replace("lr = 2e-4", "lerning_rate = 2e-4\nepoch = 2"),
			[]string{`:21:1: unknown key "train.lerning_rate"`, `:22:1: unknown key "train.epoch" (did you mean "train.epochs"?)`}},
		{"wrong type", replace("lr = 2e-4", "lr = 2e-4\nepochs = \"three\""), []string{`:22:10: train.epochs: expected an integer, got string "three"`}},
		{"float for integer", replace("lr = 2e-4", "lr = 2e-4\n  batch_size = 8.5"), []string{`:22:16: train.batch_size: expected an integer, got float 8.5`}},
		{"string for array", replace(`modules = ["query", "value"]`, `modules = "query"`), []string{`:13:11: targets.0.modules: expected an array, got string "query"`}},
		{"array element type", replace(`labels = ["negative", "positive"]`, `labels = ["negative", 1]`), []string{`:5:23: model.labels.1: expected a string, got integer 1`}},
		{"table for scalar", replace(`path = "hf://owner/bert/model.safetensors"`, "path = { x = 1 }"), []string{`:3:8: model.path: expected a string, got table`}},
		{"scalar for table", "output = 3\n" + good, []string{`:1:10: output: expected a table, got integer 3`}},
		{"scalar for config", replace("config = { r = 8, lora_alpha = 16 }", "config = 3"), []string{`:14:10: targets.0.config: expected a table, got integer 3`}},
		{"scalar for array of tables", "targets = [1]\n" + good[:strings.Index(good, "[[targets]]")], []string{`:1:12: targets.0: expected a table, got integer 1`}},
		{"syntax error", replace("lr = 2e-4", "lr = = 2"), []string{`:21:6: expected value but found '=' instead`}},
		{"duplicate key", replace("lr = 2e-4", "lr = 2e-4\nlr = 1"), []string{`:22:11: Key 'train.lr' has already been defined`}},
		{"missing model.path", replace(`path = "hf://owner/bert/model.safetensors"`, ""), []string{`: model.path: required`}},
		{"missing task", replace(`task = "sequence-classification"`, ""), []string{`: model.task: required`}},
		{"missing data.train", replace(`train = "data/train.jsonl"`, ""), []string{`: data.train: required`}},
		{"bad task", replace(`task = "sequence-classification"`, `task = "classification"`), []string{`: model.task: "classification" is not one of causal-lm, sequence-classification`}},
		{"bad mode", replace("[train]\n", "[train]\nmode = \"lora\"\n"), []string{`: train.mode: "lora" is not one of adapter, full, head`}},
		{"bad schedule", replace("[train]\n", "[train]\nschedule = \"step\"\n"), []string{`: train.schedule: "step" is not one of linear, cosine, constant`}},
		{"bad format", replace("validation_fraction", "format = \"parquet\"\nvalidation_fraction"), []string{`: data.format: "parquet" is not one of jsonl, json, csv, tsv, text`}},
		{"no extension", replace("data/train.jsonl", "data/SMSSpamCollection"), []string{`: data.train: "data/SMSSpamCollection" has no extension: set data.format`}},
		{"mixed extensions", replace("validation_fraction = 0.1", `validation = "dev.csv"`), []string{`: data.validation: "dev.csv" is csv but data.train is jsonl`}},
		{"fraction out of range", replace("validation_fraction = 0.1", "validation_fraction = 1.5"), []string{`: data.validation_fraction: must be in [0, 1), got 1.5`}},
		{"negative fraction", replace("validation_fraction = 0.1", "test_fraction = -0.1"), []string{`: data.test_fraction: must be in [0, 1), got -0.1`}},
		{"fractions sum", replace("validation_fraction = 0.1", "validation_fraction = 0.5\ntest_fraction = 0.5"), []string{`: data.validation_fraction: plus data.test_fraction must be < 1`}},
		{"fraction and file", replace("validation_fraction = 0.1", "validation_fraction = 0.1\nvalidation = \"dev.jsonl\""), []string{`: data.validation_fraction: cannot be combined with data.validation`}},
		{"labels missing", replace(`labels = ["negative", "positive"]`, ""), []string{`: model.labels: required for sequence-classification`}},
		{"one label", replace(`labels = ["negative", "positive"]`, `labels = ["only"]`), []string{`: model.labels: needs at least 2 classes, got 1`}},
		{"duplicate label", replace(`labels = ["negative", "positive"]`, `labels = ["a", "a"]`), []string{`: model.labels.1: duplicate label "a"`}},
		{"no targets", good[:strings.Index(good, "[[targets]]")] + "[train]\nlr = 1e-3\n", []string{`: targets: at least one [[targets]] group is required`}},
		{"targets with full mode", replace("[train]\n", "[train]\nmode = \"full\"\n"), []string{`: targets: train.mode "full" attaches no adapters`}},
		{"no epochs nor steps", replace("lr = 2e-4", "lr = 2e-4\nepochs = 0"), []string{`: train.epochs: train.epochs or train.max_steps must be >= 1`}},
		{"batch size", replace("lr = 2e-4", "lr = 2e-4\nbatch_size = 0"), []string{`: train.batch_size: must be >= 1, got 0`}},
		{"checkpoint blocks without checkpointing", replace("lr = 2e-4", "lr = 2e-4\ncheckpoint_blocks = 4"), []string{`: train.checkpoint_blocks: has no effect without train.gradient_checkpointing = true`}},
		{"negative checkpoint blocks", replace("lr = 2e-4", "lr = 2e-4\ngradient_checkpointing = true\ncheckpoint_blocks = -1"), []string{`: train.checkpoint_blocks: must be >= 0, got -1`}},
		{"lr", replace("lr = 2e-4", "lr = 0"), []string{`: train.lr: must be > 0, got 0`}},
		{"lr nan", replace("lr = 2e-4", "lr = nan"), []string{`: train.lr: must be a finite number, got NaN`}},
		{"warmup both", replace("lr = 2e-4", "warmup = 0.1\nwarmup_steps = 10"), []string{`: train.warmup_steps: set either`}},
		{"bad kind", replace(`name = "attn"`, "name = \"attn\"\nkinds = [\"conv\"]"), []string{`: targets.0.kinds.0: "conv" is not one of linear, embedding, norm`}},
		{"bad regex", replace(`name = "attn"`, "name = \"attn\"\nregex = \"(query\""), []string{`: targets.0.regex: error parsing regexp`}},
		{"duplicate group names", good + "[[targets]]\nname = \"attn\"\nmodules = [\"dense\"]\n", []string{`: targets.1.name: "attn" is also the name of targets.0`}},
		{"bad metric", replace("[train]\n", "[eval]\nmetrics = [\"perplexity\"]\n[train]\n"), []string{`: eval.metrics.0: "perplexity" is not a sequence-classification metric`}},
		{"eval split without data", replace("[train]\n", "[eval]\nsplit = \"test\"\n[train]\n"), []string{`: eval.split: "test" but the data has no test split`}},
		{"separator on jsonl", replace("validation_fraction", "separator = \"%\"\nvalidation_fraction"), []string{`: data.separator: only for text files`}},
		{"several problems", replace(`path = "hf://owner/bert/model.safetensors"`, "") + "[eval]\nbatch_size = 0\n",
			[]string{`: model.path: required`, `: eval.batch_size: must be >= 1, got 0`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(t, "r.toml", tt.text)
			_, err := Load(p, nil)
			if err == nil {
				t.Fatalf("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), p+w) {
					t.Errorf("error\n%v\ndoes not contain\n%s%s", err, p, w)
				}
			}
			var re *Error
			if !errors.As(err, &re) || re.File != p {
				t.Errorf("error %v is not a *Error for %s", err, p)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(p, nil)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Errorf("got %v", err)
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		name  string
		sets  []string
		check func(*Recipe) bool
	}{
		{"float", []string{"train.lr=1e-4"}, func(r *Recipe) bool { return r.Train.LR == 1e-4 }},
		{"integer into float", []string{"train.lr=1"}, func(r *Recipe) bool { return r.Train.LR == 1 }},
		{"bare string", []string{"model.path=/x/model"}, func(r *Recipe) bool { return r.Model.Path == "/x/model" }},
		{"number for string field", []string{"model.path=123"}, func(r *Recipe) bool { return r.Model.Path == "123" }},
		{"quoted string", []string{`data.separator="\n\n"`, "data.train=a.txt"}, func(r *Recipe) bool { return r.Data.Separator == "\n\n" && r.Data.Format == "text" }},
		{"new table", []string{"output.save_merged=true", "output.dir=out"}, func(r *Recipe) bool { return r.Output.SaveMerged && r.Output.Dir == "out" }},
		{"array element", []string{"targets.0.config.r=4"}, func(r *Recipe) bool {
			return r.Targets[0].Config["r"] == int64(4) && r.Targets[0].Config["lora_alpha"] == int64(16)
		}},
		{"new config key", []string{"targets.0.config.lora_dropout=0.05"}, func(r *Recipe) bool { return r.Targets[0].Config["lora_dropout"] == 0.05 }},
		{"nested array element", []string{"targets.0.overrides.0.pattern=*.layer.1.*"}, func(r *Recipe) bool { return r.Targets[0].Overrides[0].Pattern == "*.layer.1.*" }},
		{"array", []string{`model.labels=["a", "b", "c"]`}, func(r *Recipe) bool { return len(r.Model.Labels) == 3 }},
		{"string array element", []string{"model.labels.1=good"}, func(r *Recipe) bool { return r.Model.Labels[1] == "good" }},
		{"later wins", []string{"train.epochs=1", "train.epochs=7"}, func(r *Recipe) bool { return r.Train.Epochs == 7 }},
		{"sweep is free-form", []string{"sweep.r=[4, 8]"}, func(r *Recipe) bool { return reflect.DeepEqual(r.Sweep["r"], []any{int64(4), int64(8)}) }},
	}
	p := write(t, "r.toml", good)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Load(p, tt.sets)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(r) {
				t.Errorf("%v not applied: %+v", tt.sets, r)
			}
		})
	}
}

func TestSetErrors(t *testing.T) {
	tests := []struct {
		name string
		set  string
		want string
	}{
		{"unknown key", "train.lerning_rate=1", `--set train.lerning_rate=1: unknown key "train.lerning_rate"`},
		{"unknown table", "trian.lr=1", `--set trian.lr=1: unknown key "trian"`},
		{"key under a scalar", "train.lr.x=1", `unknown key "train.lr.x": train.lr is a number`},
		{"no value", "train.lr", `--set train.lr: expected key=value`},
		{"element out of range", "targets.3.config.r=4", `--set targets.3.config.r=4: no element targets.3: targets has 1`},
		{"bad index", "targets.x.config.r=4", `targets: expected an element index, got "x"`},
		{"wrong type", "train.epochs=three", `--set train.epochs=three: train.epochs: expected an integer, got string "three"`},
		{"wrong type inside table", `model={path="x", tsk="y"}`, `--set model={path="x", tsk="y"}: unknown key "model.tsk"`},
		{"validation", "train.lr=-1", `: train.lr: must be > 0, got -1`},
	}
	p := write(t, "r.toml", good)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(p, []string{tt.set})
			if err == nil || !strings.Contains(err.Error(), p+": ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %s", err, tt.want)
			}
		})
	}
}

func TestSetMissingArray(t *testing.T) {
	p := write(t, "r.toml", "[model]\npath = \"m\"\ntask = \"causal-lm\"\n[data]\ntrain = \"t.txt\"\n[train]\nmode = \"full\"\n")
	_, err := Load(p, []string{"targets.0.name=x"})
	if err == nil || !strings.Contains(err.Error(), "no element targets.0: targets is not set") {
		t.Errorf("got %v", err)
	}
}

func TestResolve(t *testing.T) {
	r := &Recipe{Dir: filepath.FromSlash("/recipes")}
	tests := []struct{ in, want string }{
		{"data/train.jsonl", filepath.FromSlash("/recipes/data/train.jsonl")},
		{"../models/m.gguf", filepath.FromSlash("/models/m.gguf")},
		{"hf://owner/repo/model.safetensors", "hf://owner/repo/model.safetensors"},
		{filepath.FromSlash("/abs/x"), filepath.FromSlash("/abs/x")},
		{"", ""},
	}
	for _, tt := range tests {
		if got := r.Resolve(tt.in); got != tt.want {
			t.Errorf("Resolve(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHash(t *testing.T) {
	load := func(text string, sets ...string) string {
		t.Helper()
		r, err := Load(write(t, "r.toml", text), sets)
		if err != nil {
			t.Fatal(err)
		}
		return r.Hash()
	}
	base := load(good)
	if len(base) != 64 {
		t.Fatalf("hash %q", base)
	}
	reformatted := strings.ReplaceAll(good, " = ", "=") + "\n# a comment\n[output]\ndir = \"runs/r\"\n"
	if h := load(reformatted); h != base {
		t.Errorf("formatting and explicit defaults changed the hash")
	}
	if h := load(good, "train.lr=1e-4"); h == base {
		t.Errorf("a changed value kept the hash")
	}
	if h := load(good, "sweep.x=nan"); len(h) != 64 || h == base {
		t.Errorf("non-finite sweep value: hash %q", h)
	}
}

// TestRepositoryRecipes loads every example recipe of the repository.
func TestRepositoryRecipes(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "..", "recipes", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Skip("no recipes in ../../recipes")
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			r, err := Load(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s, %d target groups, output %s", p, r.Model.Task, len(r.Targets), r.Resolve(r.Output.Dir))
		})
	}
}

// TestReadmeExample loads the complete recipe of recipes/README.md.
func TestReadmeExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "recipes", "README.md"))
	if err != nil {
		t.Skipf("no recipes/README.md: %v", err)
	}
	_, rest, ok := strings.Cut(string(doc), "## A complete recipe")
	if !ok {
		t.Fatal("README has no complete recipe")
	}
	_, rest, _ = strings.Cut(rest, "```toml\n")
	text, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("README's complete recipe has no toml block")
	}
	r, err := Load(write(t, "example.toml", text), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Targets) != 2 || r.Targets[0].Overrides[0].Config["r"] != int64(4) {
		t.Errorf("decoded %+v", r)
	}
	// Every key of the recipe format appears in the example.
	var missing []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for _, k := range tomlKeys(typ) {
			f, _ := fieldByTag(typ, k)
			if !strings.Contains(text, k+" =") && !strings.Contains(text, "["+join(prefix, k)) {
				missing = append(missing, join(prefix, k))
			}
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(join(prefix, k), ft)
			}
		}
	}
	walk("", reflect.TypeOf(Recipe{}))
	if len(missing) > 0 {
		t.Errorf("keys missing from the README example: %v", missing)
	}
}
