package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const storiesURI = "hf://ggml-org/models/tinyllamas/stories260K.gguf"

// useMirror points hf:// addresses at mirror, with an empty cache and a
// hub endpoint where nothing listens (no test reaches the network). It
// returns the cache folder.
func useMirror(t *testing.T, mirror string) string {
	t.Helper()
	abs, err := filepath.Abs(mirror)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	t.Setenv("SURGEON_HF_MIRROR", abs)
	t.Setenv("SURGEON_CACHE", cache)
	t.Setenv("HF_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("HF_TOKEN", "")
	return cache
}

// symlink makes link point at the absolute form of target.
func symlink(t *testing.T, target, link string) {
	t.Helper()
	abs, err := filepath.Abs(target)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, link); err != nil {
		t.Fatal(err)
	}
}

// Commands take hf:// addresses wherever they take a model path, resolved
// through the offline mirror like a recipe's model.path.
func TestHubAddresses(t *testing.T) {
	local := fixture(t, "stories260K-gguf/stories260K.gguf")
	cache := useMirror(t, fixture(t, "hf-mirror"))

	code, out, errs := runCLI("generate", storiesURI, "-n", "40")
	if code != 0 || strings.TrimSpace(out) != storiesText {
		t.Fatalf("generate %s: exit %d, %q %s", storiesURI, code, out, errs)
	}

	code, out, errs = runCLI("inspect", storiesURI, "--json")
	if code != 0 {
		t.Fatalf("inspect %s: exit %d, %s", storiesURI, code, errs)
	}
	var r struct {
		Format      string `json:"format"`
		TensorCount int    `json:"tensor_count"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Format != "gguf" || r.TensorCount != 48 {
		t.Fatalf("inspect %s: %+v, %v", storiesURI, r, err)
	}

	_, want, _ := runCLI("forward", local, "--tokens", "1,403,407,261", "--json")
	code, got, errs := runCLI("forward", storiesURI, "--tokens", "1,403,407,261", "--json")
	if code != 0 || want == "" || strings.Replace(got, storiesURI, "", 1) != strings.Replace(want, local, "", 1) {
		t.Fatalf("forward %s: exit %d, %s; logits differ from the local file's", storiesURI, code, errs)
	}

	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("mirror hits were copied into the cache %s", cache)
	}

	// An address the mirror lacks fails with one line naming it.
	missing := "hf://ggml-org/models/tinyllamas/missing.gguf"
	for _, args := range [][]string{
		{"generate", missing, "-n", "1"},
		{"inspect", missing},
		{"forward", missing, "--tokens", "1"},
		{"forward", storiesURI, "--tokens", "1", "--adapter", "hf://owner/repo/no-adapter"},
		{"inspect", "hf://ggml-org"},
	} {
		code, _, errs := runCLI(args...)
		if code == 0 || strings.Count(strings.TrimRight(errs, "\n"), "\n") > 0 || !strings.Contains(errs, "hf://") {
			t.Errorf("%v: exit %d, %q; want one line naming the address", args, code, errs)
		}
	}
}

// Adapter and model folders, a converter source and extract's two models
// resolve from a mirror too.
func TestHubAddressFolders(t *testing.T) {
	withPlugins(t, "lora", "convert")
	mirror := t.TempDir()
	base := filepath.Join(refDir, "llama-gqa-f32")
	adapter := filepath.Join(refDir, "peft", "llama-lora-qv")
	symlink(t, base, filepath.Join(mirror, "test", "ref", "base"))
	symlink(t, adapter, filepath.Join(mirror, "test", "ref", "adapters", "qv"))
	useMirror(t, mirror)
	const hubBase, hubAdapter = "hf://test/ref/base", "hf://test/ref/adapters/qv"

	_, want, _ := runCLI("forward", base, "--adapter", adapter, "--tokens", "1,5,9", "--json")
	code, got, errs := runCLI("forward", hubBase, "--adapter", hubAdapter, "--tokens", "1,5,9", "--json")
	if code != 0 || want == "" || strings.Replace(got, hubBase, "", 1) != strings.Replace(want, base, "", 1) {
		t.Fatalf("forward with hf:// model and adapter: exit %d, %s; logits differ from the local folders'", code, errs)
	}

	dir := t.TempDir()
	for _, args := range [][]string{
		{"inspect", hubAdapter},
		{"resize", hubAdapter, "--rank", "2", "-o", filepath.Join(dir, "r2")},
		{"merge", hubBase, "--adapter", hubAdapter, "-o", filepath.Join(dir, "merged")},
		{"convert", hubBase, "--to", "native", "-o", filepath.Join(dir, "m.spago"), "-q"},
		{"extract", hubBase, filepath.Join(dir, "merged"), "--rank", "8", "-o", filepath.Join(dir, "extracted")},
	} {
		if code, _, errs := runCLI(args...); code != 0 {
			t.Errorf("%v: exit %d, %s", args, code, errs)
		}
	}
}

// A native folder converted from stories260K runs a recipe like the GGUF:
// plan finds its tokenizer and the same trainable parameters.
func TestNativeRecipe(t *testing.T) {
	fx, _ := filepath.Abs(fixture(t, "."))
	withPlugins(t, "lora", "convert")
	dir := t.TempDir()
	nat := filepath.Join(dir, "stories.spago")
	if code, _, errs := runCLI("convert", filepath.Join(fx, "stories260K-gguf/stories260K.gguf"), "--to", "native", "-o", nat, "-q"); code != 0 {
		t.Fatal(errs)
	}
	plan := func(modelPath string) map[string]any {
		t.Helper()
		src := strings.Replace(resumeRecipe(fx, filepath.Join(dir, "out")), fx+"/stories260K-gguf/stories260K.gguf", modelPath, 1)
		p := filepath.Join(dir, "r.toml")
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCLI("plan", p, "--json")
		if code != 0 {
			t.Fatalf("plan with model.path %s: exit %d, %s", modelPath, code, errs)
		}
		// Prepare's status lines come before the JSON plan.
		if i := strings.Index(out, "\n{"); i >= 0 {
			out = out[i+1:]
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, b := plan(nat), plan(filepath.Join(fx, "stories260K-gguf/stories260K.gguf"))
	if a["trainable"] != b["trainable"] || a["total"] != b["total"] || a["trainable"] == nil {
		t.Fatalf("plan on the native folder: trainable %v of %v; on the GGUF %v of %v", a["trainable"], a["total"], b["trainable"], b["total"])
	}
}
