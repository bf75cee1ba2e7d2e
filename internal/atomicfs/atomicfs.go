// Package atomicfs writes files and folders so that a reader never sees a
// partial result: content goes to a temporary name beside the target and is
// renamed into place only once complete.
package atomicfs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile writes path through fn into a temporary file in the same
// folder, syncs and closes it (checking every error), then renames it into
// place. On any error the temporary file is removed and path is untouched.
func WriteFile(path string, fn func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = fn(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.Rename(f.Name(), path)
}

// TempDir creates an empty temporary folder beside dir, where a complete
// replacement for dir can be assembled before ReplaceDir.
func TempDir(dir string) (string, error) {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
}

// ReplaceDir moves the complete folder tmp to dir. An existing dir is moved
// aside first and removed only after the new one is in place (and put back
// if the rename fails).
func ReplaceDir(tmp, dir string) error {
	if _, err := os.Stat(dir); err != nil {
		return os.Rename(tmp, dir)
	}
	old := dir + ".old"
	os.RemoveAll(old)
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.Rename(old, dir)
		return err
	}
	return os.RemoveAll(old)
}
