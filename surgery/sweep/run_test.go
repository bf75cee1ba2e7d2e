package sweep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/surgeon-ml/surgeon/core/train"
	"github.com/surgeon-ml/surgeon/surgery/apply"
	"github.com/surgeon-ml/surgeon/surgery/recipe"
)

// The test binary doubles as a fake `surgeon apply` (SWEEP_FAKE_APPLY=1):
// it loads the recipe with its --set overrides and writes a report.json
// whose metrics follow from the rank and seed, so runner tests need
// neither a model nor plugins.
func TestMain(m *testing.M) {
	if os.Getenv("SWEEP_FAKE_APPLY") == "1" {
		if len(os.Args) > 1 && os.Args[1] == "sweep" {
			os.Exit(fakeSweepPoint(os.Args[2:]))
		}
		os.Exit(fakeApply(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeApply behaves like `surgeon apply RECIPE --set ...`. The point named
// by SWEEP_FAKE_FAIL fails; the one named by SWEEP_FAKE_BLOCK waits for
// SIGINT and exits 130 as an interrupted apply does. Every call appends
// the point's name to SWEEP_FAKE_LOG.
func fakeApply(args []string) int {
	if len(args) < 2 || args[0] != "apply" {
		fmt.Fprintln(os.Stderr, "fake: want apply RECIPE")
		return 2
	}
	var sets []string
	for i := 2; i+1 < len(args); i += 2 {
		sets = append(sets, args[i+1])
	}
	rec, err := recipe.Load(args[1], sets)
	if err != nil {
		fmt.Fprintln(os.Stderr, "surgeon apply:", err)
		return 1
	}
	out := rec.Resolve(rec.Output.Dir)
	name := filepath.Base(out)
	if log := os.Getenv("SWEEP_FAKE_LOG"); log != "" {
		f, err := os.OpenFile(log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, name)
			f.Close()
		}
	}
	fmt.Println("training", name)
	if name == os.Getenv("SWEEP_FAKE_FAIL") {
		fmt.Println("step 1/2 loss 0.7")
		fmt.Fprintln(os.Stderr, "surgeon apply: boom in", name)
		return 1
	}
	if name == os.Getenv("SWEEP_FAKE_BLOCK") {
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt)
		select {
		case <-c:
			fmt.Fprintln(os.Stderr, "surgeon apply: interrupted")
			return 130
		case <-time.After(30 * time.Second):
			return 3
		}
	}
	r, rows := int64(0), []apply.Row{}
	switch rec.Train.Mode {
	case recipe.ModeAdapter:
		// As the LoRA plugin's plan summary reports them.
		r = rec.Targets[0].Config["r"].(int64)
		alpha := 0.0
		switch a := rec.Targets[0].Config["lora_alpha"].(type) {
		case int64:
			alpha = float64(a)
		case float64:
			alpha = a
		}
		for _, m := range []string{"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"} {
			rows = append(rows, apply.Row{Module: m, Adapter: "lora", Rank: int(r), Alpha: alpha, Scale: alpha / float64(r), Config: rec.Targets[0].Config, Trainable: 128 * r})
		}
		rows = append(rows, apply.Row{Module: "score", Adapter: "full (modules_to_save)", Trainable: 128})
	case recipe.ModeHead:
		rows = append(rows, apply.Row{Module: "score", Adapter: "full (modules_to_save)", Trainable: 128})
	case recipe.ModeFull:
		rows = append(rows, apply.Row{Module: "(all)", Adapter: "full", Trainable: 300000})
	}
	var trainable int64
	for _, row := range rows {
		trainable += row.Trainable
	}
	acc := 0.80 + 0.02*math.Log2(float64(max(r, 1))) + 0.005*float64(rec.Train.Seed%3)
	if rec.Train.Mode == recipe.ModeFull {
		acc = 0.97 + 0.001*float64(rec.Train.Seed%2)
	}
	rep := apply.Report{Recipe: rec.Path, RecipeHash: rec.Hash(), Model: rec.Model.Path, Task: rec.Model.Task,
		Plan: &apply.Plan{Mode: rec.Train.Mode, Rows: rows, Trainable: trainable, Total: 300000}, Trainable: trainable, Total: 300000,
		EvalSplit: "test", After: map[string]float64{"accuracy": acc, "f1": acc - 0.1, "examples": 40},
		WallSeconds: 10 + float64(r), TokensPerSec: 1000 + float64(r), Extra: map[string]any{"gomaxprocs": os.Getenv("GOMAXPROCS")}}
	// Learning curves: a loss per step in metrics.csv, the metric per epoch.
	metrics := "step,epoch,loss,lr\n"
	for step := 1; step <= 8; step++ {
		loss := 0.7/float64(step) + 0.01*float64(rec.Train.Seed%3) + 0.05/float64(max(r, 1))
		metrics += fmt.Sprintf("%d,%d,%.4f,0.001\n", step, (step-1)/4+1, loss)
	}
	rep.Epochs = []train.EpochResult{{Epoch: 1, Step: 4, Loss: 0.3, Metrics: map[string]float64{"accuracy": acc - 0.05}},
		{Epoch: 2, Step: 8, Loss: 0.2, Metrics: map[string]float64{"accuracy": acc}}}
	raw, _ := json.MarshalIndent(rep, "", "  ")
	tmp := out + ".tmp"
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "surgeon apply:", err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(tmp, "report.json"), raw, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "surgeon apply:", err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(tmp, "metrics.csv"), []byte(metrics), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "surgeon apply:", err)
		return 1
	}
	if err := os.Rename(tmp, out); err != nil {
		fmt.Fprintln(os.Stderr, "surgeon apply:", err)
		return 1
	}
	return 0
}

