package apply

import (
	"context"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/internal/memavail"
)

// The plan estimates the run's memory, and a run that would not fit is
// refused before it starts, with the estimate and what is available.
func TestMemoryEstimateAndRefusal(t *testing.T) {
	needFixtures(t)
	r, err := prepare(t, writeRecipe(t, smallRecipe("")))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := r.Plan.Memory
	if m.Weights != 4*r.Plan.Total || m.TrainState != 12*r.Plan.Trainable || m.Activations <= 0 || m.Total != m.Weights+m.TrainState+m.Activations+m.Runtime {
		t.Fatalf("estimate %+v for %d params, %d trainable", m, r.Plan.Total, r.Plan.Trainable)
	}
	bigger, err := prepare(t, writeRecipe(t, strings.Replace(smallRecipe(""), "batch_size = 16", "batch_size = 64", 1)))
	if err != nil {
		t.Fatal(err)
	}
	defer bigger.Close()
	if a, b := bigger.Plan.Memory.Activations, m.Activations; a != 4*b {
		t.Errorf("activations of a 4x batch: %d, want 4 x %d", a, b)
	}
	// Checkpointing every block needs less than checkpointing the first
	// one only, which needs less than none.
	var acts []int64
	for _, sets := range [][]string{nil, {"train.gradient_checkpointing=true", "train.checkpoint_blocks=1"}, {"train.gradient_checkpointing=true"}} {
		c, err := prepare(t, writeRecipe(t, smallRecipe("")), sets...)
		if err != nil {
			t.Fatal(err)
		}
		acts = append(acts, c.Plan.Memory.Activations)
		c.Close()
	}
	if acts[0] != m.Activations || !(acts[0] > acts[1] && acts[1] > acts[2]) {
		t.Errorf("activations without checkpointing, with its first block, with all: %v", acts)
	}
	t.Setenv(MemoryEnv, "100M")
	_, err = r.Execute(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "but 100 MiB is available ("+MemoryEnv+")") || !strings.Contains(err.Error(), "lower train.batch_size") {
		t.Fatalf("a run that does not fit: %v", err)
	}
	for in, want := range map[string]int64{"512M": 512 << 20, "2G": 2 << 30, "1.5GiB": 3 << 29, "4096": 4096} {
		if got, err := memavail.ParseBytes(in); err != nil || got != want {
			t.Errorf("memavail.ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
