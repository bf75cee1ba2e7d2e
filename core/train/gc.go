package train

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Garbage collection while a model trains. Go's default target, GOGC=100,
// lets the heap reach twice the live data before a collection; a training
// step keeps every activation of its forward pass live and turns over as
// much again in gradients, so the default doubles the peak memory of a
// large model. A small model has the opposite problem: its live data is a
// few megabytes, and a target proportional to it collects so often that
// collection, page faults and returning memory to the system cost more than
// the step's arithmetic. GCTuner therefore gives the heap a headroom of
// TrainingGCPercent of the live data, but at least MinGCHeadroom bytes.
const (
	// TrainingGCPercent is the headroom for large models, in percent of the
	// live heap. The buffers are large and hold no pointers, so marking them
	// is cheap and collecting several times as often as the default costs
	// little: on a BERT-base LoRA step, 15 against 25 measured the same step
	// time and a peak RSS 60-80 MiB lower.
	TrainingGCPercent = 15
	// MinGCHeadroom is the least headroom, in bytes, for small models.
	MinGCHeadroom = 128 << 20
	// maxGCPercent caps the target for tiny live heaps.
	maxGCPercent = 800
)

// GCTuner sets the garbage collector's target for a training run. It does
// nothing when the user chose a target with the GOGC environment variable.
//
// The headroom follows the largest live heap that any collection since
// TuneGC has found, not the last one: collections fall at different points
// of a step, and one just after a backward pass sees only the weights.
type GCTuner struct {
	off     bool
	old     int
	current int
	maxLive atomic.Uint64
	stopped atomic.Bool
}

// TuneGC starts tuning the collector for training: the target is
// TrainingGCPercent until Step has seen the live heap of a whole step.
func TuneGC() *GCTuner {
	if os.Getenv("GOGC") != "" {
		return &GCTuner{off: true}
	}
	t := &GCTuner{current: TrainingGCPercent}
	t.old = debug.SetGCPercent(TrainingGCPercent)
	t.watch()
	return t
}

// gcSentinel is garbage on purpose: its finalizer runs after every
// collection that finds it.
type gcSentinel struct{ _ [2]*int }

// watch records the live heap after the next collection, and so on after
// every one, until Restore.
func (t *GCTuner) watch() {
	s := new(gcSentinel)
	runtime.SetFinalizer(s, func(*gcSentinel) {
		if t.stopped.Load() {
			return
		}
		if live := liveHeap(); live > t.maxLive.Load() {
			t.maxLive.Store(live)
		}
		t.watch()
	})
}

// liveHeap returns the live heap that the last collection found, in bytes.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Step adjusts the target to the largest live heap seen so far; call it
// once per training step.
func (t *GCTuner) Step() {
	if t.off {
		return
	}
	live := max(t.maxLive.Load(), liveHeap())
	t.maxLive.Store(live)
	if p := GCPercentFor(live); p != t.current {
		debug.SetGCPercent(p)
		t.current = p
	}
}

// Restore puts back the target that was in force before TuneGC.
func (t *GCTuner) Restore() {
	if !t.off {
		t.stopped.Store(true)
		debug.SetGCPercent(t.old)
	}
}

// GCPercentFor returns the collector target for a live heap of the given
// size: TrainingGCPercent, raised so that the headroom is at least
// MinGCHeadroom, and at most maxGCPercent.
func GCPercentFor(live uint64) int {
	if live == 0 {
		return maxGCPercent
	}
	p := int(min(uint64(MinGCHeadroom)*100/live, maxGCPercent))
	return max(p, TrainingGCPercent)
}
