package checkpoint

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tokenizer"
	"github.com/surgeon-ml/surgeon/formats/gguf"
)

// bpeFixtures are the byte-level BPE fixture tokenizers, with the name of
// their transformers.js ids in core/tokenizer/testdata/tokref and the
// tokenizer.ggml.pre surgeon writes for them.
var bpeFixtures = []struct{ name, dir, pre string }{
	{"llama3", "tokenizers/llama3", "llama-bpe"},
	{"gpt2", "peft-lora-gpt2-smartreview/gpt2-tokenizer", "gpt-2"},
	{"qwen3", "tokenizers/qwen3", "qwen2"},
}

type tokrefText struct {
	Set  string `json:"set"`
	Text string `json:"text"`
}

func readTokref(t *testing.T, name string, v any) {
	t.Helper()
	path := filepath.Join("..", "tokenizer", "testdata", "tokref", name+".json.gz")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := json.NewDecoder(z).Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// tinyLlamaWithTokenizer writes a random Llama folder (hidden size 16, one
// layer) whose vocabulary is the fixture tokenizer's, with its
// tokenizer.json and tokenizer_config.json, and returns the folder.
func tinyLlamaWithTokenizer(t *testing.T, fixtureDir string) string {
	t.Helper()
	src := filepath.Join("..", "..", "..", "shared", "fixtures", fixtureDir)
	h, err := LoadTokenizerJSON(src)
	if err != nil {
		t.Skipf("fixture %s not available (%v); it lives in ../shared/fixtures next to the repository", src, err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{"model_type":"llama","architectures":["LlamaForCausalLM"],"hidden_size":16,"intermediate_size":32,
		"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":2,"vocab_size":%d,"rms_norm_eps":1e-5,
		"max_position_embeddings":256}`, h.VocabSize())
	c, err := llama.ParseConfig([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	m := llama.New(c)
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range layer.Params(m) {
		d := ops.Data(p.Param)
		for i := range d {
			d[i] = float32(r.NormFloat64() * 0.02)
		}
	}
	if err := SaveHF(dir, m, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{TokenizerJSONFile, "tokenizer_config.json"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// ggufOfFixture converts a tiny Llama carrying the fixture tokenizer to a
// GGUF file with SaveGGUF and returns its path.
func ggufOfFixture(t *testing.T, fixtureDir string) string {
	t.Helper()
	dir := tinyLlamaWithTokenizer(t, fixtureDir)
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := SaveGGUF(out, l, "f32"); err != nil {
		t.Fatal(err)
	}
	return out
}

// A Llama folder with a byte-level BPE tokenizer.json converts to GGUF
// with tokenizer.ggml.model "gpt2"; the tokenizer read back from the GGUF,
// and the tokenizer.json written from it for a Hugging Face folder, give
// transformers.js's ids on every reference text, with and without special
// tokens.
func TestSaveGGUFByteLevelBPE(t *testing.T) {
	var texts []tokrefText
	readTokref(t, "texts", &texts)
	for _, fx := range bpeFixtures {
		t.Run(fx.name, func(t *testing.T) {
			path := ggufOfFixture(t, fx.dir)
			var ref struct {
				IDs     [][]int `json:"ids"`
				Special [][]int `json:"special"`
			}
			readTokref(t, fx.name, &ref)
			l, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if m, _ := l.GGUF.String("tokenizer.ggml.model"); m != "gpt2" {
				t.Errorf("tokenizer.ggml.model = %q", m)
			}
			if p, _ := l.GGUF.String("tokenizer.ggml.pre"); p != fx.pre {
				t.Errorf("tokenizer.ggml.pre = %q, want %q", p, fx.pre)
			}
			tok, err := LoadTokenizer(path, l)
			if err != nil {
				t.Fatal(err)
			}
			files, err := TokenizerFiles(l)
			if err != nil {
				t.Fatal(err)
			}
			hfDir := t.TempDir()
			for name, data := range files {
				if err := os.WriteFile(filepath.Join(hfDir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			back, err := LoadTokenizerJSON(hfDir)
			if err != nil {
				t.Fatalf("tokenizer.json written from the GGUF: %v", err)
			}
			orig, err := LoadTokenizerJSON(filepath.Join("..", "..", "..", "shared", "fixtures", fx.dir))
			if err != nil {
				t.Fatal(err)
			}
			if back.BOS() != orig.BOS() || back.EOS() != orig.EOS() || back.VocabSize() != orig.VocabSize() {
				t.Errorf("tokenizer.json from the GGUF: bos %d eos %d vocab %d; original %d %d %d",
					back.BOS(), back.EOS(), back.VocabSize(), orig.BOS(), orig.EOS(), orig.VocabSize())
			}
			bad := 0
			for i, x := range texts {
				for _, c := range []struct {
					what    string
					tok     tokenizer.Tokenizer
					special bool
					want    []int
				}{{"GGUF", tok, false, ref.IDs[i]}, {"GGUF", tok, true, ref.Special[i]}, {"tokenizer.json from GGUF", back, true, ref.Special[i]}} {
					if c.want == nil {
						continue
					}
					if got := c.tok.Encode(x.Text, c.special); !slices.Equal(got, c.want) {
						if bad++; bad <= 5 {
							t.Errorf("%s (special %v) %s text %d %q:\n got %v\nwant %v", c.what, c.special, x.Set, i, x.Text, got, c.want)
						}
					}
				}
			}
			if bad > 0 {
				t.Fatalf("%d encodings differ from transformers.js", bad)
			}
		})
	}
}

// A tokenizer.json llama.cpp has no pre-tokenizer for is refused with the
// reason when converting to GGUF.
func TestSaveGGUFRefusesUnknownPreTokenizer(t *testing.T) {
	dir := tinyLlamaWithTokenizer(t, "peft-lora-gpt2-smartreview/gpt2-tokenizer")
	file := filepath.Join(dir, TokenizerJSONFile)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	top["pre_tokenizer"] = json.RawMessage(`{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}`)
	edited, err := json.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = SaveGGUF(filepath.Join(t.TempDir(), "x.gguf"), l, "f32")
	if err == nil || !strings.Contains(err.Error(), "add_prefix_space") {
		t.Fatalf("err = %v, want a refusal naming add_prefix_space", err)
	}
}

// llamaCppDifferences are the reference texts on which llama.cpp's own
// tokenizer departs from Hugging Face's (and so from surgeon's), by
// fixture and text index, with the reason. They are checked to still
// differ, so the list stays true.
var llamaCppDifferences = map[string]map[int]string{
	"qwen3": {
		17: "llama.cpp does not apply Qwen's NFC normalizer: the combining é stays e + U+0301",
		19: "llama.cpp does not apply Qwen's NFC normalizer to the stacked combining marks",
		20: "llama.cpp does not apply Qwen's NFC normalizer: Å (U+212B) and A + U+030A stay as written",
		53: "llama.cpp's vocabulary loader forces the ordinary vocabulary token \"</s>\" to a control token (its end-of-generation guess), so it is matched whole in the text",
		67: "llama.cpp does not apply Qwen's NFC normalizer: the second İ, written I + U+0307, stays decomposed",
	},
}

// llamaCppPeer returns tools/llamacpp/tokenize.mjs, skipping the test
// when node or node-llama-cpp is missing.
func llamaCppTokenizeScript(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed: the llama.cpp peer test needs node and tools/llamacpp (cd tools/llamacpp && npm ci)")
	}
	script, _ := filepath.Abs("../../tools/llamacpp/tokenize.mjs")
	if _, err := os.Stat(filepath.Join(filepath.Dir(script), "node_modules", "node-llama-cpp", "package.json")); err != nil {
		t.Skip("node-llama-cpp is not installed: cd tools/llamacpp && npm ci")
	}
	return script
}

// llamaCppTokenize has llama.cpp tokenize the texts with each model and
// returns the ids, by model and text.
func llamaCppTokenize(t *testing.T, texts []string, models ...string) [][][]int {
	t.Helper()
	script := llamaCppTokenizeScript(t)
	textsFile := filepath.Join(t.TempDir(), "texts.json")
	raw, _ := json.Marshal(texts)
	if err := os.WriteFile(textsFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("node", append([]string{script, textsFile}, models...)...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("llama.cpp peer: %v\n%s", err, msg)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(models) {
		t.Fatalf("llama.cpp peer printed %d lines for %d models", len(lines), len(models))
	}
	res := make([][][]int, len(models))
	for i, line := range lines {
		var r struct {
			IDs [][]int `json:"ids"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("llama.cpp peer output: %v", err)
		}
		if len(r.IDs) != len(texts) {
			t.Fatalf("llama.cpp tokenized %d texts of %d", len(r.IDs), len(texts))
		}
		res[i] = r.IDs
	}
	return res
}

// compareWithLlamaCpp checks llama.cpp's ids against the tokenizer's on
// every text: equal, or listed in known with the reason (and then still
// different).
func compareWithLlamaCpp(t *testing.T, tok tokenizer.Tokenizer, texts []tokrefText, theirs [][]int, known map[int]string) {
	t.Helper()
	equal := 0
	for i, x := range texts {
		ours := tok.Encode(x.Text, false)
		same := slices.Equal(ours, theirs[i])
		if same {
			equal++
		}
		why, isKnown := known[i]
		switch {
		case !same && !isKnown:
			t.Errorf("%s text %d %q:\n surgeon   %v\n llama.cpp %v", x.Set, i, x.Text, ours, theirs[i])
		case !same:
			t.Logf("known llama.cpp difference, text %d %q: %s", i, x.Text, why)
		case isKnown:
			t.Errorf("text %d %q: listed as a llama.cpp difference (%s) but llama.cpp now agrees", i, x.Text, why)
		}
	}
	t.Logf("%d of %d texts: llama.cpp's ids equal surgeon's", equal, len(texts))
}

func textList(texts []tokrefText) []string {
	out := make([]string, len(texts))
	for i, x := range texts {
		out[i] = x.Text
	}
	return out
}

// llama.cpp (node-llama-cpp) loads the GGUF files surgeon writes for
// byte-level BPE tokenizers and tokenizes the reference texts (Shakespeare,
// fortunes, whitespace runs, digits, CJK, emoji, code...) into the same ids
// as surgeon, except where llama.cpp itself departs from Hugging Face
// (llamaCppDifferences).
func TestLlamaCppTokenize(t *testing.T) {
	llamaCppTokenizeScript(t)
	var texts []tokrefText
	readTokref(t, "texts", &texts)
	for _, fx := range bpeFixtures {
		t.Run(fx.name, func(t *testing.T) {
			path := ggufOfFixture(t, fx.dir)
			g, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := gguf.Tokenizer(g)
			g.Close()
			if err != nil {
				t.Fatal(err)
			}
			theirs := llamaCppTokenize(t, textList(texts), path)
			compareWithLlamaCpp(t, tok, texts, theirs[0], llamaCppDifferences[fx.name])
		})
	}
}

// withPre rewrites the GGUF file src with tokenizer.ggml.pre set to pre.
func withPre(t *testing.T, src, pre string) string {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kvs []gguf.KV
	for _, k := range f.Keys() {
		v, err := f.Value(k)
		if err != nil {
			t.Fatal(err)
		}
		val := gguf.ValueOf(v)
		if k == "tokenizer.ggml.pre" {
			val = pre
		}
		kvs = append(kvs, gguf.KV{Key: k, Value: val})
	}
	var ts []gguf.WriteTensor
	for _, ti := range f.Tensors() {
		data, err := f.TensorData(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, gguf.WriteTensor{Name: ti.Name, Shape: ti.Shape(), Type: ti.Type, Data: data})
	}
	out := filepath.Join(t.TempDir(), pre+".gguf")
	if err := gguf.Write(out, kvs, ts); err != nil {
		t.Fatal(err)
	}
	return out
}

// llamaCppPreDifferences are, by tokenizer.ggml.pre name, the reference
// texts on which llama.cpp's reading of GPT-2's vocabulary under that
// pre-tokenizer departs from surgeon's, with the reason.
var llamaCppPreDifferences = map[string]map[int]string{
	"qwen2": {
		17: "llama.cpp does not apply Qwen's NFC normalizer: the combining é stays e + U+0301",
		19: "llama.cpp does not apply Qwen's NFC normalizer to the stacked combining marks",
		20: "llama.cpp does not apply Qwen's NFC normalizer: Å (U+212B) and A + U+030A stay as written",
		67: "llama.cpp does not apply Qwen's NFC normalizer: the second İ, written I + U+0307, stays decomposed",
	},
}

// Every tokenizer.ggml.pre name surgeon reads splits text as llama.cpp
// does: GPT-2's vocabulary written under each name (one file per group of
// aliases) tokenizes the reference texts into llama.cpp's ids, except the
// differences listed in llamaCppPreDifferences.
func TestLlamaCppPreTokenizers(t *testing.T) {
	llamaCppTokenizeScript(t)
	var texts []tokrefText
	readTokref(t, "texts", &texts)
	src := ggufOfFixture(t, "peft-lora-gpt2-smartreview/gpt2-tokenizer")
	var names, paths []string
	for _, p := range gguf.PreTokenizerGroups() {
		names = append(names, p)
		paths = append(paths, withPre(t, src, p))
	}
	theirs := llamaCppTokenize(t, textList(texts), paths...)
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			g, err := gguf.Open(paths[i])
			if err != nil {
				t.Fatal(err)
			}
			tok, err := gguf.Tokenizer(g)
			g.Close()
			if err != nil {
				t.Fatal(err)
			}
			compareWithLlamaCpp(t, tok, texts, theirs[i], llamaCppPreDifferences[name])
		})
	}
}
