package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/surgeon-ml/surgeon/internal/plugintest"
)

// buildSurgeon compiles the CLI for tests that need a real process.
func buildSurgeon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "surgeon")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func resumeRecipe(fixtures, out string) string {
	return `
[model]
path = "` + fixtures + `/stories260K-gguf/stories260K.gguf"
task = "sequence-classification"
labels = ["ham", "spam"]
max_length = 48

[data]
train = "` + fixtures + `/sms-spam-collection/SMSSpamCollection"
format = "tsv"
text_field = "SMS"
label_field = "Label"
test_fraction = 0.25
max_examples = 600

[[targets]]
modules = ["q_proj", "v_proj"]
[targets.config]
r = 4
lora_alpha = 8
lora_dropout = 0.1

[train]
epochs = 2
batch_size = 8
lr = 2e-3
checkpoint_every = 3

[output]
dir = "` + out + `"
`
}

// An apply killed with SIGKILL mid-epoch resumes from its checkpoint and
// ends with the same metrics and adapter as an uninterrupted run.
func TestApplyResumesAfterSIGKILL(t *testing.T) {
	fx, _ := filepath.Abs(fixture(t, "."))
	mgr := withPlugins(t, "lora")
	bin := buildSurgeon(t)
	env := plugintest.Env(mgr)
	dir := t.TempDir()
	run := func(name string) *exec.Cmd {
		p := filepath.Join(dir, name+".toml")
		os.WriteFile(p, []byte(resumeRecipe(fx, filepath.Join(dir, name))), 0o644)
		cmd := exec.Command(bin, "apply", p)
		cmd.Env = env
		return cmd
	}
	// Uninterrupted reference run.
	if out, err := run("full").CombinedOutput(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	// Interrupted run: SIGKILL once a few checkpoints were written.
	cmd := run("killed")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	metrics := filepath.Join(dir, "killed.checkpoint", "metrics.csv")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if n := countLines(metrics); n >= 12 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("run did not progress:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(dir, "killed", "report.json")); err == nil {
		t.Fatal("the killed run left a complete-looking output folder")
	}
	out, err := run("killed").CombinedOutput()
	if err != nil {
		t.Fatalf("resumed apply: %v\n%s", err, out)
	}
	var a, b struct {
		After   map[string]float64 `json:"metrics_after"`
		Steps   int                `json:"steps"`
		Resumed bool               `json:"resumed"`
	}
	readJSON(t, filepath.Join(dir, "full", "report.json"), &a)
	readJSON(t, filepath.Join(dir, "killed", "report.json"), &b)
	if !b.Resumed || a.Steps != b.Steps {
		t.Fatalf("resumed=%v steps %d vs %d", b.Resumed, b.Steps, a.Steps)
	}
	for k, v := range a.After {
		if b.After[k] != v {
			t.Fatalf("metric %s: %v after resume, %v uninterrupted", k, b.After[k], v)
		}
	}
	x, _ := os.ReadFile(filepath.Join(dir, "full", "adapter", "adapter_model.safetensors"))
	y, _ := os.ReadFile(filepath.Join(dir, "killed", "adapter", "adapter_model.safetensors"))
	if len(x) == 0 || !bytes.Equal(x, y) {
		t.Fatal("the resumed run's adapter differs from the uninterrupted run's")
	}
	if n, m := countLines(filepath.Join(dir, "full", "metrics.csv")), countLines(filepath.Join(dir, "killed", "metrics.csv")); n != m {
		t.Fatalf("metrics.csv has %d lines after resume, %d uninterrupted", m, n)
	}
}

func countLines(p string) int {
	f, err := os.Open(p)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.TrimSpace(s.Text()) != "" {
			n++
		}
	}
	return n
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}
