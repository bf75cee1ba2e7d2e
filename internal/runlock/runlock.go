// Package runlock gives one process at a time the use of a folder, through
// an exclusive advisory lock (flock) on a lock file beside it. The lock
// file, not the folder, is locked because surgeon replaces output folders
// by rename. The holder's PID is written into the file so that a refused
// process can say who holds it. The kernel releases a flock when its
// holder exits, however it exits, so a killed run never leaves a lock
// that blocks the next one.
//
// On systems without flock (not unix) Acquire records the holder's PID
// but excludes no one.
package runlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrBusy is what a BusyError matches with errors.Is.
var ErrBusy = errors.New("locked by another process")

// BusyError reports a lock held by another process (or by another Lock of
// this process).
type BusyError struct {
	// Path is the lock file.
	Path string
	// PID is the holder's process id, 0 when it could not be read.
	PID int
}

func (e *BusyError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("%s is held by process %d", e.Path, e.PID)
	}
	return fmt.Sprintf("%s is held by another process", e.Path)
}

// Is makes errors.Is(err, ErrBusy) true for a *BusyError.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Lock is a held lock; Release gives it back.
type Lock struct {
	f    *os.File
	path string
}

// PathFor is the lock file of folder dir: dir.lock beside it.
func PathFor(dir string) string { return filepath.Clean(dir) + ".lock" }

// Acquire takes the exclusive lock on the file path (creating it, and its
// folder, with mode 0666 / 0777 masked by the umask) without waiting: when
// another process holds it, it returns a *BusyError naming that process.
// Two Acquire calls in one process exclude each other too.
func Acquire(path string) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// A holder removes the file before it unlocks, so the file this
	// process locked may be gone from path by the time it has the lock:
	// then it tries again with the file now at path.
	for range 100 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := lockFile(f); err != nil {
			if errors.Is(err, errWouldBlock) {
				pid := readPID(f)
				f.Close()
				return nil, &BusyError{Path: path, PID: pid}
			}
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if same, err := samePath(f, path); err != nil || !same {
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
			continue
		}
		if err := writePID(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return &Lock{f: f, path: path}, nil
	}
	return nil, fmt.Errorf("lock %s: the lock file keeps being replaced", path)
}

// Path is the lock file.
func (l *Lock) Path() string { return l.path }

// Release removes the lock file and releases the lock. It is safe to call
// more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Remove before unlocking: a process waiting on this file then sees it
	// is no longer at path and starts over (see Acquire).
	rmErr := os.Remove(l.path)
	if errors.Is(rmErr, os.ErrNotExist) {
		rmErr = nil
	}
	closeErr := l.f.Close()
	l.f = nil
	if err := errors.Join(rmErr, closeErr); err != nil {
		return fmt.Errorf("unlock %s: %w", l.path, err)
	}
	return nil
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// readPID reads the holder's PID from its lock file, waiting briefly when
// the holder has locked but not yet written it.
func readPID(f *os.File) int {
	buf := make([]byte, 32)
	for range 50 {
		n, _ := f.ReadAt(buf, 0)
		if s := strings.TrimSpace(string(buf[:n])); s != "" && buf[n-1] == '\n' {
			pid, err := strconv.Atoi(s)
			if err != nil {
				return 0
			}
			return pid
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0
}

// samePath reports whether f is still the file at path.
func samePath(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}
