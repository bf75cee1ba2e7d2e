package sweep

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/surgeon-ml/surgeon/internal/atomicfs"
)

// States of a point in the manifest.
const (
	StatePending     = "pending"
	StateRunning     = "running"
	StateDone        = "done"
	StateFailed      = "failed"
	StateInterrupted = "interrupted"
)

// ManifestFile is the manifest's name in the sweep folder.
const ManifestFile = "manifest.json"

// Manifest is manifest.json: the sweep's points and the state of each.
// `surgeon sweep` rewrites it (atomically) after every state change.
type Manifest struct {
	Recipe  string       `json:"recipe"`
	Hash    string       `json:"hash"`
	Mode    string       `json:"mode"`
	Dir     string       `json:"dir"`
	Sets    []string     `json:"sets,omitempty"`
	Updated time.Time    `json:"updated"`
	Points  []PointState `json:"points"`
}

// PointState is a point and what became of it.
type PointState struct {
	Point
	State string     `json:"state"`
	Start *time.Time `json:"start,omitempty"`
	End   *time.Time `json:"end,omitempty"`
	// Seconds is the duration of the last attempt.
	Seconds float64 `json:"seconds,omitempty"`
	// ExitCode is the last attempt's exit code.
	ExitCode *int `json:"exit_code,omitempty"`
	// Error is the tail of a failed attempt's output.
	Error string `json:"error,omitempty"`
	// Attempts counts the runs of this point.
	Attempts int `json:"attempts,omitempty"`
}

// newManifest returns a manifest of s with every point pending.
func newManifest(s *Sweep) *Manifest {
	m := &Manifest{Recipe: s.Recipe, Hash: s.Hash, Mode: s.Mode, Dir: s.Dir, Sets: s.Sets}
	for _, p := range s.Points {
		m.Points = append(m.Points, PointState{Point: p, State: StatePending})
	}
	return m
}

// ReadManifest reads dir/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	return &m, nil
}

// write replaces dir/manifest.json atomically.
func (m *Manifest) write() error {
	m.Updated = time.Now().UTC().Truncate(time.Millisecond)
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return writeAtomic(filepath.Join(m.Dir, ManifestFile), append(raw, '\n'))
}

// createOnce writes dir/manifest.json unless it exists; concurrent
// writers (cluster jobs) leave exactly one.
func (m *Manifest) createOnce() error {
	path := filepath.Join(m.Dir, ManifestFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	m.Updated = time.Now().UTC().Truncate(time.Millisecond)
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	tmp, err := tempFile(path, append(raw, '\n'))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("manifest: %w", err)
	}
	return nil
}

// writeAtomic writes data to path through a temporary file and a rename,
// so readers never see a partial file.
func writeAtomic(path string, data []byte) error {
	tmp, err := tempFile(path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func tempFile(path string, data []byte) (name string, err error) {
	f, err := atomicfs.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return f.Name(), nil
}
