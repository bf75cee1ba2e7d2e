package sweep

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The emitted Slurm script is self-contained: its tasks run from any
// folder (sbatch's working directory does not matter), and a recipe
// edited after emission is refused by name.
func TestSlurmSubmittedElsewhere(t *testing.T) {
	dir := writeRecipes(t, map[string]string{
		"s.toml":    baseRecipe + "\n" + runTable,
		"head.toml": strings.Replace(baseRecipe, "[[targets]]\nmodules = [\"q_proj\", \"v_proj\"]\n[targets.config]\nr = 8\nlora_alpha = 16\n", "", 1),
	})
	t.Chdir(dir)
	s, err := Load("s.toml", []string{"train.max_steps=3"}, "") // a relative recipe, as users type it
	if err != nil {
		t.Fatal(err)
	}
	if err := Prepare(s); err != nil {
		t.Fatal(err)
	}
	script, err := Slurm(s, EmitOptions{Binary: "surgeon"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#SBATCH --chdir=" + dir + "\n", "exec surgeon sweep " + filepath.Join(dir, "s.toml") + " --point",
		"--out " + s.Dir + " ", "#SBATCH --output=" + s.Dir + "/logs/slurm-%A_%a.out\n"} {
		if !strings.Contains(script, want) {
			t.Fatalf("script lacks %q:\n%s", want, script)
		}
	}
	// Kubernetes: a relative recipe resolves in --workdir in the image;
	// without one the pod gets the absolute path it has here.
	for workdir, want := range map[string]string{"/inputs": "s.toml", "": filepath.Join(dir, "s.toml")} {
		job, err := Kubernetes(s, EmitOptions{WorkDir: workdir})
		if err != nil {
			t.Fatal(err)
		}
		c := job.Spec.Template.Spec.Containers[0]
		if c.Args[1] != want || c.WorkingDir != workdir {
			t.Fatalf("workdir %q: recipe %q in %q, want %q", workdir, c.Args[1], c.WorkingDir, want)
		}
	}
	bin := t.TempDir()
	exe, _ := os.Executable()
	if err := os.Symlink(exe, filepath.Join(bin, "surgeon")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sweep.sbatch")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	task := func(i int) (string, error) {
		// sbatch runs the script from its own copy, in the submit folder
		// unless --chdir says otherwise: the script must not care.
		body := strings.ReplaceAll(script, "cd "+dir+"\n", "")
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", path)
		cmd.Dir = elsewhere
		cmd.Env = append(os.Environ(), "SWEEP_FAKE_APPLY=1", "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
			"SLURM_ARRAY_TASK_ID="+strconv.Itoa(i), "SLURM_ARRAY_JOB_ID=77")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for i := 0; i < 3; i++ {
		if out, err := task(i); err != nil {
			t.Fatalf("task %d: %v\n%s", i, err, out)
		}
	}
	st, err := ReadStatus(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Done != 3 || st.Pending != 2 || st.Points[0].Job != "slurm 77_0" || st.Points[0].Attempts != 1 {
		t.Fatalf("status %s: %+v", st.Summary(), st.Points[0])
	}

	// Edit the recipe: the next task refuses it, naming it.
	raw, _ := os.ReadFile("s.toml")
	if err := os.WriteFile("s.toml", []byte(strings.Replace(string(raw), "lr = 1e-3", "lr = 2e-3", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := task(3)
	if err == nil || !strings.Contains(out, "s.toml") || !strings.Contains(out, ErrRecipeChanged.Error()) {
		t.Fatalf("edited recipe: %v\n%s", err, out)
	}
	if _, err := os.Stat(s.PointDir(s.Points[3].Name)); err == nil {
		t.Fatal("the refused point ran")
	}
	// Without --expect-hash, the manifest's hashes refuse it too.
	s2, err := Load("s.toml", []string{"train.max_steps=3"}, "")
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := fakeEnv(t)
	if _, err := RunPoint(context.Background(), s2, 3, opts); !errors.Is(err, ErrRecipeChanged) || !strings.Contains(err.Error(), "s.toml") {
		t.Fatalf("RunPoint of an edited recipe: %v", err)
	}
}

// Missing lists what a resubmission runs; the status tells done, failed
// (with the last error line and the log), interrupted (a killed job) and
// pending points apart; emitted jobs of the missing points run only those.
func TestMissingStatusAndResubmit(t *testing.T) {
	s, err := loadSweep(t, runTable)
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := fakeEnv(t, "SWEEP_FAKE_FAIL=r=4,seed=1")
	if _, err := Run(context.Background(), s, opts); err == nil {
		t.Fatal("want a failed point")
	}
	// A cluster job of point 1 that was killed: its record says running,
	// its process is gone.
	if err := os.RemoveAll(s.PointDir("r=1,seed=2")); err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC()
	r := &runner{s: s, shared: true, m: newManifest(s)}
	r.m.Points[1].State, r.m.Points[1].Start, r.m.Points[1].Attempts = StateRunning, &start, 1
	r.record(1)
	if r.err != nil {
		t.Fatal(r.err)
	}
	rec, _ := readRecord(s.Dir, "r=1,seed=2")
	rec.PID = 1 << 30 // no such process
	writeRecordForTest(t, s.Dir, rec)

	st, err := ReadStatus(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]PointStatus{}
	for _, p := range st.Points {
		got[p.Name] = p
	}
	if st.Done != 3 || st.Failed != 2 || st.Running != 0 || st.Pending != 0 || st.Summary() != "3/5 done, 2 failed" {
		t.Fatalf("status %s", st.Summary())
	}
	if p := got["r=4,seed=1"]; p.State != StateFailed || p.Error != "surgeon apply: boom in r=4,seed=1" || p.Log != filepath.Join(s.Dir, "logs", "r=4,seed=1.log") {
		t.Fatalf("failed point %+v", p)
	}
	if p := got["r=1,seed=2"]; p.State != StateInterrupted || !strings.Contains(p.Error, "checkpoint") {
		t.Fatalf("killed point %+v", p)
	}

	missing, stale := Missing(s)
	if len(stale) != 0 || len(missing) != 2 || missing[0] != 1 || missing[1] != 2 {
		t.Fatalf("missing %v, stale %v", missing, stale)
	}
	script, err := Slurm(s, EmitOptions{Indices: missing, Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(script, "#SBATCH --array=1,2%1\n") {
		t.Fatalf("script of the missing points:\n%s", script)
	}
	job, err := Kubernetes(s, EmitOptions{Indices: missing})
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(job.Spec.Template.Spec.Containers[0].Args, " ")
	if *job.Spec.Completions != 2 || !strings.Contains(args, "--indices 1,2") {
		t.Fatalf("job of the missing points: %d completions, args %s", *job.Spec.Completions, args)
	}
	if _, err := Slurm(s, EmitOptions{Indices: []int{9}}); err == nil {
		t.Fatal("want an error for point 9")
	}

	// The resubmitted points run: the sweep is complete.
	for _, i := range missing {
		opts, _ := fakeEnv(t)
		if _, err := RunPoint(context.Background(), s, i, opts); err != nil {
			t.Fatal(err)
		}
	}
	if st, err = ReadStatus(s.Dir); err != nil || st.Done != 5 {
		t.Fatalf("after the resubmission: %v %+v", err, st)
	}
	if missing, _ := Missing(s); len(missing) != 0 {
		t.Fatalf("still missing %v", missing)
	}
}

func writeRecordForTest(t *testing.T, dir string, rec *Record) {
	t.Helper()
	r := &runner{s: &Sweep{Dir: dir}, shared: true, m: &Manifest{Points: []PointState{{Point: Point{Name: rec.Name, Index: rec.Index, Hash: rec.Hash}}}}}
	p := &r.m.Points[0]
	p.State, p.Start, p.Attempts = rec.State, rec.Start, rec.Attempts
	r.record(0)
	raw, _ := os.ReadFile(recordPath(dir, rec.Name))
	body := strings.Replace(string(raw), `"pid": `+strconv.Itoa(os.Getpid()), `"pid": `+strconv.Itoa(rec.PID), 1)
	if err := os.WriteFile(recordPath(dir, rec.Name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Inputs finds the model and data of every point and names the missing
// ones; hf:// addresses are left to the jobs' shared cache.
func TestInputs(t *testing.T) {
	s, err := loadSweep(t, runTable, "model.path=hf://o/r/m.gguf")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Inputs(s)
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "data.train = ") || !strings.Contains(err.Error(), "train.tsv") {
		t.Fatalf("missing data: %v", err)
	}
	if strings.Contains(err.Error(), "model.path") {
		t.Fatalf("hf:// reported missing: %v", err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(s.Recipe), "train.tsv"), []byte("a\tb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := Inputs(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != 2 || !in[0].Hub || in[0].Path != "hf://o/r/m.gguf" || in[1].Key != "data.train" || len(in[1].Points) != len(s.Points) {
		t.Fatalf("inputs %+v", in)
	}
}
