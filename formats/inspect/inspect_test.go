package inspect

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/formats/native"
)

const refDir = "../../core/testdata/reference"

// TestNative reports a native folder and a single-file native model with
// the same tensors as the Hugging Face folder they came from.
func TestNative(t *testing.T) {
	src := filepath.Join(refDir, "bert-f32")
	hf, err := Path(src)
	if err != nil {
		t.Fatal(err)
	}
	l, err := checkpoint.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := filepath.Join(t.TempDir(), "bert.spago")
	if err := checkpoint.SaveNative(dir, l); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "old.spago")
	if err := native.SaveModel(file, l.Model); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path      string
		tokenizer string
	}{
		{dir, "vocab.txt"},
		{file, ""},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			r, err := Path(c.path)
			if err != nil {
				t.Fatal(err)
			}
			if r.Format != "native" || r.TensorCount != hf.TensorCount || r.ParamCount != hf.ParamCount {
				t.Fatalf("format %s, %d tensors, %d parameters; the source has %d, %d", r.Format, r.TensorCount, r.ParamCount, hf.TensorCount, hf.ParamCount)
			}
			if r.Config["model_type"] != "bert" {
				t.Fatalf("config %v", r.Config)
			}
			if r.Family != "bert" || r.Head != "sequence-classification" || r.Labels != 3 {
				t.Fatalf("family %q head %q labels %d, want bert sequence-classification 3", r.Family, r.Head, r.Labels)
			}
			if got := r.Metadata["tokenizer_files"]; got != c.tokenizer {
				t.Fatalf("tokenizer_files %q, want %q", got, c.tokenizer)
			}
		})
	}
	if hf.Format != "hf-model" {
		t.Fatalf("source format %s", hf.Format)
	}
}

// A model folder's report names the family surgeon builds and its head;
// a config of no known architecture says so instead of failing.
func TestFamilyAndHead(t *testing.T) {
	for _, c := range []struct {
		ref, family, head string
		labels            int
	}{
		{"llama-gqa-f32", "llama", "causal-lm", 0},
		{"gpt2-cls-f32", "gpt2", "sequence-classification", 3},
		{"phi3-gqa-f32", "phi3", "causal-lm", 0},
		{"xlm-roberta-bf16-sharded", "xlm-roberta", "sequence-classification", 2},
	} {
		t.Run(c.ref, func(t *testing.T) {
			r, err := Path(filepath.Join(refDir, c.ref))
			if err != nil {
				t.Fatal(err)
			}
			if r.Family != c.family || r.Head != c.head || r.Labels != c.labels || r.FamilyError != "" {
				t.Fatalf("family %q head %q labels %d (%s), want %s %s %d", r.Family, r.Head, r.Labels, r.FamilyError, c.family, c.head, c.labels)
			}
		})
	}
	dir := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		raw, err := os.ReadFile(filepath.Join(refDir, "llama-gqa-f32", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "config.json" {
			raw = bytes.Replace(raw, []byte(`"llama"`), []byte(`"llama-from-the-future"`), 1)
		}
		if err := os.WriteFile(filepath.Join(dir, f), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Path(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Family != "" || !strings.Contains(r.FamilyError, "llama-from-the-future") || r.TensorCount == 0 {
		t.Fatalf("unknown model_type: family %q error %q, %d tensors", r.Family, r.FamilyError, r.TensorCount)
	}
}

// A GGUF model file names its family and head.
func TestGGUFFamily(t *testing.T) {
	path := "../../../shared/fixtures/stories260K-gguf/stories260K.gguf"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("stories260K fixture (../shared/fixtures missing): %v", err)
	}
	r, err := Path(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Family != "llama" || r.Head != "causal-lm" || r.FamilyError != "" {
		t.Fatalf("family %q head %q (%s), want llama causal-lm", r.Family, r.Head, r.FamilyError)
	}
}
