package linalg

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// The worker pool: GOMAXPROCS goroutines started on first use, fed through
// one buffered channel. A caller never waits for a worker to become free: it
// offers its job to the workers, then claims tasks itself until none is left,
// and waits only for tasks that a worker already started. A worker that takes
// a job late finds it exhausted and drops it.
var pool struct {
	once sync.Once
	jobs chan *job
	size int
}

func startPool() {
	pool.size = max(runtime.GOMAXPROCS(0), 1)
	pool.jobs = make(chan *job, 4*pool.size)
	for range pool.size {
		go worker()
	}
}

// poolSize returns the number of workers, starting them if needed.
func poolSize() int {
	pool.once.Do(startPool)
	return pool.size
}

func worker() {
	s := new(scratch)
	for j := range pool.jobs {
		j.work(s)
	}
}

// job is one call's set of independent tasks, numbered 0..tasks-1.
type job struct {
	tasks int
	run   func(task int, s *scratch)
	next  atomic.Int64  // next task to claim
	done  atomic.Int64  // tasks finished
	fin   chan struct{} // closed when done reaches tasks
}

// work claims and runs tasks until none is left.
func (j *job) work(s *scratch) {
	for {
		t := int(j.next.Add(1) - 1)
		if t >= j.tasks {
			return
		}
		j.run(t, s)
		if int(j.done.Add(1)) == j.tasks {
			close(j.fin)
		}
	}
}

// parallelFor runs run(0..tasks-1) on the caller and on up to helpers idle
// workers, and returns when all have finished.
func parallelFor(tasks, helpers int, run func(task int, s *scratch)) {
	j := &job{tasks: tasks, run: run, fin: make(chan struct{})}
offer:
	for range min(helpers, tasks-1) {
		select {
		case pool.jobs <- j:
		default:
			break offer
		}
	}
	s := scratchPool.Get().(*scratch)
	j.work(s)
	scratchPool.Put(s)
	<-j.fin
}

// scratch holds one goroutine's packing buffers, reused across calls.
type scratch struct {
	a, b []float32
	w    []float32 // B decoded from a RowSource before packing
	tile [maxTile]float32
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// buffers returns packing buffers of na and nb floats, each starting on a
// 64-byte cache line.
func (s *scratch) buffers(na, nb int) (a, b []float32) {
	if len(s.a) < na {
		s.a = alignedFloats(na)
	}
	if len(s.b) < nb {
		s.b = alignedFloats(nb)
	}
	return s.a[:na], s.b[:nb]
}

// widen returns the buffer of n floats that packBSource decodes into.
func (s *scratch) widen(n int) []float32 {
	if len(s.w) < n {
		s.w = alignedFloats(n)
	}
	return s.w[:n]
}

func alignedFloats(n int) []float32 {
	const align = 64 / 4
	raw := make([]float32, n+align)
	off := int(uintptr(unsafe.Pointer(&raw[0]))%64) / 4
	if off != 0 {
		off = align - off
	}
	return raw[off : off+n : off+n]
}
