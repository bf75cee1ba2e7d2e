package checkpoint

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/formats/detect"
)

func loadStories(t *testing.T) *Loaded {
	t.Helper()
	if _, err := os.Stat(storiesPath); err != nil {
		t.Skipf("fixture %s not available (%v); it lives in ../shared/fixtures next to the repository", storiesPath, err)
	}
	l, err := Load(storiesPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

var onceUpon = []int{1, 403, 407, 261, 378}

func TestTokenizerFilesStories(t *testing.T) {
	l := loadStories(t)
	files, err := TokenizerFiles(l)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range files {
		names = append(names, name)
	}
	if len(files) != 3 || files["tokenizer.model"] == nil || files["tokenizer_config.json"] == nil || files["special_tokens_map.json"] == nil {
		t.Fatalf("files %v", names)
	}

	t.Run("tokenizer.model", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "tokenizer.model"), files["tokenizer.model"], 0o644); err != nil {
			t.Fatal(err)
		}
		tok, err := LoadTokenizer(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Encode("Once upon a time", true); !reflect.DeepEqual(got, onceUpon) {
			t.Fatalf("Encode = %v, want %v", got, onceUpon)
		}
	})

	t.Run("tokenizer_config.json", func(t *testing.T) {
		var cfg map[string]any
		if err := json.Unmarshal(files["tokenizer_config.json"], &cfg); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
			"add_bos_token": true, "add_eos_token": false, "model_max_length": l.Model.HFConfig()["max_position_embeddings"], "legacy": true,
			"clean_up_tokenization_spaces": false,
		}
		if !reflect.DeepEqual(cfg, want) {
			t.Fatalf("tokenizer_config.json = %v, want %v", cfg, want)
		}
	})

	t.Run("special_tokens_map.json", func(t *testing.T) {
		var m map[string]any
		if err := json.Unmarshal(files["special_tokens_map.json"], &m); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
		if !reflect.DeepEqual(m, want) {
			t.Fatalf("special_tokens_map.json = %v, want %v", m, want)
		}
	})
}

// TestConvertedFolderTokenizer converts stories260K to a Hugging Face folder
// with its tokenizer, as merge does, and tokenizes with the folder alone.
func TestConvertedFolderTokenizer(t *testing.T) {
	l := loadStories(t)
	files, err := TokenizerFiles(l)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "hf")
	if err := SaveHF(dir, l.Model, SaveOptions{Extra: files}); err != nil {
		t.Fatal(err)
	}
	hf, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	tok, err := LoadTokenizer(dir, hf)
	if err != nil {
		t.Fatal(err)
	}
	want, err := LoadTokenizer(storiesPath, l)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"Once upon a time", "Lily saw a big dog. 日本 🙂"} {
		if a, b := tok.Encode(text, true), want.Encode(text, true); !reflect.DeepEqual(a, b) {
			t.Fatalf("Encode(%q) = %v from the folder, %v from the GGUF", text, a, b)
		}
	}
	if got := tok.Encode("Once upon a time", true); !reflect.DeepEqual(got, onceUpon) {
		t.Fatalf("Encode = %v, want %v", got, onceUpon)
	}
}

func TestLoadTokenizerErrors(t *testing.T) {
	empty := t.TempDir()
	jsonOnly := t.TempDir()
	if err := os.WriteFile(filepath.Join(jsonOnly, "tokenizer.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "tokenizer.model"), []byte{0x0a, 0x05}, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(empty, "model.safetensors")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, sub string
	}{
		{"no tokenizer.model", empty, "folder has no tokenizer.json, tokenizer.model or vocab.txt"},
		{"tokenizer.json without model", jsonOnly, "tokenizer.json: model: missing"},
		{"malformed", bad, "malformed sentencepiece model"},
		{"file", file, "no tokenizer"},
		{"missing", filepath.Join(empty, "nope"), "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadTokenizer(c.path, nil)
			if err == nil || !strings.Contains(err.Error(), c.sub) {
				t.Fatalf("error %v, want %q", err, c.sub)
			}
		})
	}
}

func TestTokenizerFilesNotGGUF(t *testing.T) {
	files, err := TokenizerFiles(&Loaded{Format: detect.HFModel})
	if files != nil || err != nil {
		t.Fatalf("files %v, error %v", files, err)
	}
}
