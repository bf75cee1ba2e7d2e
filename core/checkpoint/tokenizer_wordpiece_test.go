package checkpoint

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

// TestReferenceBERTTokenizers loads the vocab.txt of each reference BERT
// checkpoint (written by tools/refgen/bertvocab.py) as surgeon does.
func TestReferenceBERTTokenizers(t *testing.T) {
	for _, name := range []string{"bert-f32", "bert-f16"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(refDir, name)
			var cfg struct {
				VocabSize int `json:"vocab_size"`
				PadID     int `json:"pad_token_id"`
			}
			readJSON(t, filepath.Join(dir, "config.json"), &cfg)
			var exp expected
			readJSON(t, filepath.Join(dir, "expected.json"), &exp)

			l, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			for _, loaded := range []*Loaded{nil, l} {
				tok, err := LoadTokenizer(dir, loaded)
				if err != nil {
					t.Fatal(err)
				}
				wp, ok := tok.(*tokenizer.WordPiece)
				if !ok {
					t.Fatalf("LoadTokenizer = %T, want *tokenizer.WordPiece", tok)
				}
				if wp.VocabSize() != cfg.VocabSize || wp.Pad() != cfg.PadID || !wp.Lowercase() {
					t.Fatalf("VocabSize %d, Pad %d, Lowercase %v; config.json has vocab_size %d, pad_token_id %d",
						wp.VocabSize(), wp.Pad(), wp.Lowercase(), cfg.VocabSize, cfg.PadID)
				}
				// expected.json's inputs are [CLS] ... [SEP].
				for _, in := range exp.Inputs {
					if in[0] != tok.BOS() || in[len(in)-1] != tok.EOS() {
						t.Fatalf("reference input %v does not run from BOS %d to EOS %d", in, tok.BOS(), tok.EOS())
					}
				}
				const text = "Wow... Loved this place! The food wasn't bad; 10/10 (would go again) - $5 & \"great\"."
				ids := tok.Encode(text, true)
				if ids[0] != tok.BOS() || ids[len(ids)-1] != tok.EOS() {
					t.Fatalf("Encode = %v", ids)
				}
				for _, id := range ids {
					if id == wp.UNK() || id < 0 || id >= cfg.VocabSize {
						t.Fatalf("Encode(%q) = %v has [UNK] or an id out of range", text, ids)
					}
				}
				if got, want := tok.Decode(ids), `wow... loved this place! the food wasn't bad ; 10 / 10 ( would go again ) - $ 5 & " great ".`; got != want {
					t.Fatalf("Decode = %q, want %q", got, want)
				}
			}
		})
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestReferenceBERTUnknownRate tokenizes the UCI sentiment-labelled sentences
// with the reference vocabularies, which were chosen to leave no [UNK] in
// them.
func TestReferenceBERTUnknownRate(t *testing.T) {
	const data = "../../../shared/fixtures/uci-sentiment-labelled-sentences"
	var texts []string
	for _, name := range []string{"amazon.json", "imdb.json", "yelp.json"} {
		raw, err := os.ReadFile(filepath.Join(data, name))
		if err != nil {
			t.Skipf("fixture not available (%v); it lives in ../shared/fixtures next to the repository", err)
		}
		var ex []struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(raw, &ex); err != nil {
			t.Fatal(err)
		}
		for _, e := range ex {
			texts = append(texts, e.Text)
		}
	}
	for _, name := range []string{"bert-f32", "bert-f16"} {
		tok, err := LoadTokenizer(filepath.Join(refDir, name), nil)
		if err != nil {
			t.Fatal(err)
		}
		unk := tok.(*tokenizer.WordPiece).UNK()
		var n, unks, withUnk int
		for _, text := range texts {
			ids := tok.Encode(text, false)
			c := 0
			for _, id := range ids {
				if id == unk {
					c++
				}
			}
			n += len(ids)
			unks += c
			if c > 0 {
				withUnk++
			}
		}
		t.Logf("%s: %d sentences, %d tokens (%.1f a sentence), %d [UNK] (%.2f%%), %d sentences with [UNK]",
			name, len(texts), n, float64(n)/float64(len(texts)), unks, 100*float64(unks)/float64(n), withUnk)
		if unks != 0 {
			t.Errorf("%s: %d [UNK] in %d tokens", name, unks, n)
		}
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadTokenizerWordPiece(t *testing.T) {
	const vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nHello\n"
	cases := []struct {
		name   string
		config string // tokenizer_config.json, if any
		want   []int
	}{
		{"no config", "", []int{2, 5, 5, 3}},
		{"config without do_lower_case", `{"tokenizer_class": "BertTokenizer"}`, []int{2, 5, 5, 3}},
		{"lowercase", `{"do_lower_case": true}`, []int{2, 5, 5, 3}},
		{"cased", `{"do_lower_case": false}`, []int{2, 6, 5, 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{"vocab.txt": vocab}
			if c.config != "" {
				files["tokenizer_config.json"] = c.config
			}
			tok, err := LoadTokenizer(writeFiles(t, files), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Encode("Hello hello", true); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Encode = %v, want %v", got, c.want)
			}
		})
	}

	t.Run("tokenizer.model first", func(t *testing.T) {
		model, err := os.ReadFile("../tokenizer/testdata/sentencepiece-bpe.model")
		if err != nil {
			t.Fatal(err)
		}
		dir := writeFiles(t, map[string]string{"vocab.txt": vocab, "tokenizer.model": string(model)})
		tok, err := LoadTokenizer(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := tok.(*tokenizer.SPM); !ok {
			t.Fatalf("LoadTokenizer = %T, want *tokenizer.SPM", tok)
		}
	})

	errCases := []struct {
		name  string
		files map[string]string
		sub   []string
	}{
		{"no [UNK]", map[string]string{"vocab.txt": "[PAD]\n[CLS]\n[SEP]\n"}, []string{"vocab.txt", "has no [UNK]"}},
		{"bad config", map[string]string{"vocab.txt": vocab, "tokenizer_config.json": "{"}, []string{"tokenizer_config.json", "unexpected end of JSON"}},
		{"bad do_lower_case", map[string]string{"vocab.txt": vocab, "tokenizer_config.json": `{"do_lower_case": "no"}`}, []string{"tokenizer_config.json", "cannot unmarshal"}},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := LoadTokenizer(writeFiles(t, c.files), nil)
			if err == nil || tok != nil {
				t.Fatalf("LoadTokenizer = %v, %v; want an error", tok, err)
			}
			for _, sub := range c.sub {
				if !strings.Contains(err.Error(), sub) {
					t.Fatalf("error %q, want %q", err, sub)
				}
			}
		})
	}
}
