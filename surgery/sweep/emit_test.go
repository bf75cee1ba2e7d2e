package sweep

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// localReport runs s here with the fake apply and returns its report
// files.
func localReport(t *testing.T, s *Sweep) map[string][]byte {
	t.Helper()
	opts, _ := fakeEnv(t)
	opts.Parallel = 2
	if _, err := Run(context.Background(), s, opts); err != nil {
		t.Fatal(err)
	}
	return reportFiles(t, s.Dir)
}

func reportFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	if _, _, err := WriteReport(dir); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range []string{ReportMarkdown, ReportCSV, PointsCSV} {
		raw, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		out[f] = raw
	}
	return out
}

func sameReports(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	for f, w := range want {
		if !bytes.Equal(got[f], w) {
			t.Fatalf("%s of the cluster run differs from the local sweep's:\n%s\nlocal:\n%s", f, got[f], w)
		}
	}
}

// decodeJob decodes a manifest strictly: an unknown field anywhere is an
// error.
func decodeJob(t *testing.T, manifest []byte) *batchv1.Job {
	t.Helper()
	raw, err := yaml.YAMLToJSON(manifest)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var job batchv1.Job
	if err := dec.Decode(&job); err != nil {
		t.Fatalf("strict decode: %v\n%s", err, manifest)
	}
	var again batchv1.Job
	if err := yaml.UnmarshalStrict(manifest, &again); err != nil {
		t.Fatalf("yaml.UnmarshalStrict: %v", err)
	}
	return &job
}

// The emitted Job decodes strictly with the Kubernetes types, and running
// its point command for every completion index yields the local sweep's
// report.
func TestKubernetesJob(t *testing.T) {
	s, err := loadSweep(t, runTable, "train.max_steps=3")
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := KubernetesYAML(s, EmitOptions{Parallel: 2, CPUs: 2, Memory: "2Gi", Env: []string{"SURGEON_HF_MIRROR=/mirror"}})
	if err != nil {
		t.Fatal(err)
	}
	job := decodeJob(t, manifest)
	spec := job.Spec
	switch {
	case job.APIVersion != "batch/v1" || job.Kind != "Job" || job.Name != "surgeon-s-sweep":
		t.Fatalf("type/name %s %s %s", job.APIVersion, job.Kind, job.Name)
	case spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion:
		t.Fatal("not an Indexed job")
	case spec.Completions == nil || int(*spec.Completions) != len(s.Points) || spec.Parallelism == nil || *spec.Parallelism != 2:
		t.Fatalf("completions %v parallelism %v", spec.Completions, spec.Parallelism)
	case spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever || spec.BackoffLimitPerIndex == nil:
		t.Fatal("restart policy / backoff per index")
	}
	pod := spec.Template.Spec
	if len(pod.Containers) != 1 || len(pod.Volumes) != 1 || pod.Volumes[0].PersistentVolumeClaim == nil ||
		pod.Volumes[0].PersistentVolumeClaim.ClaimName != DefaultPVC {
		t.Fatalf("pod %+v", pod)
	}
	c := pod.Containers[0]
	if c.Image != DefaultImage || len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != DefaultMountPath ||
		c.VolumeMounts[0].Name != pod.Volumes[0].Name {
		t.Fatalf("container %+v", c)
	}
	if cpu := c.Resources.Requests[corev1.ResourceCPU]; cpu.String() != "2" {
		t.Fatalf("cpu request %s", cpu.String())
	}
	if mem := c.Resources.Requests[corev1.ResourceMemory]; mem.String() != "2Gi" {
		t.Fatalf("memory request %s", mem.String())
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["JOB_COMPLETION_INDEX"]; e.ValueFrom == nil || !strings.Contains(e.ValueFrom.FieldRef.FieldPath, "job-completion-index") {
		t.Fatalf("JOB_COMPLETION_INDEX %+v", e)
	}
	if env["GOMAXPROCS"].Value != "2" || env["SURGEON_HF_MIRROR"].Value != "/mirror" || env["SURGEON_CACHE"].Value != "/results/.cache" {
		t.Fatalf("env %+v", c.Env)
	}
	cmdline := append(append([]string(nil), c.Command...), c.Args...)
	want := []string{"surgeon", "sweep", s.Recipe, "--point", IndexVar, "--out", "/results/s-sweep", "--expect-hash", s.Hash, "--set", "train.max_steps=3"}
	if strings.Join(cmdline, " ") != strings.Join(want, " ") {
		t.Fatalf("command %q, want %q", cmdline, want)
	}

	// Run every index's command here: the results volume is a folder.
	exe, _ := os.Executable()
	volume := t.TempDir()
	for i := 0; i < int(*spec.Completions); i++ {
		var args []string
		for _, a := range c.Args {
			a = strings.ReplaceAll(a, IndexVar, strconv.Itoa(i))
			if strings.HasPrefix(a, DefaultMountPath+"/") {
				a = filepath.Join(volume, strings.TrimPrefix(a, DefaultMountPath))
			}
			args = append(args, a)
		}
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), "SWEEP_FAKE_APPLY=1", "GOMAXPROCS="+env["GOMAXPROCS"].Value)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("index %d: %v\n%s", i, err, out)
		}
	}
	sameReports(t, reportFiles(t, filepath.Join(volume, "s-sweep")), localReport(t, s))
}

// The emitted Slurm script runs, as each array task, the point of its
// SLURM_ARRAY_TASK_ID; all tasks together yield the local sweep's report.
func TestSlurmScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	s, err := loadSweep(t, runTable, "train.max_steps=3")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "shared", "sweep")
	script, err := Slurm(s, EmitOptions{Out: out, Parallel: 2, CPUs: 3, Env: []string{"X=a b"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#!/bin/bash\n", "#SBATCH --array=0-4%2\n", "#SBATCH --cpus-per-task=3\n", "export X='a b'\n",
		`--point "$SLURM_ARRAY_TASK_ID" --out ` + out + " --expect-hash " + s.Hash + " --set train.max_steps=3\n",
		"#SBATCH --output=" + out + "/logs/slurm-%A_%a.out\n", "export SURGEON_CACHE=" + out + "/.cache\n"} {
		if !strings.Contains(script, want) {
			t.Fatalf("script lacks %q:\n%s", want, script)
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
	for i := range s.Points {
		cmd := exec.Command("bash", path)
		cmd.Env = append(os.Environ(), "SWEEP_FAKE_APPLY=1", "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
			"SLURM_ARRAY_TASK_ID="+strconv.Itoa(i), "SLURM_CPUS_PER_TASK=1")
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("task %d: %v\n%s", i, err, msg)
		}
	}
	sameReports(t, reportFiles(t, out), localReport(t, s))
}

func TestEmitNames(t *testing.T) {
	for in, want := range map[string]string{"surgeon-My_Sweep": "surgeon-my-sweep", "--x--": "x", strings.Repeat("a", 70): strings.Repeat("a", 63), "": "surgeon-sweep"} {
		if got := dnsLabel(in); got != want {
			t.Errorf("dnsLabel(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"a/b.toml": "a/b.toml", "a b": "'a b'", "it's": `'it'\''s'`, "x=[1, 2]": "'x=[1, 2]'"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}
