package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// familyCase is one architecture run through every command, from a tiny
// random-init reference folder.
type familyCase struct {
	family string // model_type, as inspect names it
	ref    string // folder under core/testdata/reference
	// targets are the family's attention projections by their Hugging
	// Face module names.
	targets []string
	// heads are the classifier's head modules, which the adapter saves
	// whole (PEFT's modules_to_save); none for a causal LM.
	heads []string
	// tokenizer is what the test writes into the copied folder: "words"
	// (a WordLevel tokenizer.json, with RoBERTa's <s> ... </s> for
	// encoders), "vocab.txt" (bert-f32's WordPiece vocabulary) or ""
	// (the folder's own).
	tokenizer string
}

// causal reports whether the case is a causal LM (its reference
// folder's architecture is not a sequence classifier).
func (c familyCase) causal() bool {
	var cfg struct {
		Architectures []string `json:"architectures"`
	}
	raw, err := os.ReadFile(filepath.Join(refDir, c.ref, "config.json"))
	if err != nil || json.Unmarshal(raw, &cfg) != nil || len(cfg.Architectures) == 0 {
		return false
	}
	return !strings.HasSuffix(cfg.Architectures[0], "ForSequenceClassification")
}

// encoder reports whether the case is a bidirectional encoder.
func (c familyCase) encoder() bool {
	return slices.Contains([]string{"bert", "distilbert", "roberta", "xlm-roberta"}, c.family)
}

var familyCases = []familyCase{
	{"llama", "llama-gqa-f32", []string{"q_proj", "v_proj"}, nil, "words"},
	{"qwen2", "qwen2-gqa-f32", []string{"q_proj", "v_proj"}, nil, "words"},
	{"qwen3", "qwen3-gqa-f32", []string{"q_proj", "k_proj", "v_proj"}, nil, "words"},
	{"mistral", "mistral-gqa-window3-f32", []string{"q_proj", "v_proj"}, nil, "words"},
	{"gemma", "gemma-gqa-f32", []string{"q_proj", "v_proj"}, nil, "words"},
	{"gemma2", "gemma2-gqa-window3-f32", []string{"q_proj", "v_proj"}, nil, "words"},
	{"phi3", "phi3-gqa-f32", []string{"qkv_proj"}, nil, "words"},
	{"gpt2", "gpt2-f32", []string{"c_attn"}, nil, "words"},
	{"bert", "bert-f32", []string{"query", "value"}, []string{"classifier"}, ""},
	{"distilbert", "distilbert-f32", []string{"q_lin", "v_lin"}, []string{"pre_classifier", "classifier"}, "vocab.txt"},
	{"roberta", "roberta-f32", []string{"query", "value"}, []string{"classifier"}, "words"},
	{"xlm-roberta", "xlm-roberta-bf16-sharded", []string{"query", "value"}, []string{"classifier"}, "words"},
	// Decoder classifiers: a score head over the last token that is not
	// the pad id.
	{"qwen2", "qwen2-cls-f32", []string{"q_proj", "v_proj"}, []string{"score"}, "words"},
	{"gpt2", "gpt2-cls-f32", []string{"c_attn"}, []string{"score"}, "words"},
}

// familyWords is the vocabulary of the test data; the WordLevel tokenizer
// gives them ids 4.. (every reference vocabulary has at least 80 ids).
var familyWords = strings.Fields("the a cat dog bird sees likes chases big small red old on near mat park tree . good bad okay great awful fine")

