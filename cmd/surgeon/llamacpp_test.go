package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// llamaCppPeer returns the command that runs tools/llamacpp/greedy.mjs, or
// skips the test when node or node-llama-cpp is missing.
func llamaCppPeer(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed: the llama.cpp peer test needs node and tools/llamacpp (cd tools/llamacpp && npm ci)")
	}
	script, _ := filepath.Abs("../../tools/llamacpp/greedy.mjs")
	if _, err := os.Stat(filepath.Join(filepath.Dir(script), "node_modules", "node-llama-cpp", "package.json")); err != nil {
		t.Skip("node-llama-cpp is not installed: cd tools/llamacpp && npm ci")
	}
	return script
}

// GGUF files surgeon writes (F32 and Q8_0) load in llama.cpp, whose
// greedy ids equal surgeon's for 40 tokens; the original stories260K GGUF
// too.
func TestLlamaCppGreedy(t *testing.T) {
	fx := fixture(t, "stories260K-gguf/stories260K.gguf")
	script := llamaCppPeer(t)
	withPlugins(t, "convert")
	dir := t.TempDir()
	const prompt = "1,403,407,261,378"
	for _, typ := range []string{"original", "f32", "q8_0"} {
		t.Run(typ, func(t *testing.T) {
			path := fx
			if typ != "original" {
				path = filepath.Join(dir, typ+".gguf")
				if code, _, errs := runCLI("convert", fx, "--to", "gguf", "--type", typ, "-o", path); code != 0 {
					t.Fatalf("convert: %s", errs)
				}
			}
			code, out, errs := runCLI("generate", path, "--tokens", prompt, "-n", "40", "--json")
			if code != 0 {
				t.Fatalf("generate: %s", errs)
			}
			var ours struct {
				IDs []int `json:"ids"`
			}
			if err := json.Unmarshal([]byte(out), &ours); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("node", script, path, "40", prompt)
			raw, err := cmd.Output()
			if err != nil {
				t.Fatalf("llama.cpp peer: %v", err)
			}
			var theirs struct {
				IDs []int `json:"ids"`
			}
			if err := json.Unmarshal(raw, &theirs); err != nil {
				t.Fatalf("llama.cpp peer output %q: %v", raw, err)
			}
			if len(ours.IDs) < 20 {
				t.Fatalf("surgeon generated only %d ids", len(ours.IDs))
			}
			for i, id := range ours.IDs {
				if i >= len(theirs.IDs) || theirs.IDs[i] != id {
					t.Fatalf("token %d: surgeon %v, llama.cpp %v", i, ours.IDs, theirs.IDs)
				}
			}
			t.Logf("%s: %d greedy ids equal", typ, len(ours.IDs))
		})
	}
}

// A LoRA trained by surgeon apply on stories260K, written with --to
// gguf-lora and loaded by llama.cpp next to the base, decodes the same
// greedy ids as surgeon generate --adapter; merged into a GGUF, the same
// again in both.
func TestLlamaCppLoRA(t *testing.T) {
	fx, _ := filepath.Abs(fixture(t, "."))
	script := llamaCppPeer(t)
	withPlugins(t, "lora", "convert")
	dir := t.TempDir()
	base := filepath.Join(fx, "stories260K-gguf", "stories260K.gguf")
	rec := filepath.Join(dir, "r.toml")
	body := `
[model]
path = "` + base + `"
task = "causal-lm"
max_length = 64

[data]
train = "` + fx + `/tinyshakespeare/input.txt"
format = "text"

[[targets]]
modules = ["q_proj", "k_proj", "v_proj", "o_proj"]
config = { r = 4, lora_alpha = 8 }

[[targets]]
modules = ["down_proj"]
config = { r = 2, lora_alpha = 8 }

[train]
epochs = 1
steps_per_epoch = 8
batch_size = 4
seq_len = 32
lr = 5e-2

[output]
dir = "` + filepath.Join(dir, "run") + `"
`
	if err := os.WriteFile(rec, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI("apply", rec); code != 0 {
		t.Fatalf("apply: %s", errs)
	}
	adapter := filepath.Join(dir, "run", "adapter")
	loraGGUF := filepath.Join(dir, "lora.gguf")
	if code, _, errs := runCLI("convert", adapter, "--to", "gguf-lora", "--base", base, "-o", loraGGUF); code != 0 {
		t.Fatalf("convert --to gguf-lora: %s", errs)
	}
	merged := filepath.Join(dir, "merged.gguf")
	if code, _, errs := runCLI("merge", base, "--adapter", adapter, "--type", "f32", "-o", merged); code != 0 {
		t.Fatalf("merge to gguf: %s", errs)
	}
	const prompt = "1,403,407,261,378"
	surgeonIDs := func(args ...string) []int {
		t.Helper()
		code, out, errs := runCLI(append([]string{"generate", "--tokens", prompt, "-n", "40", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("generate %v: %s", args, errs)
		}
		var r struct {
			IDs []int `json:"ids"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r.IDs
	}
	peerIDs := func(args ...string) []int {
		t.Helper()
		raw, err := exec.Command("node", append([]string{script}, args...)...).Output()
		if err != nil {
			t.Fatalf("llama.cpp peer %v: %v", args, err)
		}
		var r struct {
			IDs []int `json:"ids"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		return r.IDs
	}
	plain := surgeonIDs(base)
	ours := surgeonIDs(base, "--adapter", adapter)
	if equalInts(plain, ours) {
		t.Fatal("the adapter does not change the greedy ids: the test could not tell")
	}
	for name, theirs := range map[string][]int{
		"llama.cpp base + LoRA GGUF": peerIDs(base, "40", prompt, loraGGUF),
		"llama.cpp merged GGUF":      peerIDs(merged, "40", prompt),
		"surgeon merged GGUF":        surgeonIDs(merged),
		"surgeon base + LoRA GGUF":   surgeonIDs(base, "--adapter", loraGGUF),
	} {
		for i, id := range ours {
			if i >= len(theirs) || theirs[i] != id {
				t.Fatalf("%s: token %d differs\nsurgeon --adapter %v\n%s %v", name, i, ours, name, theirs)
			}
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
