package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

var tokenizerFixtures = filepath.Join("..", "..", "..", "shared", "fixtures")

// TestLoadTokenizerJSON loads the fixture folders whose tokenizer is a
// tokenizer.json and checks the special tokens they report: BOS/EOS from
// tokenizer_config.json, what Encode adds from the post-processor.
func TestLoadTokenizerJSON(t *testing.T) {
	cases := []struct {
		dir            string
		bos, eos, pad  int
		addBOS, addEOS bool
		text           string
		ids            []int  // with special tokens (transformers.js)
		decoded        string // "": text
	}{
		{"tokenizers/llama3", 128000, 128001, -1, false, false, "Hello world", []int{9906, 1917}, ""},
		{"tokenizers/llama2", 1, 2, -1, true, false, "Hello world", []int{1, 22557, 1526}, ""},
		{"tokenizers/gemma3", 2, 106, 0, true, false, "Hello world", []int{2, 9259, 1902}, ""},
		{"tokenizers/qwen3", -1, 151645, 151643, false, false, "Hello world", []int{9707, 1879}, ""},
		{"tokenizers/bert-base-uncased", 101, 102, -1, true, true, "Hello world", []int{101, 7592, 2088, 102}, "hello world"},
		{"peft-lora-gpt2-smartreview/gpt2-tokenizer", 50256, 50256, 50256, false, false, "Hello world", []int{15496, 995}, ""},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.dir), func(t *testing.T) {
			dir := filepath.Join(tokenizerFixtures, c.dir)
			if _, err := os.Stat(dir); err != nil {
				t.Skipf("fixture %s not available (%v); it lives in ../shared/fixtures next to the repository", dir, err)
			}
			tok, err := LoadTokenizer(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			h, ok := tok.(*tokenizer.HF)
			if !ok {
				t.Fatalf("LoadTokenizer = %T, want *tokenizer.HF", tok)
			}
			if h.BOS() != c.bos || h.EOS() != c.eos || h.Pad() != c.pad || h.AddsBOS() != c.addBOS || h.AddsEOS() != c.addEOS {
				t.Errorf("BOS %d EOS %d Pad %d AddsBOS %v AddsEOS %v, want %d %d %d %v %v",
					h.BOS(), h.EOS(), h.Pad(), h.AddsBOS(), h.AddsEOS(), c.bos, c.eos, c.pad, c.addBOS, c.addEOS)
			}
			if got := h.Encode(c.text, true); !slices.Equal(got, c.ids) {
				t.Errorf("Encode(%q, true) = %v, want %v", c.text, got, c.ids)
			}
			if c.decoded == "" {
				c.decoded = c.text
			}
			if got := h.Decode(h.Encode(c.text, true)); got != c.decoded {
				t.Errorf("Decode(Encode(%q)) = %q", c.text, got)
			}
			// The file itself loads too, with the folder's configuration.
			f, err := LoadTokenizerJSON(filepath.Join(dir, TokenizerJSONFile))
			if err != nil || f.EOS() != c.eos {
				t.Errorf("LoadTokenizerJSON(file): EOS %v, %v", f, err)
			}
		})
	}
}

// TestLoadTokenizerJSONErrors: a bad component is named with its JSON path.
func TestLoadTokenizerJSONErrors(t *testing.T) {
	const model = `"model": {"type": "WordLevel", "vocab": {"a": 0, "[UNK]": 1}, "unk_token": "[UNK]"}`
	cases := []struct {
		name, json, want string
	}{
		{"pre-tokenizer", `{` + model + `, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "ByteLevel"}, {"type": "Foo"}]}}`,
			`tokenizer.json: pre_tokenizer.pretokenizers[1]: unknown type "Foo"`},
		{"normalizer", `{` + model + `, "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Sequence", "normalizers": [{"type": "Bar"}]}]}}`,
			`tokenizer.json: normalizer.normalizers[1].normalizers[0]: unknown type "Bar"`},
		{"model", `{"model": {"type": "Magic", "vocab": {}}}`, `tokenizer.json: model: unknown type "Magic"`},
		{"post-processor", `{` + model + `, "post_processor": {"type": "Sequence", "processors": [{"type": "Baz"}]}}`,
			`tokenizer.json: post_processor.processors[0]: unknown type "Baz"`},
		{"decoder", `{` + model + `, "decoder": {"type": "Sequence", "decoders": [{"type": "Fuse"}, {"type": "Qux"}]}}`,
			`tokenizer.json: decoder.decoders[1]: unknown type "Qux"`},
		{"split behaviour", `{` + model + `, "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"}}`,
			`tokenizer.json: pre_tokenizer.behavior: unknown type "Sideways"`},
		{"look-around regex", `{` + model + `, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a(?=b)"}, "behavior": "Isolated"}}`,
			`tokenizer.json: pre_tokenizer.pattern: regex "a(?=b)"`},
		{"not JSON", `{"model": `, `tokenizer.json: not a tokenizer.json`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, TokenizerJSONFile), []byte(c.json), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadTokenizer(dir, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if strings.Contains(c.want, "unknown type") && !errors.Is(err, tokenizer.ErrUnknownComponent) {
				t.Fatalf("error %v is not ErrUnknownComponent", err)
			}
		})
	}
}