// wordTokenizer returns a WordLevel tokenizer.json over familyWords and
// its tokenizer_config.json. Encoders get RoBERTa's special tokens (<s>
// <pad> </s> <unk> as ids 0-3) around each text; decoders nothing, and
// the reference configs' pad, bos and eos ids (<pad> <s> </s> <unk>).
func wordTokenizer(t *testing.T, encoder bool) map[string][]byte {
	t.Helper()
	vocab := map[string]int{"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
	if encoder {
		vocab = map[string]int{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
	}
	for i, w := range familyWords {
		vocab[w] = 4 + i
	}
	special := func(id int, s string) map[string]any {
		return map[string]any{"id": id, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
	}
	tj := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens":   []any{special(vocab["<s>"], "<s>"), special(vocab["<pad>"], "<pad>"), special(2, "</s>"), special(3, "<unk>")},
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "WhitespaceSplit"},
		"post_processor": nil,
		"decoder":        nil,
		"model":          map[string]any{"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
	}
	if encoder {
		tj["post_processor"] = map[string]any{"type": "RobertaProcessing", "sep": []any{"</s>", 2}, "cls": []any{"<s>", 0},
			"trim_offsets": true, "add_prefix_space": false}
	}
	cfg := map[string]any{"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
	files := map[string][]byte{}
	for name, v := range map[string]any{"tokenizer.json": tj, "tokenizer_config.json": cfg} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	return files
}

// familyFolder copies the reference folder of c into dir/model with a
// tokenizer, and returns the copy and the model's labels (nil for a
// causal LM).
func familyFolder(t *testing.T, c familyCase, dir string) (string, []string) {
	t.Helper()
	src := filepath.Join(refDir, c.ref)
	dst := filepath.Join(dir, "model")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	es, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Name() == "expected.json" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{}
	switch c.tokenizer {
	case "words":
		files = wordTokenizer(t, c.encoder())
	case "vocab.txt":
		if files["vocab.txt"], err = os.ReadFile(filepath.Join(refDir, "bert-f32", "vocab.txt")); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cfg struct {
		ID2Label map[string]string `json:"id2label"`
	}
	readJSON(t, filepath.Join(dst, "config.json"), &cfg)
	var labels []string
	for i := range len(cfg.ID2Label) {
		labels = append(labels, cfg.ID2Label[strconv.Itoa(i)])
	}
	return dst, labels
}

// familyData writes the training data of c into dir and returns its
// [data] table: text of a few repeated sentence patterns for a causal
// LM; for a classifier, short texts whose label is set by one sentiment
// word among random others.
func familyData(t *testing.T, c familyCase, labels []string, dir string) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, uint64(len(c.family))))
	pick := func(ws ...string) string { return ws[rng.IntN(len(ws))] }
	var b strings.Builder
	if c.causal() {
		for range 60 {
			fmt.Fprintf(&b, "the %s cat sees a %s dog on the mat . ", pick("big", "small"), pick("red", "old"))
		}
		p := filepath.Join(dir, "train.txt")
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("train = %q\nformat = \"text\"\ntest_fraction = 0.25\n", p)
	}
	// The words of each label: negative, neutral, positive, then more.
	sentiment := [][]string{{"bad", "awful"}, {"okay", "fine"}, {"good", "great"}, {"red", "old"}, {"big", "small"}}
	switch {
	case len(labels) == 2:
		sentiment = [][]string{sentiment[0], sentiment[2]}
	case len(labels) > len(sentiment):
		t.Fatalf("%d labels, the test data has words for %d", len(labels), len(sentiment))
	}
	for i := range 40 { // 30 to train: two steps of 16 an epoch
		label := i % len(labels)
		words := []string{pick("the", "a"), pick("cat", "dog", "bird"), pick(sentiment[label]...), pick("park", "tree", "mat")}
		line, _ := json.Marshal(map[string]string{"text": strings.Join(words, " "), "label": labels[label]})
		b.Write(append(line, '\n'))
	}
	p := filepath.Join(dir, "train.jsonl")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("train = %q\ntest_fraction = 0.25\n", p)
}

// familyRecipe writes the recipe of c: LoRA r=4 on its attention
// projections, two epochs of two steps.
func familyRecipe(t *testing.T, c familyCase, model string, labels []string, dir string) string {
	t.Helper()
	quoted := make([]string, len(c.targets))
	for i, m := range c.targets {
		quoted[i] = strconv.Quote(m)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[model]\npath = %q\n", model)
	if c.causal() {
		b.WriteString("task = \"causal-lm\"\nmax_length = 16\n")
	} else {
		ls, _ := json.Marshal(labels)
		fmt.Fprintf(&b, "task = \"sequence-classification\"\nlabels = %s\nmax_length = 16\n", ls)
	}
	fmt.Fprintf(&b, "\n[data]\n%s\n", familyData(t, c, labels, dir))
	fmt.Fprintf(&b, "[[targets]]\nmodules = [%s]\nconfig = { r = 4, lora_alpha = 8 }\n\n", strings.Join(quoted, ", "))
	b.WriteString("[train]\nepochs = 2\nbatch_size = 16\nlr = 2e-2\nwarmup = 0\nschedule = \"constant\"\nseed = 1\n")
	if c.causal() {
		b.WriteString("steps_per_epoch = 2\n")
	}
	b.WriteString("\n[eval]\nbatch_size = 16\n")
	if c.causal() {
		b.WriteString("metrics = [\"loss\", \"perplexity\"]\n")
	}
	fmt.Fprintf(&b, "\n[output]\ndir = %q\n", filepath.Join(dir, "run"))
	p := filepath.Join(dir, "recipe.toml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// cli runs one command and fails the test, naming it, unless it exits 0.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runCLI(args...)
	if code != 0 {
		t.Fatalf("surgeon %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// familyLogits runs forward on tokens and returns the logits.
func familyLogits(t *testing.T, tokens string, args ...string) [][]float64 {
	t.Helper()
	out := cli(t, append([]string{"forward", "--tokens", tokens, "--json"}, args...)...)
	var r struct {
		Logits [][]float64 `json:"logits"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("forward %v: %v", args, err)
	}
	return r.Logits
}

// sameLogits fails unless got and want have one shape and agree to tol,
// relative to their size (at least 1).
func sameLogits(t *testing.T, what string, got, want [][]float64, tol float64) {
	t.Helper()
	if len(got) != len(want) || len(got) == 0 || len(got[0]) != len(want[0]) {
		t.Fatalf("%s: logits %dx%d, want %dx%d", what, len(got), len(got[0]), len(want), len(want[0]))
	}
	for i := range want {
		for j, w := range want[i] {
			if g := got[i][j]; !(math.Abs(g-w) <= tol*math.Max(1, math.Abs(w))) {
				t.Fatalf("%s: logit [%d,%d] = %v, want %v (tolerance %g)", what, i, j, g, w, tol)
			}
		}
	}
}

// evalMetric reads a metric from surgeon eval's output.
func evalMetric(t *testing.T, out, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("eval printed no %s:\n%s", name, out)
	return 0
}

// Every family runs through every command (issue 12 §5): inspect names
// the family and head; forward; generate on decoders (the key/value cache
// changes no id, with and without an adapter) and a clear refusal on
// encoders; plan and apply of LoRA on the family's attention projections
// (the loss decreases, the PEFT folder loads back with forward and eval);
// merge (merged logits equal the adapter's on the fly); convert to native
// and back and to safetensors (logits unchanged); resize of the adapter
// to rank 2; and extract from the merged folder against the original
// (the trained modules come back at rank 4, the classifiers' heads, trained
// whole, at their own rank, and the extracted adapter reproduces the
// merged model).
//
// With -short, only inspect, forward and generate run: the rest needs the
// plugin binaries built.
func TestFamilies(t *testing.T) {
	full := !testing.Short()
	if full {
		withPlugins(t, "lora", "convert")
	}
	for _, c := range familyCases {
		t.Run(c.ref, func(t *testing.T) {
			start := time.Now()
			dir := t.TempDir()
			base, labels := familyFolder(t, c, dir)
			recipe := familyRecipe(t, c, base, labels, dir)
			tokens := "4,9,5,6,18,7"

			// inspect
			var ir struct {
				Format string `json:"format"`
				Family string `json:"family"`
				Head   string `json:"head"`
				Labels int    `json:"labels"`
			}
			if err := json.Unmarshal([]byte(cli(t, "inspect", base, "--json")), &ir); err != nil {
				t.Fatal(err)
			}
			head := "causal-lm"
			if !c.causal() {
				head = "sequence-classification"
			}
			if ir.Format != "hf-model" || ir.Family != c.family || ir.Head != head || ir.Labels != len(labels) {
				t.Fatalf("inspect: format %q family %q head %q labels %d, want hf-model %s %s %d", ir.Format, ir.Family, ir.Head, ir.Labels, c.family, head, len(labels))
			}
			text := cli(t, "inspect", base, "--limit", "1")
			if !strings.Contains(text, "family:     "+c.family+"\n") || !strings.Contains(text, "head:       "+head) {
				t.Fatalf("inspect does not name the family and head:\n%s", text)
			}

			// forward
			plain := familyLogits(t, tokens, base)
			var vc struct {
				Vocab int `json:"vocab_size"`
			}
			readJSON(t, filepath.Join(base, "config.json"), &vc)
			rows, cols := 6, vc.Vocab
			if !c.causal() {
				rows, cols = 1, len(labels)
			}
			if len(plain) != rows || len(plain[0]) != cols {
				t.Fatalf("forward: logits %dx%d, want %dx%d", len(plain), len(plain[0]), rows, cols)
			}

			// generate: decoders from ids and from a prompt through the
			// folder's tokenizer, the cache changing no id; classifiers
			// refuse.
			if c.causal() {
				cached := generateIDs(t, base, "--tokens", tokens, "-n", "8")
				if uncached := generateIDs(t, base, "--tokens", tokens, "-n", "8", "--no-cache"); len(cached) == 0 || !slices.Equal(cached, uncached) {
					t.Fatalf("generate: cached %v, --no-cache %v", cached, uncached)
				}
				code, out, errs := runCLI("generate", base, "--prompt", "the big cat", "-n", "4")
				if code != 0 || !strings.HasPrefix(out, "the big cat") {
					t.Fatalf("generate --prompt: exit %d, %q %s", code, out, errs)
				}
			} else if code, _, errs := runCLI("generate", base, "--tokens", tokens); code == 0 || !strings.Contains(errs, "not a causal LM") {
				t.Fatalf("generate on a classifier: exit %d, %q", code, errs)
			}
			if !full {
				return // the rest runs plugins
			}

			// plan
			planOut := cli(t, "plan", recipe)
			for _, m := range c.targets {
				if !strings.Contains(planOut, "."+m+" ") {
					t.Fatalf("plan adapts no %s:\n%s", m, planOut)
				}
			}

			// apply
			cli(t, "apply", recipe)
			run := filepath.Join(dir, "run")
			var rep struct {
				Before map[string]float64 `json:"metrics_before"`
				After  map[string]float64 `json:"metrics_after"`
				Steps  int                `json:"steps"`
				Epochs []struct {
					Loss float64 `json:"train_loss"`
				} `json:"epochs"`
			}
			readJSON(t, filepath.Join(run, "report.json"), &rep)
			if rep.Steps != 4 || len(rep.Epochs) != 2 || !(rep.Epochs[1].Loss < rep.Epochs[0].Loss) {
				t.Fatalf("apply: %d steps, epochs %+v, want 4 steps and a training loss that decreases", rep.Steps, rep.Epochs)
			}
			metric := "accuracy"
			if c.causal() {
				metric = "loss"
				if !(rep.After["loss"] < rep.Before["loss"]) {
					t.Fatalf("apply: test loss %v -> %v, want a decrease", rep.Before["loss"], rep.After["loss"])
				}
			}
			adapter := filepath.Join(run, "adapter")
			a := readPEFT(t, adapter)
			task := map[bool]string{true: "CAUSAL_LM", false: "SEQ_CLS"}[c.causal()]
			if a.Config.PeftType != "LORA" || a.Config.TaskType != task || a.Config.R != 4 || len(a.Modules) == 0 ||
				!slices.Equal(a.Config.ModulesToSave, c.heads) {
				t.Fatalf("adapter: %s %s r=%d, %d modules, modules_to_save %v; want LORA %s r=4, modules_to_save %v",
					a.Config.PeftType, a.Config.TaskType, a.Config.R, len(a.Modules), a.Config.ModulesToSave, task, c.heads)
			}
			// GPT-2's Conv1D weights are stored [in, out]: PEFT marks its
			// adapters fan_in_fan_out.
			fanInFanOut := c.family == "gpt2"
			if a.Config.FanInFanOut != fanInFanOut {
				t.Fatalf("adapter: fan_in_fan_out %v, want %v", a.Config.FanInFanOut, fanInFanOut)
			}
			for _, m := range a.ModuleNames() {
				if !slices.ContainsFunc(c.targets, func(s string) bool { return strings.HasSuffix(m, "."+s) }) {
					t.Fatalf("adapter module %s is none of %v", m, c.targets)
				}
			}

			// The PEFT folder loads back: forward --adapter and eval.
			tuned := familyLogits(t, tokens, base, "--adapter", adapter)
			moved := 0.0
			for i := range tuned {
				for j := range tuned[i] {
					moved = math.Max(moved, math.Abs(tuned[i][j]-plain[i][j]))
				}
			}
			if moved < 1e-4 {
				t.Fatalf("the trained adapter leaves the logits unchanged (max change %g)", moved)
			}
			// Stored weights (memory-mapped, a classifier's head among them)
			// take the adapter's saved head as well.
			sameLogits(t, "forward --adapter --weights stored", familyLogits(t, tokens, base, "--adapter", adapter, "--weights", "stored"), tuned, 1e-5)
			// PEFT -> native adapter -> PEFT changes nothing.
			nativeAdapter, peftBack := filepath.Join(dir, "a.spago"), filepath.Join(dir, "peft-back")
			cli(t, "convert", adapter, "--to", "native-adapter", "-o", nativeAdapter, "-q")
			cli(t, "convert", nativeAdapter, "--to", "peft", "-o", peftBack, "-q")
			sameLogits(t, "adapter through native", familyLogits(t, tokens, base, "--adapter", peftBack), tuned, 0)
			if got, want := evalMetric(t, cli(t, "eval", recipe), metric), rep.Before[metric]; math.Abs(got-want) > 1e-4 {
				t.Fatalf("eval: %s %v, apply reported %v before training", metric, got, want)
			}
			evalOut := cli(t, "eval", recipe, "--adapter", adapter)
			if got, want := evalMetric(t, evalOut, metric), rep.After[metric]; math.Abs(got-want) > 1e-4 {
				t.Fatalf("eval --adapter: %s %v, apply reported %v", metric, got, want)
			}

			// generate with the adapter: the cache changes no id.
			if c.causal() {
				cached := generateIDs(t, base, "--tokens", tokens, "-n", "8", "--adapter", adapter)
				if uncached := generateIDs(t, base, "--tokens", tokens, "-n", "8", "--adapter", adapter, "--no-cache"); !slices.Equal(cached, uncached) {
					t.Fatalf("generate --adapter: cached %v, --no-cache %v", cached, uncached)
				}
			}

			// merge
			merged := filepath.Join(dir, "merged")
			cli(t, "merge", base, "--adapter", adapter, "-o", merged)
			sameLogits(t, "merged", familyLogits(t, tokens, merged), tuned, 1e-4)

			// convert: the logits, also of a text ending with id 0 (a
			// decoder classifier's pad id), and the config are unchanged.
			native := filepath.Join(dir, "m.spago")
			back := filepath.Join(dir, "back")
			st := filepath.Join(dir, "st")
			cli(t, "convert", base, "--to", "native", "-o", native, "-q")
			cli(t, "convert", native, "--to", "hf", "-o", back, "-q")
			cli(t, "convert", base, "--to", "safetensors", "-o", st, "-q")
			padded := familyLogits(t, tokens+",0", base)
			if err := json.Unmarshal([]byte(cli(t, "inspect", native, "--json")), &ir); err != nil {
				t.Fatal(err)
			}
			if ir.Format != "native" || ir.Family != c.family || ir.Head != head || ir.Labels != len(labels) {
				t.Fatalf("inspect native: format %q family %q head %q labels %d, want native %s %s %d", ir.Format, ir.Family, ir.Head, ir.Labels, c.family, head, len(labels))
			}
			for _, p := range []string{native, back, st} {
				sameLogits(t, "convert "+filepath.Base(p), familyLogits(t, tokens, p), plain, 1e-6)
				sameLogits(t, "convert "+filepath.Base(p)+", ending with id 0", familyLogits(t, tokens+",0", p), padded, 1e-6)
			}
			var viaNative, direct map[string]any
			readJSON(t, filepath.Join(back, "config.json"), &viaNative)
			readJSON(t, filepath.Join(st, "config.json"), &direct)
			if !reflect.DeepEqual(viaNative, direct) {
				t.Fatalf("convert: config.json through native\n%v\nwritten directly\n%v", viaNative, direct)
			}

			// resize
			small := filepath.Join(dir, "r2")
			cli(t, "resize", adapter, "--rank", "2", "-o", small)
			if r := readPEFT(t, small); r.Config.R != 2 || len(r.Modules) != len(a.Modules) || r.Config.FanInFanOut != fanInFanOut ||
				!slices.Equal(r.Config.ModulesToSave, c.heads) {
				t.Fatalf("resize: r=%d, %d modules, fan_in_fan_out %v, modules_to_save %v; want 2, %d, %v, %v",
					r.Config.R, len(r.Modules), r.Config.FanInFanOut, r.Config.ModulesToSave, len(a.Modules), fanInFanOut, c.heads)
			}
			familyLogits(t, tokens, base, "--adapter", small)

			// extract
			extracted := filepath.Join(dir, "extracted")
			cli(t, "extract", base, merged, "--energy", "0.99999", "-o", extracted)
			e := readPEFT(t, extracted)
			if e.Config.FanInFanOut != fanInFanOut {
				t.Fatalf("extract: fan_in_fan_out %v, want %v", e.Config.FanInFanOut, fanInFanOut)
			}
			for _, m := range a.ModuleNames() {
				if _, ok := e.Modules[m]; !ok || e.Config.RankFor(m) > 4 {
					t.Fatalf("extract: module %s at rank %d (extracted: %v), want the trained rank-4 update", m, e.Config.RankFor(m), e.ModuleNames())
				}
			}
			sameLogits(t, "extracted", familyLogits(t, tokens, base, "--adapter", extracted), tuned, 1e-3)
			t.Logf("%s: train loss %.4f -> %.4f, test %s %.4f -> %.4f; every command in %s", c.family, rep.Epochs[0].Loss, rep.Epochs[1].Loss,
				metric, rep.Before[metric], rep.After[metric], time.Since(start).Round(time.Millisecond))
		})
	}
}