// fakeSweepPoint behaves like `surgeon sweep RECIPE --point I --out DIR
// [--set ...]`, running the point with the fake apply.
func fakeSweepPoint(args []string) int {
	var sets []string
	var rec, out, hash string
	var list []int
	point := -1
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--point":
			i++
			point, _ = strconv.Atoi(args[i])
		case "--expect-hash":
			i++
			hash = args[i]
		case "--indices":
			i++
			for _, f := range strings.Split(args[i], ",") {
				n, _ := strconv.Atoi(f)
				list = append(list, n)
			}
		case "--out":
			i++
			out = args[i]
		case "--set":
			i++
			sets = append(sets, args[i])
		default:
			rec = args[i]
		}
	}
	s, err := Load(rec, sets, out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "surgeon sweep:", err)
		return 1
	}
	if list != nil {
		point = list[point]
	}
	exe, _ := os.Executable()
	if _, err := RunPoint(context.Background(), s, point, Options{Exe: exe, ExpectHash: hash}); err != nil {
		fmt.Fprintln(os.Stderr, "surgeon sweep:", err)
		return 1
	}
	return 0
}

// fakeEnv returns options running points with the fake apply.
func fakeEnv(t *testing.T, extra ...string) (Options, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "calls.log")
	env := append(os.Environ(), "SWEEP_FAKE_APPLY=1", "SWEEP_FAKE_LOG="+log)
	return Options{Exe: exe, Env: append(env, extra...), StopTimeout: 10 * time.Second}, log
}

func calls(t *testing.T, log string) []string {
	raw, _ := os.ReadFile(log)
	return strings.Fields(string(raw))
}

const runTable = `
[sweep]
seeds = [1, 2]
[sweep.axes]
"targets.0.config.r" = [1, 4]
"targets.0.config.lora_alpha" = "2*r"
[sweep.baselines]
head = { recipe = "head.toml", sets = ["train.mode=head"], seeds = [1] }
`

// events collects progress events safely.
type events struct {
	mu   sync.Mutex
	list []Event
}

func (e *events) add(ev Event) { e.mu.Lock(); e.list = append(e.list, ev); e.mu.Unlock() }

