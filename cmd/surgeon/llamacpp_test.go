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
