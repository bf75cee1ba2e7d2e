package gguf

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

// llamaCppBundle is llama.cpp's source as node-llama-cpp ships it (a git
// bundle), for tools/llamacpp's peer tests.
var llamaCppBundle = filepath.Join("..", "..", "tools", "llamacpp", "node_modules", "node-llama-cpp", "llama", "gitRelease.bundle")

// llamaCppModels clones llama.cpp's source from the bundle (without a
// checkout) and returns a function reading a file of its models/ folder;
// it skips the test when git or the bundle is missing.
func llamaCppModels(t *testing.T) func(name string) ([]byte, bool) {
	t.Helper()
	if _, err := os.Stat(llamaCppBundle); err != nil {
		t.Skip("node-llama-cpp is not installed (its git bundle holds llama.cpp's vocabulary test files): cd tools/llamacpp && npm ci")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: reading llama.cpp's bundle needs it")
	}
	dir := filepath.Join(t.TempDir(), "llama.cpp")
	if out, err := exec.Command("git", "clone", "-q", "--no-checkout", llamaCppBundle, dir).CombinedOutput(); err != nil {
		t.Fatalf("git clone %s: %v\n%s", llamaCppBundle, err, out)
	}
	return func(name string) ([]byte, bool) {
		out, err := exec.Command("git", "-C", dir, "show", "HEAD:models/"+name).Output()
		return out, err == nil
	}
}

// llama.cpp's own vocabulary files (models/ggml-vocab-*.gguf, written by
// its convert_hf_to_gguf.py from the Hugging Face tokenizers) read in
// surgeon tokenize their test texts (models/*.gguf.inp) into the ids
// transformers gave (models/*.gguf.out, from tokenizer.encode without
// special tokens): byte-level BPE under eleven pre-tokenizers, SentencePiece
// and WordPiece. Files surgeon cannot read are refused with the reason.
func TestLlamaCppVocabFiles(t *testing.T) {
	read := llamaCppModels(t)
	for _, tc := range []struct {
		name string
		err  string // the refusal, for files surgeon does not read
		is   error
		pre  string // tokenizer.ggml.pre surgeon writes for a byte-level BPE read from the file
	}{
		{name: "gpt-2", pre: "gpt-2"}, {name: "llama-bpe", pre: "llama-bpe"}, {name: "qwen2", pre: "qwen2"},
		{name: "deepseek-llm", pre: "deepseek-llm"}, {name: "deepseek-coder", pre: "deepseek-coder"},
		{name: "falcon", pre: "-"}, {name: "mpt", pre: "gpt-2"}, {name: "refact", pre: "smollm"},
		{name: "starcoder", pre: "smollm"}, {name: "command-r", pre: "smollm"},
		{name: "gpt-neox", pre: "-"}, {name: "aquila", pre: "-"},
		{name: "bert-bge"}, {name: "llama-spm"}, {name: "phi-3"}, {name: "baichuan"},
		{name: "qwen35", pre: "qwen35"},
		{name: "gemma-4", err: `tokenizer.ggml.model is "gemma4"`},
		{name: "nomic-bert-moe", err: `tokenizer.ggml.model is "t5"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, ok := read("ggml-vocab-" + tc.name + ".gguf")
			if !ok {
				t.Skipf("llama.cpp's bundle has no models/ggml-vocab-%s.gguf", tc.name)
			}
			f, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := Tokenizer(f)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || tc.is != nil && !errors.Is(err, tc.is) {
					t.Fatalf("err = %v, want a refusal with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.pre != "" {
				// Written back, the byte-level BPE keeps its pre-tokenizer
				// name (one per group of aliases); llama.cpp's "default"
				// and "falcon" have no tokenizer.json spelling.
				parts, err := tok.(*tokenizer.HF).ByteLevelBPE()
				if err != nil {
					t.Fatal(err)
				}
				kvs, err := BPEMetadata(parts, 0)
				switch {
				case tc.pre == "-" && !errors.Is(err, ErrUnknownPreTokenizer):
					t.Errorf("BPEMetadata: err = %v, want ErrUnknownPreTokenizer", err)
				case tc.pre != "-" && err != nil:
					t.Errorf("BPEMetadata: %v", err)
				case tc.pre != "-" && kvs[1].Value != tc.pre:
					t.Errorf("written back as pre %v, want %q", kvs[1].Value, tc.pre)
				}
			}
			inp, ok := read("ggml-vocab-" + tc.name + ".gguf.inp")
			if !ok {
				t.Logf("no test texts; the vocabulary reads")
				return
			}
			out, _ := read("ggml-vocab-" + tc.name + ".gguf.out")
			texts := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
			texts = texts[:len(texts)-1]
			lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			if len(lines) != len(texts) {
				t.Fatalf("%d texts, %d id lines", len(texts), len(lines))
			}
			for i, text := range texts {
				var want []int
				for _, w := range strings.Fields(lines[i]) {
					n, err := strconv.Atoi(w)
					if err != nil {
						t.Fatal(err)
					}
					want = append(want, n)
				}
				if got := tok.Encode(text, false); !slices.Equal(got, want) {
					t.Errorf("text %d %q:\n got %v\nwant %v", i, text, got, want)
				}
			}
			m, _ := f.String("tokenizer.ggml.model")
			pre, _ := f.String("tokenizer.ggml.pre")
			t.Logf("model %q, pre %q: %d texts equal transformers' ids", m, pre, len(texts))
		})
	}
}
