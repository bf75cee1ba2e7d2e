package main

import (
	"path/filepath"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/formats/gguf"
)

// `surgeon tokenize` on a GGUF file with a byte-level BPE vocabulary
// (tokenizer.ggml.model "gpt2", written from a fixture tokenizer.json)
// prints the ids of the tokenizer.json itself.
func TestTokenizeGGUFByteLevelBPE(t *testing.T) {
	for _, rel := range []string{"peft-lora-gpt2-smartreview/gpt2-tokenizer", "tokenizers/llama3"} {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			dir := tokenizerFixture(t, rel)
			h, err := checkpoint.LoadTokenizerJSON(dir)
			if err != nil {
				t.Fatal(err)
			}
			parts, err := h.ByteLevelBPE()
			if err != nil {
				t.Fatal(err)
			}
			kvs, err := gguf.BPEMetadata(parts, 0)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "tok.gguf")
			if err := gguf.Write(path, kvs, nil); err != nil {
				t.Fatal(err)
			}
			for _, text := range []string{"Hello world<|endoftext|> 12345  \n日本語 😀", "To be, or not to be: that is the question."} {
				_, want, errOut := runCLI("tokenize", dir, "--text", text, "--special", "--json")
				code, got, errOut2 := runCLI("tokenize", path, "--text", text, "--special", "--json")
				if code != 0 || got != want {
					t.Fatalf("GGUF: exit %d\n%s\n%s\ntokenizer.json:\n%s\n%s", code, got, errOut2, want, errOut)
				}
			}
		})
	}
}
