package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fixtures = "../../../shared/fixtures"

func fixture(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(fixtures, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("fixture %s not available (../shared/fixtures missing): %v", rel, err)
	}
	return p
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// The known greedy continuation of stories260K from BOS (fixtures README).
const storiesText = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, r"

func TestGenerateStories(t *testing.T) {
	model := fixture(t, "stories260K-gguf/stories260K.gguf")
	code, out, errs := runCLI("generate", model, "-n", "40")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if got := strings.TrimSpace(out); got != storiesText {
		t.Fatalf("generate printed\n%q\nwant\n%q", got, storiesText)
	}
	// A prompt continues the same story.
	code, out, errs = runCLI("generate", model, "--prompt", "Once upon a time,", "-n", "8")
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(out), "Once upon a time, there was a little girl") {
		t.Fatalf("prompted generate: exit %d, %q %s", code, out, errs)
	}
	// Sampling with a seed is reproducible.
	_, a, _ := runCLI("generate", model, "-n", "20", "--temperature", "1", "--seed", "7")
	_, b, _ := runCLI("generate", model, "-n", "20", "--temperature", "1", "--seed", "7")
	if a != b {
		t.Fatalf("seeded sampling differs:\n%s\n%s", a, b)
	}
}

func TestForwardJSON(t *testing.T) {
	cases := []struct {
		model string
		shape []int
	}{
		{"../../core/testdata/reference/llama-gqa-f32", []int{3, 96}},
		{"../../core/testdata/reference/bert-f32", []int{1, 3}},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.model), func(t *testing.T) {
			code, out, errs := runCLI("forward", c.model, "--tokens", "1,5,9", "--json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var res struct {
				Logits [][]float64 `json:"logits"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("output is not one JSON object: %v\n%s", err, out)
			}
			if len(res.Logits) != c.shape[0] || len(res.Logits[0]) != c.shape[1] {
				t.Fatalf("logits %dx%d, want %v", len(res.Logits), len(res.Logits[0]), c.shape)
			}
		})
	}
}

func TestErrorsAreOneLine(t *testing.T) {
	dir := t.TempDir()
	trunc := filepath.Join(dir, "trunc.safetensors")
	os.WriteFile(trunc, []byte{200, 0, 0, 0, 0, 0, 0, 0, '{'}, 0o644)
	garbage := filepath.Join(dir, "garbage.bin")
	os.WriteFile(garbage, bytes.Repeat([]byte{0xff}, 64), 0o644)
	badGGUF := filepath.Join(dir, "bad.gguf")
	os.WriteFile(badGGUF, append([]byte("GGUF\x03\x00\x00\x00"), bytes.Repeat([]byte{0xff}, 24)...), 0o644)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"missing file", []string{"inspect", filepath.Join(dir, "nope")}, "no such file"},
		{"truncated safetensors", []string{"inspect", trunc}, trunc},
		{"garbage", []string{"inspect", garbage}, garbage},
		{"absurd gguf", []string{"inspect", badGGUF}, badGGUF},
		{"forward without tokens", []string{"forward", "../../core/testdata/reference/bert-f32"}, "--tokens"},
		{"token out of range", []string{"forward", "../../core/testdata/reference/bert-f32", "--tokens", "1,100000"}, "outside the vocabulary"},
		{"bad token", []string{"forward", "../../core/testdata/reference/bert-f32", "--tokens", "1,x"}, "not an integer"},
		{"generate on a classifier", []string{"generate", "../../core/testdata/reference/bert-f32"}, "not a causal LM"},
		{"model is a folder without config", []string{"forward", dir, "--tokens", "1"}, dir},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := runCLI(c.args...)
			if code == 0 {
				t.Fatalf("exit 0, want failure")
			}
			if strings.Count(strings.TrimRight(errs, "\n"), "\n") > 1 || strings.Contains(errs, "goroutine") {
				t.Fatalf("error is not a short message:\n%s", errs)
			}
			if !strings.Contains(errs, c.want) {
				t.Fatalf("error %q does not mention %q", errs, c.want)
			}
		})
	}
}

func TestInspectFixtures(t *testing.T) {
	root := fixture(t, ".")
	var paths []string
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && (strings.HasSuffix(p, ".safetensors") || strings.HasSuffix(p, ".gguf") || strings.HasSuffix(p, ".pt") || strings.HasSuffix(p, ".pth") || strings.HasSuffix(p, ".bin")) {
			paths = append(paths, p)
		}
		return nil
	})
	paths = append(paths, filepath.Join(root, "peft-lora-gpt2-smartreview"), filepath.Join(root, "safetensors-jl-fixtures/sharded"))
	if len(paths) < 20 {
		t.Fatalf("found only %d fixture files", len(paths))
	}
	for _, p := range paths {
		t.Run(strings.TrimPrefix(p, root), func(t *testing.T) {
			code, out, errs := runCLI("inspect", p, "--json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var r struct {
				Format      string `json:"format"`
				TensorCount int    `json:"tensor_count"`
				Tensors     []struct {
					Name  string `json:"name"`
					DType string `json:"dtype"`
					Shape []int  `json:"shape"`
				} `json:"tensors"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatal(err)
			}
			if r.TensorCount == 0 || r.TensorCount != len(r.Tensors) {
				t.Fatalf("tensor count %d, table of %d", r.TensorCount, len(r.Tensors))
			}
		})
	}
}

func TestInspectKnownFacts(t *testing.T) {
	stories := fixture(t, "stories260K-gguf/stories260K.gguf")
	code, out, errs := runCLI("inspect", stories, "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var r struct {
		Format      string            `json:"format"`
		Version     int               `json:"version"`
		TensorCount int               `json:"tensor_count"`
		Metadata    map[string]string `json:"metadata"`
		Tensors     []struct {
			Name  string `json:"name"`
			DType string `json:"dtype"`
			Shape []int  `json:"shape"`
		} `json:"tensors"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Format != "gguf" || r.Version != 3 || r.TensorCount != 48 {
		t.Fatalf("got %s v%d with %d tensors", r.Format, r.Version, r.TensorCount)
	}
	for _, tt := range r.Tensors {
		if tt.DType != "F32" {
			t.Errorf("%s: dtype %s, fixture is all F32", tt.Name, tt.DType)
		}
		if tt.Name == "token_embd.weight" && (tt.Shape[0] != 512 || tt.Shape[1] != 64) {
			t.Errorf("token_embd.weight shape %v, want [512 64] (512 x 64 matrix)", tt.Shape)
		}
	}
	if r.Metadata["llama.block_count"] != "5" || r.Metadata["llama.attention.head_count_kv"] != "4" {
		t.Errorf("metadata block_count=%s head_count_kv=%s", r.Metadata["llama.block_count"], r.Metadata["llama.attention.head_count_kv"])
	}

	peft := fixture(t, "peft-lora-gpt2-smartreview")
	code, out, errs = runCLI("inspect", peft, "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	var p struct {
		Format      string         `json:"format"`
		TensorCount int            `json:"tensor_count"`
		Config      map[string]any `json:"config"`
	}
	json.Unmarshal([]byte(out), &p)
	if p.Format != "peft-adapter" || p.TensorCount != 24 || p.Config["r"] != 8.0 || p.Config["lora_alpha"] != 16.0 {
		t.Fatalf("PEFT adapter: %+v", p)
	}
}
