package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/model"
)

// surgeon convert --to gguf writes a Llama folder whose only tokenizer is
// Llama 2's tokenizer.json (BPE with byte fallback, no tokenizer.model)
// with a SentencePiece vocabulary that tokenizes as transformers.js does.
func TestConvertSentencePieceTokenizerJSON(t *testing.T) {
	src := tokenizerFixture(t, "tokenizers/llama2/tokenizer.json")
	withPlugins(t, "convert")
	dir := t.TempDir()
	folder := filepath.Join(dir, "hf")
	m, err := model.New([]byte(`{"model_type":"llama","architectures":["LlamaForCausalLM"],"hidden_size":16,"intermediate_size":32,
		"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":2,"vocab_size":32000,"rms_norm_eps":1e-5,
		"max_position_embeddings":64,"bos_token_id":1,"eos_token_id":2}`))
	if err != nil {
		t.Fatal(err)
	}
	tj, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.SaveHF(folder, m, checkpoint.SaveOptions{Extra: map[string][]byte{checkpoint.TokenizerJSONFile: tj}}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tiny.gguf")
	if code, _, errs := runCLI("convert", folder, "--to", "gguf", "--type", "f32", "-o", out, "-q"); code != 0 {
		t.Fatalf("convert --to gguf: exit %d: %s", code, errs)
	}
	code, stdout, errs := runCLI("tokenize", out, "--text", "Hello world", "--special", "--json")
	if code != 0 {
		t.Fatalf("tokenize: exit %d: %s", code, errs)
	}
	var r struct {
		IDs []int `json:"ids"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("tokenize output %q: %v", stdout, err)
	}
	if want := []int{1, 22557, 1526}; !slices.Equal(r.IDs, want) { // transformers.js's
		t.Fatalf("ids %v, want %v", r.IDs, want)
	}
	if code, _, errs := runCLI("generate", out, "--prompt", "Hello", "-n", "2"); code != 0 {
		t.Fatalf("generate: exit %d: %s", code, errs)
	}
}
