package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/surgeon-ml/surgeon/internal/atomicfs"
	"github.com/surgeon-ml/surgeon/internal/runlock"
)

// Options configure Run and RunPoint.
type Options struct {
	// Exe is the surgeon binary; a point runs as
	// `Exe apply RECIPE --set KEY=VALUE ...`.
	Exe string
	// Env is the points' environment (nil: this process's).
	Env []string
	// Parallel is how many points run at once (Run only; default 1).
	// Each point gets GOMAXPROCS = max(1, NumCPU/Parallel) so that the
	// points share the cores instead of fighting over them.
	Parallel int
	// Progress, when set, receives every state change of a point. Calls
	// never overlap.
	Progress func(Event)
	// Output, when set, also receives the points' output (it always goes
	// to logs/NAME.log in the sweep folder).
	Output io.Writer
	// StopTimeout is how long an interrupted point may take to checkpoint
	// and exit before it is killed (default 1 minute).
	StopTimeout time.Duration
	// ExpectHash, when set, is the sweep recipe's hash when the cluster
	// job was written (RunPoint only): a recipe edited since is refused
	// with ErrRecipeChanged instead of being mixed into the sweep.
	ExpectHash string
}

// Event is a change of a point's state.
type Event struct {
	Point Point
	// State is the point's new state.
	State string
	// Skipped is set for a point found done when the sweep starts.
	Skipped bool
	// Elapsed is the duration of the attempt that just ended.
	Elapsed time.Duration
	// Error is the tail of a failed point's output.
	Error string
	// Counts of points after the change; Failed includes interrupted
	// points.
	Done, Failed, Running, Pending, Total int
	// ETA estimates the time left from the mean duration of the points
	// finished by this run; 0 when unknown.
	ETA time.Duration
}

// FailedError reports the points of a sweep that did not finish.
type FailedError struct {
	// Names of the failed points, in expansion order.
	Names []string
	// Total is the number of points.
	Total int
	// Dir is the sweep folder (logs are in Dir/logs).
	Dir string
}

func (e *FailedError) Error() string {
	names := e.Names
	more := ""
	if len(names) > 5 {
		names, more = names[:5], fmt.Sprintf(" and %d more", len(e.Names)-5)
	}
	return fmt.Sprintf("%d of %d sweep points failed (%s%s); logs in %s", len(e.Names), e.Total,
		strings.Join(names, "; "), more, filepath.Join(e.Dir, "logs"))
}

// ErrStale marks a point folder holding results of a different recipe.
var ErrStale = errors.New("results of a different recipe")

// ErrRecipeChanged marks a point whose recipe no longer has the hash the
// sweep was written (emitted) with.
var ErrRecipeChanged = errors.New("recipe changed since the sweep was written")

// Run runs every unfinished point of s and returns the final manifest. A
// point is finished when points/NAME/report.json exists and carries the
// point's recipe hash; those are skipped, so re-running a crashed or
// interrupted sweep runs only what is missing (an interrupted point
// resumes from its own checkpoint). A failing point does not stop the
// others: Run returns a *FailedError after all have run. When ctx is
// cancelled, running points are interrupted (they checkpoint), no new
// point starts, and Run returns ctx's error.
func Run(ctx context.Context, s *Sweep, opts Options) (*Manifest, error) {
	if opts.Parallel < 1 {
		opts.Parallel = 1
	}
	r, err := newRunner(s, opts)
	if err != nil {
		return nil, err
	}
	m := r.m
	if old, err := ReadManifest(s.Dir); err == nil {
		prev := map[string]PointState{}
		for _, p := range old.Points {
			prev[p.Name] = p
		}
		for i := range m.Points {
			if o, ok := prev[m.Points[i].Name]; ok && o.Hash == m.Points[i].Hash {
				p := &m.Points[i]
				p.Start, p.End, p.Seconds, p.ExitCode, p.Error, p.Attempts = o.Start, o.End, o.Seconds, o.ExitCode, o.Error, o.Attempts
			}
		}
	}
	var skipped []int
	for i := range m.Points {
		p := &m.Points[i]
		switch done, err := finished(s, &p.Point); {
		case done:
			p.State = StateDone
			p.Error = ""
			skipped = append(skipped, i)
		case err != nil:
			p.State, p.Error = StateFailed, err.Error()
			skipped = append(skipped, i)
		default:
			p.State = StatePending
		}
	}
	r.mu.Lock()
	err = m.write()
	for _, i := range skipped {
		r.emit(i, 0, true)
	}
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	procs := max(1, runtime.NumCPU()/opts.Parallel)
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for i := range m.Points {
		if m.Points[i].State != StatePending {
			continue // done, or stale results that are not ours to remove
		}
		select {
		case <-ctx.Done():
		case sem <- struct{}{}:
		}
		if ctx.Err() != nil {
			break
		}
		attempt := r.begin(i)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			r.run(ctx, i, procs, attempt)
		}(i)
	}
	wg.Wait()
	if r.err != nil {
		return m, r.err
	}
	if err := ctx.Err(); err != nil {
		return m, err
	}
	var failed []string
	for _, p := range m.Points {
		if p.State != StateDone {
			failed = append(failed, p.Name)
		}
	}
	if len(failed) > 0 {
		return m, &FailedError{Names: failed, Total: len(m.Points), Dir: s.Dir}
	}
	return m, nil
}

