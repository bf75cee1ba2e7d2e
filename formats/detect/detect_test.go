package detect

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// safetensorsBytes is a minimal valid safetensors file with one tensor.
func safetensorsBytes() []byte {
	header := []byte(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`)
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), 0, 0, 0, 0)
}

type Model struct {
	Config map[string]string
	Values []float32
}

type Adapter struct {
	ConfigJSON string
	Names      []string
}

func gobBytes(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPathFiles(t *testing.T) {
	model := gobBytes(t, &Model{Config: map[string]string{"model_type": "llama"}, Values: []float32{1, 2}})
	adapter := gobBytes(t, &Adapter{ConfigJSON: "{}", Names: []string{"a|b"}})
	cases := []struct {
		name    string
		content []byte
		want    Format
		err     string // substring of the error when want is ""
	}{
		{"m.gguf", []byte("GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00"), GGUF, ""},
		{"gguf-named-bin.bin", []byte("GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00"), GGUF, ""},
		{"m.safetensors", safetensorsBytes(), Safetensors, ""},
		{"no-extension", safetensorsBytes(), Safetensors, ""},
		{"truncated.safetensors", []byte{200, 0, 0, 0, 0, 0, 0, 0, '{'}, Safetensors, ""}, // the reader reports the bad length
		{"zip.bin", append([]byte("PK\x03\x04"), make([]byte, 30)...), PyTorch, ""},
		{"legacy.pt", []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20}, PyTorch, ""},
		{"pickle-proto4.pth", []byte{0x80, 0x04, 0x95, 0, 0, 0, 0, 0, 0, 0, 0}, PyTorch, ""},
		{"m.spago", model, Native, ""},
		{"model-named-bin.bin", model, Native, ""},
		{"a.spago", adapter, NativeAdapter, ""},
		{"garbage.bin", bytes.Repeat([]byte{0xff}, 64), "", "named like a PyTorch file"},
		{"garbage.safetensors", bytes.Repeat([]byte{0x01}, 64), "", "named like a safetensors file"},
		{"garbage.spago", []byte("not a gob stream at all"), "", "named like a spago native file"},
		{"garbage.txt", []byte("hello world, this is text"), "", "not a GGUF, safetensors, PyTorch or spago native file"},
		{"short.gguf", []byte("GG"), "", "too short"},
		{"empty", nil, "", "too short"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			if err := os.WriteFile(p, c.content, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Path(p)
			if c.want != "" {
				if err != nil || got != c.want {
					t.Fatalf("Path = %q, %v; want %q", got, err, c.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Path = %q, want an error", got)
			}
			if !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), p) || !errors.Is(err, ErrUnknown) {
				t.Fatalf("error %q: want it to name %s, say %q and wrap ErrUnknown", err, p, c.err)
			}
		})
	}
}

func TestPathFolders(t *testing.T) {
	cases := []struct {
		name  string
		files []string
		want  Format
		err   string
	}{
		{"hf single", []string{"config.json", "model.safetensors", "tokenizer.model"}, HFModel, ""},
		{"hf sharded", []string{"config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}, HFModel, ""},
		{"hf pytorch", []string{"config.json", "pytorch_model.bin"}, HFModel, ""},
		{"sharded without config", []string{"model.safetensors.index.json", "model-00001-of-00001.safetensors"}, SafetensorsFolder, ""},
		{"loose safetensors", []string{"a.safetensors", "b.safetensors"}, SafetensorsFolder, ""},
		{"peft", []string{"adapter_config.json", "adapter_model.safetensors"}, PEFTAdapter, ""},
		{"peft wins over config", []string{"adapter_config.json", "config.json", "adapter_model.safetensors"}, PEFTAdapter, ""},
		{"native", []string{"model.spago", "config.json", "tokenizer.model"}, Native, ""},
		{"native model only", []string{"model.spago"}, Native, ""},
		{"config without weights", []string{"config.json", "tokenizer.model"}, "", "no weights"},
		{"empty", nil, "", "folder holds no"},
		{"unrelated files", []string{"README.md", "notes.txt"}, "", "folder holds no"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range c.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("{}"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Path(dir)
			if c.want != "" {
				if err != nil || got != c.want {
					t.Fatalf("Path = %q, %v; want %q", got, err, c.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("Path = %q, %v; want an error naming %s and saying %q", got, err, dir, c.err)
			}
		})
	}
	// A folder named like a file of the format is still a folder.
	dir := filepath.Join(t.TempDir(), "model.safetensors")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Path(dir); err == nil {
		t.Fatal("empty folder named model.safetensors detected as a format")
	}
	if _, err := Path(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing path: error %v, want ErrNotExist", err)
	}
}

func TestReferenceModels(t *testing.T) {
	for _, name := range []string{"bert-f32", "llama-gqa-f32", "llama-bf16-sharded"} {
		p := filepath.Join("../../core/testdata/reference", name)
		if got, err := Path(p); err != nil || got != HFModel {
			t.Errorf("Path(%s) = %q, %v; want %q", p, got, err, HFModel)
		}
	}
}

// TestFixtures classifies the real files of ../shared/fixtures.
func TestFixtures(t *testing.T) {
	root := "../../../shared/fixtures"
	if _, err := os.Stat(root); err != nil {
		t.Skipf("fixtures not available (../shared/fixtures missing): %v", err)
	}
	cases := []struct {
		path string
		want Format
	}{
		{"stories260K-gguf/stories260K.gguf", GGUF},
		{"hf-mirror/ggml-org/models/tinyllamas/stories260K.gguf", GGUF},
		{"peft-lora-gpt2-smartreview", PEFTAdapter},
		{"peft-lora-gpt2-smartreview/adapter_model.safetensors", Safetensors},
		{"microsoft-lora-roberta-mnli/roberta_base_lora_mnli.bin", PyTorch},
		{"candle-fixtures/test.pt", PyTorch},
		{"candle-fixtures/mel_filters.safetensors", Safetensors},
		{"safetensors-jl-fixtures/sharded", SafetensorsFolder},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			p := filepath.Join(root, c.path)
			if _, err := os.Stat(p); err != nil {
				t.Skipf("%s not available: %v", p, err)
			}
			if got, err := Path(p); err != nil || got != c.want {
				t.Fatalf("Path = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// FuzzHead checks that Head never panics and agrees with Path on the same
// bytes written to a file.
func FuzzHead(f *testing.F) {
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Add(safetensorsBytes())
	f.Add([]byte("PK\x03\x04"))
	f.Add([]byte{0x80, 0x02})
	f.Add(gobBytes(f, &Model{Values: []float32{1}}))
	f.Add(gobBytes(f, &Adapter{ConfigJSON: "{}"}))
	f.Add([]byte{0x05, 0xff, 0x81, 0x03, 0x01, 0x01, 0xf8})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		got := Head(b)
		if len(b) > HeadSize {
			if again := Head(b[:HeadSize]); again != got {
				t.Fatalf("Head of the whole input %q, of its first %d bytes %q", got, HeadSize, again)
			}
		}
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		fromPath, err := Path(p)
		if got != "" && (err != nil || fromPath != got) {
			t.Fatalf("Head %q, Path %q, %v", got, fromPath, err)
		}
		if got == "" && err == nil {
			t.Fatalf("Head found nothing, Path %q", fromPath)
		}
	})
}
