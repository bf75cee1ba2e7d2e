package train

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	t.Setenv("GOGC", "")
	was := debug.SetGCPercent(100)
	defer debug.SetGCPercent(was)
	restore := TuneGC()
	if got := debug.SetGCPercent(TrainingGCPercent); got != TrainingGCPercent {
		t.Fatalf("GC percent during training = %d, want %d", got, TrainingGCPercent)
	}
	restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent after restore = %d, want 100", got)
	}

	t.Setenv("GOGC", "300")
	debug.SetGCPercent(300)
	TuneGC()()
	if got := debug.SetGCPercent(100); got != 300 {
		t.Fatalf("TuneGC overrode GOGC: percent %d, want 300", got)
	}
}