// RunPoint runs point i of s alone (what a cluster job calls). It creates
// the manifest if none exists but never rewrites it, so jobs sharing the
// sweep folder do not race; the point's results are its folder. A point
// already finished is not run again.
func RunPoint(ctx context.Context, s *Sweep, i int, opts Options) (*PointState, error) {
	if i < 0 || i >= len(s.Points) {
		return nil, fmt.Errorf("no point %d: the sweep has %d (0 to %d)", i, len(s.Points), len(s.Points)-1)
	}
	r, err := newRunner(s, opts)
	if err != nil {
		return nil, err
	}
	r.shared = true
	if opts.ExpectHash != "" && opts.ExpectHash != s.Hash {
		return nil, fmt.Errorf("point %d: %s: %w (hash %.12s, the job was written for %.12s): restore the recipe, or emit the sweep again into another folder",
			i, s.Recipe, ErrRecipeChanged, s.Hash, opts.ExpectHash)
	}
	if err := r.m.createOnce(); err != nil {
		return nil, err
	}
	if err := sameRecipe(s, i); err != nil {
		return nil, err
	}
	p := &r.m.Points[i]
	if done, err := finished(s, &p.Point); done || err != nil {
		if err != nil {
			return p, fmt.Errorf("point %d (%s): %w", i, p.Name, err)
		}
		p.State = StateDone
		r.mu.Lock()
		r.emit(i, 0, true)
		r.mu.Unlock()
		return p, nil
	}
	if err := checkFree(s.PointDir(p.Name)); err != nil {
		return p, fmt.Errorf("point %d (%s): %w", i, p.Name, err)
	}
	r.run(ctx, i, 0, r.begin(i))
	switch {
	case r.err != nil:
		return p, r.err
	case p.State == StateInterrupted:
		if err := ctx.Err(); err != nil {
			return p, err
		}
		return p, fmt.Errorf("point %d (%s): %w", i, p.Name, context.Canceled)
	case p.State != StateDone:
		return p, fmt.Errorf("point %d (%s) failed: %s", i, p.Name, lastLine(p.Error))
	}
	return p, nil
}

// checkFree fails at once, naming the holder's PID, when the run folder
// dir is locked by a run in progress (another job on the same point).
// It does not keep the lock: the apply that runs the point takes it
// before touching the folder or its checkpoint.
func checkFree(dir string) error {
	l, err := runlock.Acquire(runlock.PathFor(dir))
	if err != nil {
		if errors.Is(err, runlock.ErrBusy) {
			return fmt.Errorf("run folder %s is in use by another run: %w", dir, err)
		}
		return fmt.Errorf("run folder %s: %w", dir, err)
	}
	return l.Release()
}

type runner struct {
	s    *Sweep
	opts Options
	m    *Manifest
	// shared: the manifest belongs to someone else (RunPoint).
	shared bool

	mu    sync.Mutex
	took  []time.Duration // durations of points done by this run
	start map[int]time.Time
	err   error // first manifest write error
}

func newRunner(s *Sweep, opts Options) (*runner, error) {
	if opts.Exe == "" {
		return nil, fmt.Errorf("sweep: no surgeon binary to run points with")
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, "logs"), atomicfs.DirPerm); err != nil {
		return nil, fmt.Errorf("sweep folder: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, "points"), atomicfs.DirPerm); err != nil {
		return nil, fmt.Errorf("sweep folder: %w", err)
	}
	return &runner{s: s, opts: opts, m: newManifest(s), start: map[int]time.Time{}}, nil
}