func TestRunIsolatesFailuresAndSharesCores(t *testing.T) {
	s, err := loadSweep(t, runTable)
	if err != nil {
		t.Fatal(err)
	}
	opts, log := fakeEnv(t, "SWEEP_FAKE_FAIL=r=4,seed=1")
	opts.Parallel = 2
	var ev events
	opts.Progress = ev.add
	m, err := Run(context.Background(), s, opts)
	var fe *FailedError
	if !errors.As(err, &fe) || !reflect2(fe.Names, []string{"r=4,seed=1"}) {
		t.Fatalf("Run error %v, want one failed point", err)
	}
	if got := len(calls(t, log)); got != 5 {
		t.Fatalf("%d points ran, want 5", got)
	}
	for _, p := range m.Points {
		want := StateDone
		if p.Name == "r=4,seed=1" {
			want = StateFailed
			if p.ExitCode == nil || *p.ExitCode != 1 || !strings.Contains(p.Error, "boom in r=4,seed=1") {
				t.Fatalf("failed point: exit %v error %q", p.ExitCode, p.Error)
			}
		}
		if p.State != want || p.Start == nil || p.End == nil || p.Attempts != 1 {
			t.Fatalf("point %s: %+v", p.Name, p)
		}
	}
	// The manifest on disk matches.
	disk, err := ReadManifest(s.Dir)
	if err != nil || len(disk.Points) != 5 || disk.Points[2].State != StateFailed {
		t.Fatalf("manifest on disk: %v %+v", err, disk)
	}
	// The output went to logs/NAME.log.
	raw, _ := os.ReadFile(filepath.Join(s.Dir, "logs", "r=4,seed=1.log"))
	if !strings.Contains(string(raw), "boom") || !strings.Contains(string(raw), "== attempt 1") {
		t.Fatalf("log:\n%s", raw)
	}
	// Each point got its share of the cores.
	var rep apply.Report
	readJSONFile(t, filepath.Join(s.PointDir("r=1,seed=1"), "report.json"), &rep)
	if want := strconv.Itoa(max(1, runtime.NumCPU()/2)); rep.Extra["gomaxprocs"] != want {
		t.Fatalf("GOMAXPROCS %v, want %s", rep.Extra["gomaxprocs"], want)
	}
	// One running and one final event per point, with counts.
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.list) != 10 {
		t.Fatalf("%d events, want 10", len(ev.list))
	}
	last := ev.list[len(ev.list)-1]
	if last.Done != 4 || last.Failed != 1 || last.Pending != 0 || last.Running != 0 || last.Total != 5 {
		t.Fatalf("last event %+v", last)
	}
	sawETA := false
	for _, e := range ev.list {
		sawETA = sawETA || e.ETA > 0
	}
	if !sawETA {
		t.Fatal("no event carried an ETA")
	}
	// A second run reruns only the failed point.
	opts, log = fakeEnv(t)
	opts.Parallel = 2
	if _, err := Run(context.Background(), s, opts); err != nil {
		t.Fatal(err)
	}
	if got := calls(t, log); !reflect2(got, []string{"r=4,seed=1"}) {
		t.Fatalf("second run ran %v", got)
	}
}

