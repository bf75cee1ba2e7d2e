package sweep

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const reportTable = `
[sweep]
seeds = [1, 2]
[sweep.axes]
"targets.0.config.r" = [1, 4, 16]
"targets.0.config.lora_alpha" = "2*r"
[sweep.baselines]
head = { recipe = "head.toml", sets = ["train.mode=head"] }
full = { recipe = "head.toml", sets = ["train.mode=full"], seeds = [1] }
`

// goldenSweep builds a sweep folder with results: every point done by the
// fake apply except r=16,seed=2 (failed) and full,seed=1 (never ran).
func goldenSweep(t *testing.T) *Sweep {
	t.Helper()
	dir := writeRecipes(t, map[string]string{
		"s.toml":    baseRecipe + reportTable,
		"head.toml": strings.Replace(baseRecipe, "[[targets]]\nmodules = [\"q_proj\", \"v_proj\"]\n[targets.config]\nr = 8\nlora_alpha = 16\n", "", 1),
	})
	t.Chdir(dir) // recipe paths in the report are as given
	s, err := Load("s.toml", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	m := newManifest(s)
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range m.Points {
		p := &m.Points[i]
		switch p.Name {
		case "r=16,seed=2":
			code := 1
			p.State, p.ExitCode, p.Error = StateFailed, &code, "step 1/2 loss 0.7\nsurgeon apply: boom | bad"
			continue
		case "full,seed=1":
			continue
		}
		args := []string{"apply", p.Recipe}
		for _, kv := range p.Sets {
			args = append(args, "--set", kv)
		}
		if code := fakeApply(args); code != 0 {
			t.Fatalf("fake apply of %s: exit %d", p.Name, code)
		}
		p.State = StateDone
	}
	if err := m.write(); err != nil {
		t.Fatal(err)
	}
	return s
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestReportGolden(t *testing.T) {
	wd, _ := os.Getwd()
	s := goldenSweep(t)
	rep, files, err := WriteReport(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"eval-vs-epoch.png", "eval-vs-epoch.svg", "loss-vs-step.png", "loss-vs-step.svg",
		"metric-vs-params.png", "metric-vs-params.svg", "metric-vs-rank.png", "metric-vs-rank.svg", PointsCSV, ReportCSV, ReportMarkdown}
	if strings.Join(files, " ") != strings.Join(want, " ") {
		t.Fatalf("files %v, want %v", files, want)
	}
	if len(rep.Groups) != 5 || rep.Groups[2].Std != 0 || len(rep.Groups[2].Values) != 1 || rep.Groups[0].Std == 0 {
		t.Fatalf("groups %+v", rep.Groups)
	}
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(s.Dir, f))
		if err != nil || len(raw) < 100 {
			t.Fatalf("%s: %v, %d bytes", f, err, len(raw))
		}
		switch filepath.Ext(f) {
		case ".png":
			if !bytes.HasPrefix(raw, []byte("\x89PNG")) {
				t.Fatalf("%s is not a PNG", f)
			}
		case ".svg":
			if !bytes.Contains(raw, []byte("<svg")) {
				t.Fatalf("%s is not an SVG", f)
			}
		}
	}
	t.Chdir(wd)
	for _, f := range []string{ReportMarkdown, ReportCSV, PointsCSV} {
		raw, _ := os.ReadFile(filepath.Join(s.Dir, f))
		golden(t, "golden-"+f, raw)
	}
	// The same results give the same bytes, plots included.
	first := map[string][]byte{}
	for _, f := range files {
		first[f], _ = os.ReadFile(filepath.Join(s.Dir, f))
	}
	if _, _, err := WriteReport(s.Dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		again, _ := os.ReadFile(filepath.Join(s.Dir, f))
		if filepath.Ext(f) != ".png" && !bytes.Equal(first[f], again) {
			t.Fatalf("%s changed when written again", f)
		}
	}
}

// Without a manifest, the report reads whatever point folders exist.
func TestReportWithoutManifest(t *testing.T) {
	s := goldenSweep(t)
	if err := os.Remove(filepath.Join(s.Dir, ManifestFile)); err != nil {
		t.Fatal(err)
	}
	rep, err := ReadReport(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range rep.Groups {
		names = append(names, g.Name+":"+g.Baseline)
	}
	// Sorted folder names; r=16 has only its finished seed.
	if got, want := strings.Join(names, " "), "head:head r=1: r=16: r=4:"; got != want {
		t.Fatalf("groups %q, want %q", got, want)
	}
	if rep.Done() != 7 || rep.Groups[0].Trainable != 128 || rep.Groups[2].Rank != 16 || rep.Groups[2].Scale != 2 {
		t.Fatalf("report %+v %+v", rep, rep.Groups[2])
	}
}

func TestCell(t *testing.T) {
	cases := []struct {
		g    Group
		want string
	}{
		{Group{Metric: "accuracy"}, "—"},
		{Group{Metric: "accuracy", Values: []float64{0.9}, Mean: 0.9}, "0.9000"},
		{Group{Metric: "accuracy", Values: []float64{0.9, 0.8}, Mean: 0.85, Std: 0.0707}, "0.8500 ± 0.0707"},
		{Group{Metric: "perplexity", Values: []float64{12.3456, 1}, Mean: 12.3456, Std: 1}, "12.346 ± 1.000"},
	}
	for _, c := range cases {
		if got := c.g.Cell(); got != c.want {
			t.Errorf("Cell() = %q, want %q", got, c.want)
		}
	}
	if got := thousands(1234567); got != "1,234,567" {
		t.Errorf("thousands = %q", got)
	}
}
