package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/yaml"

	"github.com/surgeon-ml/surgeon/internal/plugintest"
	"github.com/surgeon-ml/surgeon/surgery/sweep"
)

// sweepRecipes writes a tiny rank sweep (LoRA r = 1, 2 with alpha = 2r,
// plus a head-only baseline) over stories260K and the SMS fixture; each
// point trains 2 steps.
func sweepRecipes(t *testing.T, fx string) string {
	t.Helper()
	dir := t.TempDir()
	common := `
[model]
path = "` + fx + `/stories260K-gguf/stories260K.gguf"
task = "sequence-classification"
labels = ["ham", "spam"]
max_length = 48

[data]
train = "` + fx + `/sms-spam-collection/SMSSpamCollection"
format = "tsv"
text_field = "SMS"
label_field = "Label"
test_fraction = 0.2
max_examples = 200
`
	lora := common + `
[[targets]]
modules = ["q_proj", "v_proj"]
[targets.config]
r = 4
lora_alpha = 8

[train]
max_steps = 2
batch_size = 8

[sweep]
[sweep.axes]
"targets.0.config.r" = "1..2"
"targets.0.config.lora_alpha" = "2*r"
[sweep.baselines]
head = { recipe = "head.toml" }
`
	head := common + `
[train]
mode = "head"
max_steps = 2
batch_size = 8
lr = 2e-3
`
	for name, body := range map[string]string{"tiny.toml": lora, "head.toml": head} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "tiny.toml")
}

