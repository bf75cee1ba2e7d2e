// Package atomicfs writes files and folders so that a reader never sees a
// partial result: content goes to a temporary name beside the target and is
// renamed into place only once complete.
//
// Everything it creates asks for DirPerm (folders) or FilePerm (files) and
// lets the process umask decide the final mode, as os.Mkdir and os.Create
// do: under umask 022 a result is drwxr-xr-x / -rw-r--r--, under 077 it
// stays private. Its MkdirTemp and CreateTemp differ from the os ones only
// in that (those use 0700 and 0600, which a rename would carry into place).
package atomicfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Permissions surgeon asks for when it creates outputs; the umask masks
// them.
const (
	// DirPerm is the mode of created folders.
	DirPerm fs.FileMode = 0o777
	// FilePerm is the mode of created files.
	FilePerm fs.FileMode = 0o666
	// ExecPerm is the mode of created executables (scripts, plugins).
	ExecPerm fs.FileMode = 0o777
)

// WriteFile writes path through fn into a temporary file in the same
// folder, syncs and closes it (checking every error), then renames it into
// place. On any error the temporary file is removed and path is untouched.
func WriteFile(path string, fn func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, DirPerm); err != nil {
		return err
	}
	f, err := CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
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
	if err := os.MkdirAll(parent, DirPerm); err != nil {
		return "", err
	}
	return MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
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

// CreateTemp is os.CreateTemp with mode FilePerm (masked by the umask)
// instead of 0600: it creates a new file in dir named by pattern, whose
// last "*" is replaced by a random string, and opens it for reading and
// writing.
func CreateTemp(dir, pattern string) (*os.File, error) {
	return CreateTempPerm(dir, pattern, FilePerm)
}

// CreateTempPerm is CreateTemp with the mode perm (before the umask).
func CreateTempPerm(dir, pattern string, perm fs.FileMode) (*os.File, error) {
	var f *os.File
	err := tempName(dir, pattern, func(name string) (err error) {
		f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		return err
	})
	return f, err
}

// MkdirTemp is os.MkdirTemp with mode DirPerm (masked by the umask)
// instead of 0700: it creates a new folder in dir named by pattern, whose
// last "*" is replaced by a random string, and returns its path.
func MkdirTemp(dir, pattern string) (string, error) {
	var path string
	err := tempName(dir, pattern, func(name string) error {
		path = name
		return os.Mkdir(name, DirPerm)
	})
	return path, err
}

// tempName calls create with random names built from pattern until one
// does not exist yet.
func tempName(dir, pattern string, create func(name string) error) error {
	if dir == "" {
		dir = os.TempDir()
	}
	if strings.ContainsRune(pattern, os.PathSeparator) {
		return fmt.Errorf("temporary name pattern %q: contains a path separator", pattern)
	}
	prefix, suffix := pattern, ""
	if i := strings.LastIndexByte(pattern, '*'); i >= 0 {
		prefix, suffix = pattern[:i], pattern[i+1:]
	}
	var err error
	for range 10000 {
		name := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 10)+suffix)
		if err = create(name); !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return fmt.Errorf("temporary name in %s for %q: %w", dir, pattern, err)
}
