package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func tokenizerFixture(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "fixtures", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("fixture %s not available (%v); it lives in ../shared/fixtures next to the repository", p, err)
	}
	return p
}

// TestTokenize runs `surgeon tokenize` on a folder, a tokenizer.json and a
// GGUF file; the ids are transformers.js' (tools/tokref).
func TestTokenize(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"folder json", []string{"tokenizers/llama2", "--text", "Hello world", "--special", "--json"}, `"ids": [
    1,
    22557,
    1526
  ]`},
		{"no special", []string{"tokenizers/llama2", "--text", "Hello world", "--json"}, `"ids": [
    22557,
    1526
  ]`},
		{"tokenizer.json table", []string{"tokenizers/bert-base-uncased/tokenizer.json", "--text", "Hello world", "--special"}, "3  102   \"[SEP]\"\n4 tokens"},
		{"gguf", []string{"stories260K-gguf/stories260K.gguf", "--text", "Once upon a time", "--special", "--json"}, `"▁Once"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"tokenize", tokenizerFixture(t, c.args[0])}, c.args[1:]...)
			code, out, errOut := runCLI(args...)
			if code != 0 || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, stdout:\n%s\nstderr: %s\nwant %q", code, out, errOut, c.want)
			}
		})
	}
}

func TestTokenizeJSONL(t *testing.T) {
	dir := tokenizerFixture(t, "peft-lora-gpt2-smartreview/gpt2-tokenizer")
	in := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(in, []byte("{\"text\": \"Hello world\"}\n{\"text\": \"\"}\n{\"text\": \"a<|endoftext|>b\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("tokenize", dir, "--jsonl", in, "--special")
	want := "{\"ids\":[15496,995]}\n{\"ids\":[]}\n{\"ids\":[64,50256,65]}\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, stdout %q, want %q; stderr %s", code, out, want, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"text\": \"ok\"}\n{\"txt\": 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI("tokenize", dir, "--jsonl", bad); code == 0 || !strings.Contains(errOut, "bad.jsonl:2: no \"text\"") {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
}

func TestTokenizeErrors(t *testing.T) {
	dir := t.TempDir()
	tj := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(tj, []byte(`{"model": {"type": "WordLevel", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, {"type": "Foo"}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown component", []string{tj, "--text", "a"}, `tokenizer.json: pre_tokenizer.pretokenizers[1]: unknown type "Foo"`},
		{"both inputs", []string{tj, "--text", "a", "--jsonl", "x"}, "give one of --text and --jsonl"},
		{"no input", []string{tj}, "give one of --text and --jsonl"},
		{"missing", []string{filepath.Join(dir, "nope")}, "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "missing" {
				c.args = append(c.args, "--text", "a")
			}
			code, _, errOut := runCLI(append([]string{"tokenize"}, c.args...)...)
			if code == 0 || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %q, want %q", code, errOut, c.want)
			}
		})
	}
}