// withoutTiming drops the timing columns (and exit codes) of a report CSV,
// which differ between runs of the same points.
func withoutTiming(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	drop := map[string]bool{"wall_seconds": true, "tokens_per_second": true, "exit_code": true}
	var b strings.Builder
	for _, row := range rows {
		for i, cell := range row {
			if !drop[rows[0][i]] {
				b.WriteString(cell + "|")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// A sweep run through the CLI: listed, interrupted with SIGINT after its
// first point, resumed (only the missing points run), reported; then the
// same points run as the emitted Kubernetes Job's and Slurm script's
// commands give the same table.
func TestSweepCLI(t *testing.T) {
	fx, _ := filepath.Abs(fixture(t, "."))
	fixture(t, "stories260K-gguf/stories260K.gguf")
	mgr := withPlugins(t, "lora")
	bin := buildSurgeon(t)
	env := plugintest.Env(mgr)
	rec := sweepRecipes(t, fx)

	code, out, errs := runCLI("sweep", rec, "--list")
	if code != 0 || !strings.Contains(out, "3 points") || !strings.Contains(out, "targets.0.config.lora_alpha=4") || !strings.Contains(out, "head.toml") {
		t.Fatalf("--list: exit %d\n%s%s", code, out, errs)
	}

	// Interrupt the sweep once its first point is done.
	local := filepath.Join(t.TempDir(), "local")
	cmd := exec.Command(bin, "sweep", rec, "--out", local)
	cmd.Env = env
	var buf syncBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(buf.String(), "#0 r=1: done") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the sweep did not finish its first point:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("interrupted sweep: %v\n%s", err, buf.String())
	}
	m, err := sweep.ReadManifest(local)
	if err != nil {
		t.Fatal(err)
	}
	if m.Points[0].State != sweep.StateDone || m.Points[2].State == sweep.StateDone {
		t.Fatalf("after the interrupt: %s, %s, %s\n%s", m.Points[0].State, m.Points[1].State, m.Points[2].State, buf.String())
	}

	// Resume: the finished point is skipped.
	cmd = exec.Command(bin, "sweep", rec, "--out", local, "--parallel", "2")
	cmd.Env = env
	resumed, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("resumed sweep: %v\n%s", err, resumed)
	}
	for _, want := range []string{"#0 r=1: done earlier, skipped", "#2 head: done in", "| r=2 | 2 | 2 | 10 modules (q_proj, v_proj) + score |", "| head (baseline) | — | — | score |", "report.md"} {
		if !strings.Contains(string(resumed), want) {
			t.Fatalf("resumed sweep output lacks %q:\n%s", want, resumed)
		}
	}
	if strings.Contains(string(resumed), "#0 r=1: running") {
		t.Fatalf("the finished point ran again:\n%s", resumed)
	}
	for _, f := range []string{"report.md", "report.csv", "points.csv", "metric-vs-rank.png", "metric-vs-rank.svg", "metric-vs-params.png", "metric-vs-params.svg"} {
		if st, err := os.Stat(filepath.Join(local, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}

	// The Kubernetes Job's point commands, run here.
	code, manifest, errs := runCLI("sweep", rec, "--emit", "kubernetes", "--parallel", "2")
	if code != 0 {
		t.Fatalf("--emit kubernetes: %s", errs)
	}
	raw, err := yaml.YAMLToJSON([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	var job batchv1.Job
	if err := yaml.UnmarshalStrict([]byte(manifest), &job); err != nil {
		t.Fatalf("strict decode: %v\n%s", err, raw)
	}
	if *job.Spec.Completions != 3 || *job.Spec.CompletionMode != batchv1.IndexedCompletion {
		t.Fatalf("job spec %+v", job.Spec)
	}
	volume := t.TempDir()
	c := job.Spec.Template.Spec.Containers[0]
	for i := 0; i < int(*job.Spec.Completions); i++ {
		var args []string
		for _, a := range c.Args {
			a = strings.ReplaceAll(a, sweep.IndexVar, strconv.Itoa(i))
			if strings.HasPrefix(a, sweep.DefaultMountPath+"/") {
				a = filepath.Join(volume, strings.TrimPrefix(a, sweep.DefaultMountPath))
			}
			args = append(args, a)
		}
		if c.Command[0] != "surgeon" {
			t.Fatalf("command %q", c.Command)
		}
		pod := exec.Command(bin, args...)
		pod.Env = append(env, "GOMAXPROCS=1")
		if out, err := pod.CombinedOutput(); err != nil {
			t.Fatalf("index %d: %v\n%s", i, err, out)
		}
	}
	cluster := filepath.Join(volume, "tiny-sweep")
	if code, _, errs := runCLI("sweep", "report", cluster); code != 0 {
		t.Fatalf("sweep report: %s", errs)
	}

	// The Slurm script's array tasks, run here.
	script := filepath.Join(t.TempDir(), "sweep.sbatch")
	slurmOut := filepath.Join(t.TempDir(), "slurm")
	if code, _, errs := runCLI("sweep", rec, "--emit", "slurm", "--out", slurmOut, "-o", script); code != 0 {
		t.Fatalf("--emit slurm: %s", errs)
	}
	binDir := filepath.Dir(bin)
	for i := 0; i < 3; i++ {
		task := exec.Command("bash", script)
		task.Env = append(env, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"), "SLURM_ARRAY_TASK_ID="+strconv.Itoa(i), "SLURM_CPUS_PER_TASK=1")
		if out, err := task.CombinedOutput(); err != nil {
			t.Fatalf("array task %d: %v\n%s", i, err, out)
		}
	}
	if code, _, errs := runCLI("sweep", "report", slurmOut); code != 0 {
		t.Fatalf("sweep report: %s", errs)
	}
	for _, want := range []string{"#SBATCH --chdir=", "#SBATCH --output=" + slurmOut + "/logs/slurm-%A_%a.out", "--expect-hash "} {
		if raw, _ := os.ReadFile(script); !strings.Contains(string(raw), want) {
			t.Fatalf("the Slurm script lacks %q:\n%s", want, raw)
		}
	}

	// Watching and resubmitting: every point is done, nothing is missing.
	code, out, errs = runCLI("sweep", "status", slurmOut)
	if code != 0 || !strings.Contains(out, ": 3/3 done\n") || !strings.Contains(out, "head") {
		t.Fatalf("sweep status: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI("sweep", "status", slurmOut, "--json")
	var st sweep.Status
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Done != 3 || st.Total != 3 || st.Points[0].State != sweep.StateDone {
		t.Fatalf("sweep status --json: exit %d, %v\n%s%s", code, err, out, errs)
	}
	code, out, errs = runCLI("sweep", rec, "--emit", "slurm", "--out", slurmOut, "--missing")
	if code != 0 || !strings.Contains(out, "nothing to submit") {
		t.Fatalf("--missing of a complete sweep: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := runCLI("sweep", "status", t.TempDir()); code == 0 || !strings.Contains(errs, "manifest.json") {
		t.Fatalf("status of an empty folder: exit %d: %s", code, errs)
	}
	for _, f := range []string{"loss-vs-step.svg", "loss-vs-step.png", "eval-vs-epoch.svg", "eval-vs-epoch.png"} {
		if st, err := os.Stat(filepath.Join(slurmOut, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}

	for _, f := range []string{"report.csv", "points.csv"} {
		want := withoutTiming(t, filepath.Join(local, f))
		for _, dir := range []string{cluster, slurmOut} {
			if got := withoutTiming(t, filepath.Join(dir, f)); got != want {
				t.Fatalf("%s of %s differs from the local sweep's:\n%s\nlocal:\n%s", f, dir, got, want)
			}
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writing process and a polling
// test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestSweepUsage(t *testing.T) {
	for _, args := range [][]string{
		{"sweep"},
		{"sweep", "a.toml", "--list", "--point", "1"},
		{"sweep", "a.toml", "--parallel", "0"},
	} {
		if code, _, errs := runCLI(args...); code != 2 || !strings.Contains(errs, "usage: surgeon sweep") {
			t.Fatalf("%v: exit %d, %s", args, code, errs)
		}
	}
	if code, _, errs := runCLI("sweep", "report", t.TempDir()); code != 1 || !strings.Contains(errs, "no manifest.json") {
		t.Fatalf("report of an empty folder: exit %d, %s", code, errs)
	}
}
