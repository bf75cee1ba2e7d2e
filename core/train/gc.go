package train

import (
	"os"
	"runtime/debug"
)

// TrainingGCPercent is the garbage collector's growth target while a model
// trains. Go's default, 100, lets the heap reach twice the live data before
// a collection; a training step keeps every activation of its forward pass
// live and turns over the same amount again in gradients, so the default
// doubles peak memory. The buffers are large and hold no pointers, so
// marking them is cheap and collecting four times as often costs little.
const TrainingGCPercent = 25

// TuneGC sets the collector's target to TrainingGCPercent, unless the user
// chose one with the GOGC environment variable, and returns a function that
// restores the previous setting.
func TuneGC() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(TrainingGCPercent)
	return func() { debug.SetGCPercent(old) }
}
