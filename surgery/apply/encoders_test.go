package apply

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/plugins/builtin/lora"
	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

// byteLevelTokenizer returns a tiny RoBERTa-style tokenizer.json (byte-level
// BPE over GPT-2's byte alphabet, a few merges, RobertaProcessing) and its
// tokenizer_config.json: <s>=0 <pad>=1 </s>=2 <unk>=3, bytes 4..259, merges
// after. It also returns the vocabulary size.
func byteLevelTokenizer(t *testing.T) (map[string][]byte, int) {
	t.Helper()
	// GPT-2's bytes_to_unicode.
	var printable []int
	for _, r := range [][2]int{{'!', '~'}, {0xA1, 0xAC}, {0xAE, 0xFF}} {
		for b := r[0]; b <= r[1]; b++ {
			printable = append(printable, b)
		}
	}
	char := map[int]rune{}
	n := 0
	for b := 0; b < 256; b++ {
		if slices.Contains(printable, b) {
			char[b] = rune(b)
		} else {
			char[b] = rune(256 + n)
			n++
		}
	}
	vocab := map[string]int{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
	for b := 0; b < 256; b++ {
		vocab[string(char[b])] = 4 + b
	}
	merges := [][2]string{{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}, {"Ġ", "a"}, {"o", "n"}, {"e", "r"}, {"Ġ", "s"}}
	var ms []string
	for _, m := range merges {
		vocab[m[0]+m[1]] = len(vocab)
		ms = append(ms, m[0]+" "+m[1])
	}
	special := func(id int, s string) map[string]any {
		return map[string]any{"id": id, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
	}
	tj := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens":  []any{special(0, "<s>"), special(1, "<pad>"), special(2, "</s>"), special(3, "<unk>")},
		"normalizer":    nil,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{"type": "RobertaProcessing", "sep": []any{"</s>", 2}, "cls": []any{"<s>", 0},
			"trim_offsets": true, "add_prefix_space": false},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": ms},
	}
	cfg := map[string]any{"tokenizer_class": "RobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
		"pad_token": "<pad>", "unk_token": "<unk>", "model_max_length": 512}
	files := map[string][]byte{}
	for name, v := range map[string]any{"tokenizer.json": tj, "tokenizer_config.json": cfg} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	return files, len(vocab)
}

// randomModel writes a Hugging Face folder of a model of config cfg with
// random weights (norm scales near 1) and the given extra files.
func randomModel(t *testing.T, cfg string, extra map[string][]byte) string {
	t.Helper()
	m, err := model.New([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for _, p := range layer.Params(m) {
		d := ops.Data(p.Param)
		for i := range d {
			switch {
			case strings.HasSuffix(p.Path, "LayerNorm.weight"):
				d[i] = float32(1 + 0.1*rng.NormFloat64())
			case strings.Contains(p.Path, "embeddings"):
				d[i] = float32(0.5 * rng.NormFloat64())
			default:
				d[i] = float32(0.1 * rng.NormFloat64())
			}
		}
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := checkpoint.SaveHF(dir, m, checkpoint.SaveOptions{DType: tensor.F32, Extra: extra}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// DistilBERT (WordPiece vocab.txt) and RoBERTa (byte-level BPE
// tokenizer.json) folders fine-tune end to end with LoRA: the loss
// decreases, the PEFT adapter saves the family's head as modules_to_save
// and loads back onto a fresh base to the same accuracy.
func TestApplyEncoders(t *testing.T) {
	needFixtures(t)
	vocab, err := os.ReadFile("../../core/testdata/reference/bert-f16/vocab.txt")
	if err != nil {
		t.Fatal(err)
	}
	distil := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join("../../core/testdata/reference/distilbert-f16", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(distil, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(distil, "vocab.txt"), vocab, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, nvocab := byteLevelTokenizer(t)
	roberta := randomModel(t, `{"model_type":"roberta","architectures":["RobertaForSequenceClassification"],
		"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":64,"vocab_size":`+itoa(nvocab)+`,
		"max_position_embeddings":66,"type_vocab_size":1,"pad_token_id":1,"bos_token_id":0,"eos_token_id":2,
		"layer_norm_eps":1e-5,"id2label":{"0":"NEGATIVE","1":"POSITIVE"}}`, tok)

	for _, c := range []struct {
		name, dir string
		maxLen    int
		cls, sep  int
		targets   string
		heads     []string
		headParam string
	}{
		{"distilbert", distil, 32, 2, 3, `["q_lin", "v_lin"]`, []string{"pre_classifier", "classifier"}, "pre_classifier.weight"},
		{"roberta", roberta, 48, 0, 2, `["query", "value"]`, []string{"classifier"}, "classifier.out_proj.weight"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			path := writeRecipe(t, `
[model]
path = "`+c.dir+`"
task = "sequence-classification"
labels = ["NEGATIVE", "POSITIVE"]
max_length = `+itoa(c.maxLen)+`

[data]
train = "`+fixtures+`/uci-sentiment-labelled-sentences/amazon.json"
text_field = "text"
label_field = "class"
test_fraction = 0.2
max_examples = 200
seed = 1

[[targets]]
name = "attention"
modules = `+c.targets+`
[targets.config]
r = 4
lora_alpha = 8

[train]
epochs = 3
batch_size = 16
lr = 5e-3
seed = 1

[output]
dir = "`+out+`"
`)
			r, err := prepare(t, path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if !slices.Equal(r.Saved, c.heads) {
				t.Errorf("modules_to_save %v, want %v", r.Saved, c.heads)
			}
			// Special tokens as Hugging Face puts them: one leading and one
			// trailing token, kept when the text is truncated.
			for i, s := range r.Train {
				ids := s.IDs
				if ids[0] != c.cls || ids[len(ids)-1] != c.sep || ids[len(ids)-2] == c.sep || len(ids) > c.maxLen {
					t.Fatalf("example %d: ids %v, want %d ... %d (once), at most %d tokens", i, ids, c.cls, c.sep, c.maxLen)
				}
			}
			rep, err := r.Execute(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			first, last := rep.Epochs[0].Loss, rep.Epochs[len(rep.Epochs)-1].Loss
			t.Logf("train loss %.4f -> %.4f, accuracy %.3f -> %.3f, special tokens %+v", first, last,
				rep.Before["accuracy"], rep.After["accuracy"], rep.SpecialTokens)
			if !(last < first) {
				t.Errorf("training loss did not decrease: %v -> %v", first, last)
			}
			raw, err := os.ReadFile(filepath.Join(out, "adapter", "adapter_config.json"))
			if err != nil {
				t.Fatal(err)
			}
			var ac struct {
				ModulesToSave []string `json:"modules_to_save"`
				TaskType      string   `json:"task_type"`
			}
			if err := json.Unmarshal(raw, &ac); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ac.ModulesToSave, c.heads) || ac.TaskType != "SEQ_CLS" {
				t.Errorf("adapter_config.json modules_to_save %v task_type %q", ac.ModulesToSave, ac.TaskType)
			}
			fresh, err := prepare(t, path, "train.mode=head", "targets=[]")
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			if _, err := attach.AttachFolder(context.Background(), fresh.Model, attach.InProcess(sdktest.Connect(t, lora.Adapters()...)), filepath.Join(out, "adapter")); err != nil {
				t.Fatal(err)
			}
			got, err := fresh.Evaluate(rep.EvalSplit)
			if err != nil {
				t.Fatal(err)
			}
			if got["accuracy"] != rep.After["accuracy"] || got["loss"] != rep.After["loss"] {
				t.Fatalf("saved adapter gives %v, the run reported %v", got, rep.After)
			}
			a, err := peft.Read(filepath.Join(out, "adapter"))
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for n := range a.Saved {
				found = found || strings.HasSuffix(n, c.headParam)
			}
			if !found {
				t.Errorf("adapter saves no %s", c.headParam)
			}
		})
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