func reflect2(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

// A sweep interrupted mid-way (Ctrl-C: the context is cancelled while a
// point runs) records what finished; running it again runs only the
// missing points and gives the same report as an uninterrupted sweep.
func TestRunResumesAfterInterrupt(t *testing.T) {
	s, err := loadSweep(t, runTable)
	if err != nil {
		t.Fatal(err)
	}
	opts, log := fakeEnv(t, "SWEEP_FAKE_BLOCK=r=4,seed=1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts.Progress = func(e Event) {
		if e.Point.Name == "r=4,seed=1" && e.State == StateRunning {
			go func() { time.Sleep(200 * time.Millisecond); cancel() }()
		}
	}
	m, err := Run(ctx, s, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Run returned %v", err)
	}
	var states []string
	for _, p := range m.Points {
		states = append(states, p.State)
	}
	if want := []string{StateDone, StateDone, StateInterrupted, StatePending, StatePending}; !reflect2(states, want) {
		t.Fatalf("states %v, want %v", states, want)
	}
	if _, _, err := WriteReport(s.Dir); err != nil {
		t.Fatal(err)
	}
	partial, _ := os.ReadFile(filepath.Join(s.Dir, ReportMarkdown))
	if !strings.Contains(string(partial), "| r=4,seed=1 | interrupted |") || !strings.Contains(string(partial), "| head,seed=1 | missing | no report.json |") {
		t.Fatalf("partial report:\n%s", partial)
	}

	opts2, log2 := fakeEnv(t)
	if _, err := Run(context.Background(), s, opts2); err != nil {
		t.Fatal(err)
	}
	if got := calls(t, log2); !reflect2(got, []string{"r=4,seed=1", "r=4,seed=2", "head,seed=1"}) {
		t.Fatalf("the rerun ran %v, want only the unfinished points", got)
	}
	if got := calls(t, log); len(got) != 3 {
		t.Fatalf("the first run ran %v", got)
	}
	m2, _ := ReadManifest(s.Dir)
	if m2.Points[2].Attempts != 2 || m2.Points[0].Attempts != 1 {
		t.Fatalf("attempts %d and %d", m2.Points[2].Attempts, m2.Points[0].Attempts)
	}
	if _, _, err := WriteReport(s.Dir); err != nil {
		t.Fatal(err)
	}

	// An uninterrupted sweep of the same recipe into another folder.
	other, err := Load(s.Recipe, nil, filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	opts3, _ := fakeEnv(t)
	opts3.Parallel = 3
	if _, err := Run(context.Background(), other, opts3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := WriteReport(other.Dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ReportMarkdown, ReportCSV, PointsCSV} {
		a, _ := os.ReadFile(filepath.Join(s.Dir, f))
		b, _ := os.ReadFile(filepath.Join(other.Dir, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Fatalf("%s differs after resume:\n%s\nuninterrupted:\n%s", f, a, b)
		}
	}
}

// Results of another recipe in a point's folder are never taken as done,
// nor overwritten.
func TestRunRefusesStaleResults(t *testing.T) {
	s, err := loadSweep(t, "[sweep.axes]\n\"targets.0.config.r\" = [2]\n")
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := fakeEnv(t)
	if _, err := Run(context.Background(), s, opts); err != nil {
		t.Fatal(err)
	}
	changed, err := Load(s.Recipe, []string{"train.lr=0.5"}, s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	opts, log := fakeEnv(t)
	m, err := Run(context.Background(), changed, opts)
	if !errors.As(err, new(*FailedError)) || m.Points[0].State != StateFailed || !strings.Contains(m.Points[0].Error, "different recipe") {
		t.Fatalf("Run over stale results: %v, %+v", err, m.Points[0])
	}
	if got := calls(t, log); len(got) != 0 {
		t.Fatalf("ran %v over stale results", got)
	}
}

// RunPoint runs one point (as a cluster job does), creates the manifest
// once and skips a finished point.
func TestRunPoint(t *testing.T) {
	s, err := loadSweep(t, runTable)
	if err != nil {
		t.Fatal(err)
	}
	opts, log := fakeEnv(t, "GOMAXPROCS=3")
	for _, i := range []int{3, 3, 0} {
		p, err := RunPoint(context.Background(), s, i, opts)
		if err != nil || p.State != StateDone {
			t.Fatalf("RunPoint(%d): %v %+v", i, err, p)
		}
	}
	if got := calls(t, log); !reflect2(got, []string{"r=4,seed=2", "r=1,seed=1"}) {
		t.Fatalf("ran %v", got)
	}
	var rep apply.Report
	readJSONFile(t, filepath.Join(s.PointDir("r=4,seed=2"), "report.json"), &rep)
	if rep.Extra["gomaxprocs"] != "3" {
		t.Fatalf("a point job overrode the job's GOMAXPROCS: %v", rep.Extra["gomaxprocs"])
	}
	m, err := ReadManifest(s.Dir)
	if err != nil || len(m.Points) != 5 || m.Points[3].State != StatePending {
		t.Fatalf("manifest %v %+v", err, m)
	}
	if _, err := RunPoint(context.Background(), s, 5, opts); err == nil || !strings.Contains(err.Error(), "no point 5") {
		t.Fatalf("RunPoint(5): %v", err)
	}
	opts, _ = fakeEnv(t, "SWEEP_FAKE_FAIL=head,seed=1")
	if _, err := RunPoint(context.Background(), s, 4, opts); err == nil || !strings.Contains(err.Error(), "boom in head,seed=1") {
		t.Fatalf("failing RunPoint: %v", err)
	}
	rep2, err := ReadReport(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Done() != 2 || len(rep2.Unfinished()) != 3 {
		t.Fatalf("report of the point runs: %d done, %d unfinished", rep2.Done(), len(rep2.Unfinished()))
	}
}
