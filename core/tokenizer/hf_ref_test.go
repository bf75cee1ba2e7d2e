package tokenizer

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// fixturesDir is ../shared/fixtures seen from this package.
var fixturesDir = filepath.Join("..", "..", "..", "shared", "fixtures")

// refTokenizers are the fixture tokenizers tools/tokref covers, folder by
// name.
var refTokenizers = []struct{ name, dir string }{
	{"llama3", "tokenizers/llama3"},
	{"qwen3", "tokenizers/qwen3"},
	{"gemma3", "tokenizers/gemma3"},
	{"llama2", "tokenizers/llama2"},
	{"bert-base-uncased", "tokenizers/bert-base-uncased"},
	{"gpt2", "peft-lora-gpt2-smartreview/gpt2-tokenizer"},
}

type refText struct {
	Set  string `json:"set"`
	Text string `json:"text"`
}

type refIDs struct {
	IDs     [][]int `json:"ids"`
	Special [][]int `json:"special"`
}

func readGzipJSON(t testing.TB, path string, v any) {
	t.Helper()
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

var (
	loadedMu sync.Mutex
	loaded   = map[string]*HF{}
)

// fixtureHF loads a fixture tokenizer (once per test binary), skipping when
// ../shared/fixtures is absent.
func fixtureHF(t testing.TB, dir string) *HF {
	t.Helper()
	file := filepath.Join(fixturesDir, dir, "tokenizer.json")
	if _, err := os.Stat(file); err != nil {
		t.Skipf("fixture %s not available (%v); it lives in ../shared/fixtures next to the repository", file, err)
	}
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if h, ok := loaded[dir]; ok {
		return h
	}
	h, err := LoadHF(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	loaded[dir] = h
	return h
}

// TestHFReference compares the ids of every fixture tokenizer with those
// transformers.js computed (tools/tokref) on Shakespeare, the fortunes and
// our own edge cases, without and with special tokens. Every id must be
// equal.
func TestHFReference(t *testing.T) {
	var texts []refText
	readGzipJSON(t, filepath.Join("testdata", "tokref", "texts.json.gz"), &texts)
	for _, tc := range refTokenizers {
		t.Run(tc.name, func(t *testing.T) {
			h := fixtureHF(t, tc.dir)
			var ref refIDs
			readGzipJSON(t, filepath.Join("testdata", "tokref", tc.name+".json.gz"), &ref)
			if len(ref.IDs) != len(texts) || len(ref.Special) != len(texts) {
				t.Fatalf("%d and %d id lists for %d texts", len(ref.IDs), len(ref.Special), len(texts))
			}
			bad := 0
			for i, x := range texts {
				got := h.Encode(x.Text, false)
				if !slices.Equal(got, ref.IDs[i]) {
					bad++
					if bad <= 5 {
						t.Errorf("%s text %d %q:\n%s", x.Set, i, clip(x.Text), diffIDs(h, got, ref.IDs[i]))
					}
				}
				if ref.Special[i] == nil {
					continue
				}
				if got := h.Encode(x.Text, true); !slices.Equal(got, ref.Special[i]) {
					bad++
					if bad <= 5 {
						t.Errorf("%s text %d %q with special tokens:\n%s", x.Set, i, clip(x.Text), diffIDs(h, got, ref.Special[i]))
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d encodings differ from transformers.js", bad, 2*len(texts))
			}
		})
	}
}

func clip(s string) string {
	if r := []rune(s); len(r) > 60 {
		return string(r[:60]) + "..."
	}
	return s
}

// diffIDs shows where got first departs from want, with the tokens around.
func diffIDs(h *HF, got, want []int) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(0, i-3)
	show := func(ids []int) string {
		hi := min(len(ids), i+5)
		if lo >= hi {
			return "[]"
		}
		return fmt.Sprintf("%v %q", ids[lo:hi], h.Tokens(ids[lo:hi]))
	}
	return fmt.Sprintf("  first difference at %d (len %d vs %d)\n  got  %s\n  want %s", i, len(got), len(want), show(got), show(want))
}
