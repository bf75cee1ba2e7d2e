package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	// Its lock file stays behind, but the kernel released the lock: the
	// resumed run below must not be blocked by it.
	if _, err := os.Stat(filepath.Join(dir, "killed.lock")); err != nil {
		t.Fatalf("the killed run's lock file: %v", err)
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

// A second apply on the output folder of a running one fails at once,
// naming the first one's PID and the folder, and leaves the first run's
// outputs complete. Under umask 022 those are readable by all
// (drwxr-xr-x, -rw-r--r--).
func TestApplyRefusesBusyOutput(t *testing.T) {
	fx, _ := filepath.Abs(fixture(t, "."))
	mgr := withPlugins(t, "lora")
	bin := buildSurgeon(t)
	defer syscall.Umask(syscall.Umask(0o022)) // the children inherit it
	dir := t.TempDir()
	out := filepath.Join(dir, "busy")
	recipePath := filepath.Join(dir, "busy.toml")
	// A short run: the second apply starts as soon as the first holds the
	// lock, before it has loaded anything.
	body := strings.NewReplacer("epochs = 2", "epochs = 1", "max_examples = 600", "max_examples = 200").Replace(resumeRecipe(fx, out))
	if err := os.WriteFile(recipePath, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	apply := func() *exec.Cmd {
		cmd := exec.Command(bin, "apply", recipePath)
		cmd.Env = plugintest.Env(mgr)
		return cmd
	}
	first := apply()
	var firstOut bytes.Buffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	pid := strconv.Itoa(first.Process.Pid)
	// The first run holds the lock once its PID is in the lock file.
	deadline := time.Now().Add(time.Minute)
	for {
		if raw, _ := os.ReadFile(out + ".lock"); strings.TrimSpace(string(raw)) == pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first run never locked %s:\n%s", out, firstOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	msg, err := apply().CombinedOutput()
	took := time.Since(start)
	t.Logf("the second apply failed after %s: %s", took.Round(time.Millisecond), strings.TrimSpace(string(msg)))
	if err == nil {
		t.Fatalf("the second apply on a busy folder succeeded:\n%s", msg)
	}
	for _, want := range []string{"process " + pid, out} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("the second apply's error does not name %q:\n%s", want, msg)
		}
	}
	if took > time.Second {
		t.Errorf("the second apply failed after %s, want at once", took.Round(time.Millisecond))
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("the first apply: %v\n%s", err, firstOut.String())
	}
	var rep struct {
		Steps int      `json:"steps"`
		Files []string `json:"files"`
	}
	readJSON(t, filepath.Join(out, "report.json"), &rep)
	if n := countLines(filepath.Join(out, "metrics.csv")); rep.Steps == 0 || n != rep.Steps+1 {
		t.Fatalf("metrics.csv has %d lines for %d steps", n, rep.Steps)
	}
	for _, f := range rep.Files {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("output %s: %v", f, err)
		}
	}
	for _, p := range []string{out + ".checkpoint", out + ".lock"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left after the run", p)
		}
	}
	for _, p := range []string{out, filepath.Join(out, "adapter"), filepath.Join(out, "metrics.csv"),
		filepath.Join(out, "report.json"), filepath.Join(out, "adapter", "adapter_model.safetensors")} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := "-rw-r--r--"
		if st.IsDir() {
			want = "drwxr-xr-x"
		}
		if got := st.Mode().String(); got != want {
			t.Errorf("under umask 022, %s is %s, want %s", p, got, want)
		}
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
