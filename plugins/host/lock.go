package host

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/surgeon-ml/surgeon/internal/atomicfs"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
)

// Lock is the lock file: the trusted checksum of every plugin binary and
// what it provides.
type Lock struct {
	Version int                   `json:"version"`
	Plugins map[string]*LockEntry `json:"plugins"`
}

// LockEntry is one trusted plugin.
type LockEntry struct {
	Path       string          `json:"path"`
	SHA256     string          `json:"sha256"`
	Version    string          `json:"version"`
	Components []rpc.Component `json:"components"`
}

// ErrNotLocked is returned for a plugin binary missing from the lock file.
var ErrNotLocked = errors.New("plugin is not in the lock file")

// ErrChecksum is returned when a binary no longer matches its lock entry.
var ErrChecksum = errors.New("plugin binary does not match its locked checksum")

// ReadLock reads a lock file; a missing file is an empty lock.
func ReadLock(path string) (*Lock, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return &Lock{Version: 1, Plugins: map[string]*LockEntry{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var l Lock
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	if l.Version != 1 {
		return nil, fmt.Errorf("lock file %s: version %d not supported", path, l.Version)
	}
	if l.Plugins == nil {
		l.Plugins = map[string]*LockEntry{}
	}
	return &l, nil
}

// Write writes the lock atomically (temporary file, then rename).
func (l *Lock) Write(path string) (err error) {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), atomicfs.DirPerm); err != nil {
		return err
	}
	tmp, err := atomicfs.CreateTemp(filepath.Dir(path), ".plugins.lock-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Names returns the locked plugin names, sorted.
func (l *Lock) Names() []string {
	var out []string
	for n := range l.Plugins {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// FileSHA256 returns the hex sha256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
