package inspect

import (
	"path/filepath"
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
			if got := r.Metadata["tokenizer_files"]; got != c.tokenizer {
				t.Fatalf("tokenizer_files %q, want %q", got, c.tokenizer)
			}
		})
	}
	if hf.Format != "hf-model" {
		t.Fatalf("source format %s", hf.Format)
	}
}
