package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sameFolder fails unless the two folders hold the same files with the
// same bytes.
func sameFolder(t *testing.T, got, want string) {
	t.Helper()
	list := func(dir string) []string {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}
	g, w := list(got), list(want)
	if !slices.Equal(g, w) {
		t.Fatalf("files %v, want %v", g, w)
	}
	for _, n := range w {
		a, _ := os.ReadFile(filepath.Join(got, n))
		b, _ := os.ReadFile(filepath.Join(want, n))
		if !bytes.Equal(a, b) {
			t.Fatalf("%s differs from the in-memory output (%d and %d bytes)", n, len(a), len(b))
		}
	}
}

// A merge streamed tensor by tensor (the default for a Hugging Face
// folder) writes exactly the bytes of the merge of the loaded model
// (--in-memory): LoRA, DoRA (which reads the base norm), rsLoRA with rank
// and alpha patterns, a sharded BF16 base, a modules_to_save head, two
// weighted adapters, another output dtype, and cat.
func TestStreamMergeEqualsInMemory(t *testing.T) {
	withPlugins(t, "lora")
	peftDir := filepath.Join(refDir, "peft")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"lora", []string{filepath.Join(refDir, "llama-gqa-f32"), "--adapter", filepath.Join(peftDir, "llama-lora-qv")}},
		{"rslora patterns bf16 out", []string{filepath.Join(refDir, "llama-gqa-f32"), "--adapter", filepath.Join(peftDir, "llama-rslora-all"), "--dtype", "BF16"}},
		{"dora f16 base", []string{filepath.Join(refDir, "llama-mha-tied-f16"), "--adapter", filepath.Join(peftDir, "llama-dora-qkvo"), "--dtype", "F16"}},
		{"sharded bf16", []string{filepath.Join(refDir, "llama-bf16-sharded"), "--adapter", filepath.Join(peftDir, "llama-lora-sharded"), "--dtype", "BF16"}},
		{"bert head", []string{filepath.Join(refDir, "bert-f32"), "--adapter", filepath.Join(peftDir, "bert-lora-qv-head")}},
		{"two weighted", []string{filepath.Join(refDir, "llama-gqa-f32"), "--adapter", filepath.Join(peftDir, "llama-lora-qv"), "--weight", "0.5",
			"--adapter", filepath.Join(peftDir, "llama-rslora-all"), "--weight", "-0.75"}},
		{"cat", []string{filepath.Join(refDir, "llama-gqa-f32"), "--method", "cat", "--adapter", filepath.Join(peftDir, "llama-lora-qv"),
			"--adapter", filepath.Join(peftDir, "llama-rslora-all")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			streamed, loaded := filepath.Join(dir, "streamed"), filepath.Join(dir, "loaded")
			code, out, errs := runCLI(append(append([]string{"merge"}, tc.args...), "-o", streamed)...)
			if code != 0 {
				t.Fatalf("streamed merge: %s", errs)
			}
			if !strings.Contains(out, "(streamed)") {
				t.Fatalf("the merge did not stream:\n%s", out)
			}
			if code, _, errs := runCLI(append(append([]string{"merge"}, tc.args...), "--in-memory", "-o", loaded)...); code != 0 {
				t.Fatalf("in-memory merge: %s", errs)
			}
			sameFolder(t, streamed, loaded)
		})
	}
}
