package sweep

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/surgeon-ml/surgeon/internal/atomicfs"
	"github.com/surgeon-ml/surgeon/internal/runlock"
)

// RecordDir is the folder of the sweep holding one record per point run
// by a cluster job (RunPoint): point jobs never rewrite the manifest, so
// their states live in status/NAME.json.
const RecordDir = "status"

// Record is status/NAME.json: the last attempt of a point run by
// RunPoint (a cluster job or `surgeon sweep --point`).
type Record struct {
	Name     string     `json:"name"`
	Index    int        `json:"index"`
	Hash     string     `json:"hash"`
	State    string     `json:"state"`
	Start    *time.Time `json:"start,omitempty"`
	End      *time.Time `json:"end,omitempty"`
	ExitCode *int       `json:"exit_code,omitempty"`
	Error    string     `json:"error,omitempty"`
	Attempts int        `json:"attempts"`
	// Host and PID are the `surgeon sweep --point` process running it.
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
	// Job names the scheduler's job: the Slurm job and array task, or
	// the Kubernetes pod.
	Job string `json:"job,omitempty"`
}

func recordPath(dir, name string) string { return filepath.Join(dir, RecordDir, name+".json") }

func readRecord(dir, name string) (*Record, error) {
	raw, err := os.ReadFile(recordPath(dir, name))
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", recordPath(dir, name), err)
	}
	return &r, nil
}

// record writes point i's record when the runner is a cluster job's
// (r.mu is held). A failure to write it is kept as the run's error, as a
// manifest write failure is.
func (r *runner) record(i int) {
	if !r.shared {
		return
	}
	p := &r.m.Points[i]
	host, _ := os.Hostname()
	rec := Record{Name: p.Name, Index: p.Index, Hash: p.Hash, State: p.State, Start: p.Start, End: p.End, ExitCode: p.ExitCode,
		Error: p.Error, Attempts: p.Attempts, Host: host, PID: os.Getpid(), Job: jobID()}
	raw, err := json.MarshalIndent(rec, "", "  ")
	if err == nil {
		if err = os.MkdirAll(filepath.Join(r.s.Dir, RecordDir), atomicfs.DirPerm); err == nil {
			err = writeAtomic(recordPath(r.s.Dir, p.Name), append(raw, '\n'))
		}
	}
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("point %s: status record: %w", p.Name, err)
	}
}

// jobID names the scheduler's job running this process, if any.
func jobID() string {
	if j := os.Getenv("SLURM_ARRAY_JOB_ID"); j != "" {
		return "slurm " + j + "_" + os.Getenv("SLURM_ARRAY_TASK_ID")
	}
	if j := os.Getenv("SLURM_JOB_ID"); j != "" {
		return "slurm " + j
	}
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		h, _ := os.Hostname()
		return "pod " + h
	}
	return ""
}

// Prepare makes the sweep folder ready for cluster jobs before they are
// submitted: logs/, points/ and manifest.json, which records the recipe
// hash and every point's, so that each job refuses a recipe edited since
// (ErrRecipeChanged). A manifest of the same sweep is kept; one of a
// different recipe is replaced (the old points' folders then count as
// stale and are not mixed in).
func Prepare(s *Sweep) error {
	for _, d := range []string{"logs", "points"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), atomicfs.DirPerm); err != nil {
			return fmt.Errorf("sweep folder: %w", err)
		}
	}
	if old, err := ReadManifest(s.Dir); err == nil && old.Hash == s.Hash && len(old.Points) == len(s.Points) {
		return nil
	}
	return newManifest(s).write()
}

// sameRecipe checks point i of s against the manifest in the sweep
// folder: the recipe of the sweep and of the point must hash as they did
// when the manifest was written.
func sameRecipe(s *Sweep, i int) error {
	m, err := ReadManifest(s.Dir)
	if err != nil {
		return err
	}
	p := &s.Points[i]
	switch {
	case m.Hash != s.Hash:
		return fmt.Errorf("point %d (%s): %s: %w (hash %.12s; %s has %.12s): restore the recipe, or emit the sweep again into another folder",
			i, p.Name, s.Recipe, ErrRecipeChanged, s.Hash, filepath.Join(s.Dir, ManifestFile), m.Hash)
	case i >= len(m.Points) || m.Points[i].Name != p.Name || m.Points[i].Hash != p.Hash:
		return fmt.Errorf("point %d (%s): %s: %w (its point recipe differs from the one in %s): restore the recipe, or emit the sweep again into another folder",
			i, p.Name, p.Recipe, ErrRecipeChanged, filepath.Join(s.Dir, ManifestFile))
	}
	return nil
}

// Missing returns the indices of the points of s that have no results
// yet and that no run is working on: what a resubmitted job should run.
// Points holding results of another recipe (ErrStale) are left out too;
// stale lists them.
func Missing(s *Sweep) (missing []int, stale []string) {
	for i := range s.Points {
		p := &s.Points[i]
		done, err := finished(s, p)
		switch {
		case err != nil:
			stale = append(stale, p.Name)
		case done:
		case busy(s.PointDir(p.Name)):
		default:
			missing = append(missing, i)
		}
	}
	return missing, stale
}

