package checkpoint

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/generate"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tokenizer"
	"github.com/surgeon-ml/surgeon/formats/detect"
	"github.com/surgeon-ml/surgeon/formats/native"
)

// logits runs m on ids and returns the flat logits.
func logits(t *testing.T, m model.Model, ids []int) []float32 {
	t.Helper()
	out, err := m.Logits(model.Batch{IDs: [][]int{ids}})
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), ops.Data(out)...)
}

// toNative writes l as a native folder and loads it back.
func toNative(t *testing.T, l *Loaded) (string, *Loaded) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "m.spago")
	if err := SaveNative(dir, l); err != nil {
		t.Fatal(err)
	}
	if f, err := detect.Path(dir); err != nil || f != detect.Native {
		t.Fatalf("detect.Path(native folder) = %q, %v", f, err)
	}
	n, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if n.Format != detect.Native {
		t.Fatalf("loaded as %q", n.Format)
	}
	return dir, n
}

// TestNativeStories converts stories260K (GGUF) to a native folder: the
// folder decodes the same greedy story with the same ids and bit-identical
// logits, and its tokenizer encodes and decodes like the GGUF's.
func TestNativeStories(t *testing.T) {
	l := loadStories(t)
	dir, n := toNative(t, l)

	want, err := LoadTokenizer(storiesPath, l)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := LoadTokenizer(dir, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"Once upon a time", "Lily saw a big dog. 日本 🙂"} {
		if a, b := tok.Encode(text, true), want.Encode(text, true); !reflect.DeepEqual(a, b) {
			t.Fatalf("Encode(%q) = %v from the native folder, %v from the GGUF", text, a, b)
		}
	}
	if tok.BOS() != want.BOS() || tok.EOS() != want.EOS() {
		t.Fatalf("BOS/EOS %d/%d, GGUF %d/%d", tok.BOS(), tok.EOS(), want.BOS(), want.EOS())
	}

	ids := []int{1, 403, 407, 261, 378}
	if a, b := logits(t, n.Model, ids), logits(t, l.Model, ids); !slices.Equal(a, b) {
		t.Fatal("native logits differ from the GGUF's")
	}
	gen := func(m model.Model) []int {
		out, err := generate.Generate(context.Background(), m, []int{want.BOS()}, generate.Options{MaxNew: 40, EOS: want.EOS()})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := gen(n.Model), gen(l.Model)
	if !slices.Equal(a, b) {
		t.Fatalf("greedy ids %v from the native folder, %v from the GGUF", a, b)
	}
	const story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, r"
	if got := strings.TrimSpace(tok.Decode(append([]int{tok.BOS()}, a...))); got != story {
		t.Fatalf("native folder decodes %q, want %q", got, story)
	}

	// Converting the native folder on keeps the tokenizer.
	files, err := TokenizerFiles(n)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{SentencePieceFile, "tokenizer_config.json", "special_tokens_map.json"} {
		if files[f] == nil {
			t.Errorf("TokenizerFiles of the native folder lacks %s", f)
		}
	}
}

// TestNativeBERT round-trips the reference BERT checkpoints (WordPiece
// vocab.txt) through a native folder.
func TestNativeBERT(t *testing.T) {
	for _, name := range []string{"bert-f32", "bert-f16"} {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(refDir, name)
			l, err := Load(src)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			dir, n := toNative(t, l)
			if !reflect.DeepEqual(n.Model.HFConfig(), l.Model.HFConfig()) {
				t.Fatalf("config %v, want %v", n.Model.HFConfig(), l.Model.HFConfig())
			}
			ids := []int{2, 7, 11, 3}
			if a, b := logits(t, n.Model, ids), logits(t, l.Model, ids); !slices.Equal(a, b) {
				t.Fatal("native logits differ from the safetensors folder's")
			}
			tok, err := LoadTokenizer(dir, n)
			if err != nil {
				t.Fatal(err)
			}
			want, err := LoadTokenizer(src, l)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := tok.(*tokenizer.WordPiece); !ok {
				t.Fatalf("tokenizer %T, want WordPiece", tok)
			}
			const text = "Wow... Loved this place! The food wasn't bad; 10/10"
			if a, b := tok.Encode(text, true), want.Encode(text, true); !reflect.DeepEqual(a, b) {
				t.Fatalf("Encode = %v from the native folder, %v from the source", a, b)
			}
		})
	}
}

// TestNativeLegacyFile loads a single-file native model as earlier
// versions wrote it: the model loads, and asking for its tokenizer says
// there is none.
func TestNativeLegacyFile(t *testing.T) {
	src := filepath.Join(refDir, "llama-gqa-f32")
	l, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	file := filepath.Join(t.TempDir(), "old.spago")
	if err := native.SaveModel(file, l.Model); err != nil {
		t.Fatal(err)
	}
	n, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ids := []int{1, 5, 9}
	if a, b := logits(t, n.Model, ids), logits(t, l.Model, ids); !slices.Equal(a, b) {
		t.Fatal("native file logits differ")
	}
	if _, err := LoadTokenizer(file, n); err == nil || !strings.Contains(err.Error(), "no tokenizer") {
		t.Fatalf("LoadTokenizer on a single-file native model: %v, want a 'no tokenizer' error", err)
	}
	files, err := TokenizerFiles(n)
	if err != nil || files != nil {
		t.Fatalf("TokenizerFiles = %v, %v; want none", files, err)
	}

	// A native folder without tokenizer files loads; its tokenizer error
	// names the folder.
	dir := filepath.Join(t.TempDir(), "bare.spago")
	if err := SaveNative(dir, n); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := LoadTokenizer(dir, m); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("LoadTokenizer on a folder without tokenizer: %v", err)
	}

	// config.json that disagrees with the model is an error.
	if err := os.WriteFile(filepath.Join(dir, native.ConfigFile), []byte(`{"model_type":"bert"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "model_type") {
		t.Fatalf("Load with a mismatched config.json: %v", err)
	}
}

// A native folder keeps a decoder classifier's pad_token_id of 0 (gob
// drops pointers to zero; the families restore them), so it pools the
// same token as the Hugging Face folder on a text that ends with the pad
// id, and its config is the source's.
func TestNativeKeepsZeroTokenIDs(t *testing.T) {
	for _, ref := range []string{"qwen2-cls-f32", "gemma2-cls-softcap-f32", "gpt2-cls-f32"} {
		t.Run(ref, func(t *testing.T) {
			src, err := Load(filepath.Join("../testdata/reference", ref))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			_, n := toNative(t, src)
			defer n.Close()
			want, got := src.Model.HFConfig(), n.Model.HFConfig()
			if got["pad_token_id"] == nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("native config\n%v\nwant\n%v", got, want)
			}
			ids := []int{5, 9, 0, 0}
			if a, b := logits(t, n.Model, ids), logits(t, src.Model, ids); !slices.Equal(a, b) {
				t.Fatalf("logits of %v: native %v, source %v", ids, a, b)
			}
		})
	}
}