// finished reports whether the point's report.json exists with the
// point's recipe hash; a report of another recipe is an ErrStale error.
func finished(s *Sweep, p *Point) (bool, error) {
	dir := s.PointDir(p.Name)
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		return false, nil
	}
	var rep struct {
		Hash string `json:"recipe_hash"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		return false, fmt.Errorf("%s: %w", filepath.Join(dir, "report.json"), err)
	}
	if rep.Hash != p.Hash {
		return false, fmt.Errorf("%s holds %w (hash %.12s, want %.12s): remove it to run the point again", dir, ErrStale, rep.Hash, p.Hash)
	}
	return true, nil
}

// save writes the manifest (unless shared); r.mu is held.
func (r *runner) save() {
	if r.shared {
		return
	}
	if err := r.m.write(); err != nil && r.err == nil {
		r.err = err
	}
}

// emit reports point i's state; r.mu is held.
func (r *runner) emit(i int, took time.Duration, skipped bool) {
	if r.opts.Progress == nil {
		return
	}
	p := &r.m.Points[i]
	e := Event{Point: p.Point, State: p.State, Skipped: skipped, Elapsed: took, Error: p.Error, Total: len(r.m.Points)}
	for j := range r.m.Points {
		switch r.m.Points[j].State {
		case StateDone:
			e.Done++
		case StateRunning:
			e.Running++
		case StatePending:
			e.Pending++
		default:
			e.Failed++
		}
	}
	if r.shared {
		e.Done, e.Failed, e.Running, e.Pending, e.Total = 0, 0, 0, 0, 1
		switch p.State {
		case StateDone:
			e.Done = 1
		case StateRunning:
			e.Running = 1
		default:
			e.Failed = 1
		}
	}
	if len(r.took) > 0 {
		var sum time.Duration
		for _, d := range r.took {
			sum += d
		}
		mean := sum / time.Duration(len(r.took))
		left := time.Duration(e.Pending) * mean
		now := time.Now()
		for j, t := range r.start {
			if r.m.Points[j].State == StateRunning {
				left += max(0, mean-now.Sub(t))
			}
		}
		par := max(1, min(r.opts.Parallel, e.Pending+e.Running))
		e.ETA = left / time.Duration(par)
	}
	r.opts.Progress(e)
}

// begin marks point i running and returns its attempt number.
func (r *runner) begin(i int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &r.m.Points[i]
	now := time.Now().UTC().Truncate(time.Millisecond)
	p.State, p.Start, p.End, p.ExitCode, p.Error, p.Seconds = StateRunning, &now, nil, nil, "", 0
	if r.shared {
		// A cluster job: earlier attempts are in the point's record.
		if old, err := readRecord(r.s.Dir, p.Name); err == nil && old.Hash == p.Hash {
			p.Attempts = old.Attempts
		}
	}
	p.Attempts++
	r.start[i] = time.Now()
	r.save()
	r.record(i)
	r.emit(i, 0, false)
	return p.Attempts
}

// run runs point i (marked running by begin) as a child process; procs
// > 0 sets its GOMAXPROCS.
func (r *runner) run(ctx context.Context, i, procs, attempt int) {
	p := &r.m.Points[i]
	began := time.Now()
	code, tail, runErr := r.exec(ctx, &p.Point, procs, attempt)
	took := time.Since(began)

	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.start, i)
	end := time.Now().UTC().Truncate(time.Millisecond)
	p.End, p.Seconds = &end, took.Seconds()
	p.ExitCode = &code
	done, staleErr := finished(r.s, &p.Point)
	switch {
	case done:
		p.State = StateDone
		r.took = append(r.took, took)
	case ctx.Err() != nil || code == 130:
		// Cancelled here, or the point got the terminal's SIGINT itself.
		p.State, p.Error = StateInterrupted, "interrupted"
	default:
		p.State = StateFailed
		switch {
		case staleErr != nil:
			p.Error = staleErr.Error()
		case tail != "":
			p.Error = tail
		case runErr != nil:
			p.Error = runErr.Error()
		default:
			p.Error = fmt.Sprintf("exit code %d but no report.json in %s", code, r.s.PointDir(p.Name))
		}
	}
	r.save()
	r.record(i)
	r.emit(i, took, false)
}

// exec runs `Exe apply RECIPE --set ...` for p, logging to logs/NAME.log,
// and returns its exit code and the tail of its output.
func (r *runner) exec(ctx context.Context, p *Point, procs, attempt int) (code int, tail string, err error) {
	args := []string{"apply", p.Recipe}
	for _, s := range p.Sets {
		args = append(args, "--set", s)
	}
	logPath := filepath.Join(r.s.Dir, "logs", p.Name+".log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, atomicfs.FilePerm)
	if err != nil {
		return -1, "", fmt.Errorf("log: %w", err)
	}
	defer log.Close()
	fmt.Fprintf(log, "== attempt %d at %s: %s %s\n", attempt, time.Now().UTC().Format(time.RFC3339), r.opts.Exe, quoteArgs(args))
	tb := &tailBuffer{max: 8 << 10}
	var w io.Writer = io.MultiWriter(log, tb)
	if r.opts.Output != nil {
		w = io.MultiWriter(log, tb, r.opts.Output)
	}
	cmd := exec.CommandContext(ctx, r.opts.Exe, args...)
	cmd.Env = childEnv(r.opts.Env, procs)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = r.opts.StopTimeout
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = time.Minute
	}
	err = cmd.Run()
	code = -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	if err != nil && code == -1 {
		fmt.Fprintf(log, "== %v\n", err)
	}
	return code, tb.tail(6), err
}

// childEnv is the environment of a point: base (nil: os.Environ()) with
// GOMAXPROCS = procs when procs > 0.
func childEnv(base []string, procs int) []string {
	if base == nil {
		base = os.Environ()
	}
	if procs <= 0 {
		return base
	}
	env := make([]string, 0, len(base)+1)
	for _, kv := range base {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") {
			env = append(env, kv)
		}
	}
	return append(env, "GOMAXPROCS="+strconv.Itoa(procs))
}

// quoteArgs joins arguments for a log line, quoting those with spaces.
func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shellQuote(a)
	}
	return strings.Join(out, " ")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// tail returns the last n non-empty lines.
func (t *tailBuffer) tail(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(string(t.buf), "\r", "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lastLine returns the last line of s.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
