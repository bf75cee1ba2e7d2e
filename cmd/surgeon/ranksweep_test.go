package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/internal/plugintest"
)

// The rank-sweep mode resizes the highest-rank adapter of a finished sweep
// to each lower rank and evaluates it next to the adapters trained there.
func TestRankSweep(t *testing.T) {
	fx, _ := filepath.Abs(fixture(t, "."))
	mgr := withPlugins(t, "lora")
	bin := buildSurgeon(t)
	dir := t.TempDir()
	rec := filepath.Join(dir, "s.toml")
	body := strings.Replace(resumeRecipe(fx, filepath.Join(dir, "unused")), "epochs = 2", "epochs = 1\nmax_steps = 2", 1) +
		"\n[sweep]\nseeds = [1]\n[sweep.axes]\n\"targets.0.config.r\" = [2, 4]\n\"targets.0.config.lora_alpha\" = \"2*r\"\n"
	os.WriteFile(rec, []byte(body), 0o644)
	out := filepath.Join(dir, "sweep")
	cmd := exec.Command(bin, "sweep", rec, "--out", out)
	cmd.Env = plugintest.Env(mgr)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sweep: %v\n%s", err, b)
	}
	code, stdout, errs := runCLI("sweep", "ranks", out)
	if code != 0 {
		t.Fatalf("sweep ranks: %s", errs)
	}
	md, err := os.ReadFile(filepath.Join(out, "ranksweep.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| 2 |") || !strings.Contains(string(md), "| 4 |") || !strings.Contains(string(md), "100.00%") {
		t.Fatalf("ranksweep.md:\n%s\nstdout:\n%s", md, stdout)
	}
	if _, err := os.Stat(filepath.Join(out, "ranksweep", "r=2", "adapter_config.json")); err != nil {
		t.Fatal("resized adapter not written")
	}
}
