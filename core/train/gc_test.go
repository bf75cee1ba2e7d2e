package train

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestGCPercentFor(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, maxGCPercent},
		{1 << 20, maxGCPercent},
		{64 << 20, 200},
		{256 << 20, 50},
		{1 << 30, TrainingGCPercent},
		{2 << 30, TrainingGCPercent},
	} {
		if got := GCPercentFor(tc.live); got != tc.want {
			t.Errorf("GCPercentFor(%d MiB) = %d, want %d", tc.live>>20, got, tc.want)
		}
	}
}

func TestTuneGC(t *testing.T) {
	t.Setenv("GOGC", "")
	was := debug.SetGCPercent(100)
	defer debug.SetGCPercent(was)
	tuner := TuneGC()
	if got := debug.SetGCPercent(TrainingGCPercent); got != TrainingGCPercent {
		t.Fatalf("GC percent during training = %d, want %d", got, TrainingGCPercent)
	}
	// This test's live heap is a few megabytes: the target rises so that
	// the headroom is MinGCHeadroom.
	runtime.GC()
	tuner.Step()
	if got := debug.SetGCPercent(tuner.current); got <= TrainingGCPercent || got != tuner.current {
		t.Fatalf("GC percent after Step = %d (tuner %d), want the raised target", got, tuner.current)
	}
	tuner.Restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent after Restore = %d, want 100", got)
	}

	t.Setenv("GOGC", "300")
	debug.SetGCPercent(300)
	tuner = TuneGC()
	tuner.Step()
	tuner.Restore()
	if got := debug.SetGCPercent(100); got != 300 {
		t.Fatalf("TuneGC overrode GOGC: percent %d, want 300", got)
	}
}