// busy reports whether a run holds the run folder dir's lock.
func busy(dir string) bool {
	if _, err := os.Stat(runlock.PathFor(dir)); err != nil {
		return false
	}
	return checkFree(dir) != nil
}

// PointStatus is a point's state as `surgeon sweep status` shows it.
type PointStatus struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	// State is done, running, failed, interrupted or pending.
	State string `json:"state"`
	// Error is the last line of a failed attempt's output (or why a
	// point is interrupted).
	Error string `json:"error,omitempty"`
	// Log is the point's log file (absolute; empty before it ran).
	Log      string     `json:"log,omitempty"`
	Start    *time.Time `json:"start,omitempty"`
	End      *time.Time `json:"end,omitempty"`
	Attempts int        `json:"attempts,omitempty"`
	Host     string     `json:"host,omitempty"`
	Job      string     `json:"job,omitempty"`
}

// Status is what a sweep folder says about its points, whoever runs
// them: a local `surgeon sweep` (the manifest) or cluster jobs (their
// records and the points' results).
type Status struct {
	Dir    string `json:"dir"`
	Recipe string `json:"recipe"`
	Hash   string `json:"hash"`
	Total  int    `json:"total"`
	// Counts by state; Failed includes interrupted points.
	Done    int           `json:"done"`
	Running int           `json:"running"`
	Failed  int           `json:"failed"`
	Pending int           `json:"pending"`
	Points  []PointStatus `json:"points"`
}

// ReadStatus reads the state of every point of the sweep in dir. A point
// is done when its report.json carries its hash; otherwise the latest of
// the manifest's entry and its record says running, failed or
// interrupted; a point said to run whose process is gone (its run folder
// lock is free) is interrupted: a job killed mid-training resumes from
// its checkpoint when run again. Points never started are pending.
func ReadStatus(dir string) (*Status, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	m, err := ReadManifest(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: no %s: not a sweep folder, or no point has started", dir, ManifestFile)
		}
		return nil, err
	}
	st := &Status{Dir: dir, Recipe: m.Recipe, Hash: m.Hash, Total: len(m.Points)}
	s := &Sweep{Dir: dir}
	host, _ := os.Hostname()
	for i := range m.Points {
		mp := &m.Points[i]
		ps := PointStatus{Index: mp.Index, Name: mp.Name, State: StatePending}
		if mp.State != StatePending && mp.State != StateDone {
			ps.State, ps.Error, ps.Start, ps.End, ps.Attempts = mp.State, lastLine(mp.Error), mp.Start, mp.End, mp.Attempts
		}
		pid := 0
		if rec, err := readRecord(dir, mp.Name); err == nil && rec.Hash == mp.Hash && later(rec.Start, ps.Start) {
			ps.State, ps.Error, ps.Start, ps.End, ps.Attempts, ps.Host, ps.Job = rec.State, lastLine(rec.Error), rec.Start, rec.End, rec.Attempts, rec.Host, rec.Job
			if rec.Host == host {
				pid = rec.PID
			}
		}
		done, staleErr := finished(s, &mp.Point)
		switch {
		case done:
			ps.State, ps.Error = StateDone, ""
		case staleErr != nil:
			ps.State, ps.Error = StateFailed, staleErr.Error()
		case ps.State == StateRunning && !alive(pid) && !busy(s.PointDir(mp.Name)):
			ps.State, ps.Error = StateInterrupted, "its process is gone (killed?); it resumes from its checkpoint when run again"
		case ps.State == StateDone:
			ps.State = StatePending // done once, but its results are gone
		}
		if log := filepath.Join(dir, "logs", mp.Name+".log"); ps.State != StatePending || fileExists(log) {
			ps.Log = log
		}
		switch ps.State {
		case StateDone:
			st.Done++
		case StateRunning:
			st.Running++
		case StatePending:
			st.Pending++
		default:
			st.Failed++
		}
		st.Points = append(st.Points, ps)
	}
	sort.SliceStable(st.Points, func(a, b int) bool { return st.Points[a].Index < st.Points[b].Index })
	return st, nil
}

// later reports whether a is a later start than b (a nil b is earliest).
func later(a, b *time.Time) bool {
	if a == nil {
		return false
	}
	return b == nil || !a.Before(*b)
}

// alive reports whether process pid of this host exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Summary is the status's one-line count: "3/8 done, 1 running, 1 failed,
// 3 pending".
func (st *Status) Summary() string {
	parts := []string{strconv.Itoa(st.Done) + "/" + strconv.Itoa(st.Total) + " done"}
	for _, c := range []struct {
		n    int
		what string
	}{{st.Running, "running"}, {st.Failed, "failed"}, {st.Pending, "pending"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return strings.Join(parts, ", ")
}
