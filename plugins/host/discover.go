// Package host runs surgeon plugins: it discovers plugin binaries, checks
// them against a lock file of sha256 checksums (enforced by go-plugin's
// SecureConfig), starts one managed process per plugin with automatic mutual
// TLS, and turns a crash or a hang into a clear error that names the plugin
// and shows the end of its stderr.
package host

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Prefix is the file-name prefix of plugin binaries: surgeon-plugin-NAME.
const Prefix = "surgeon-plugin-"

// PathEnv lists extra plugin directories, separated by the OS list separator.
const PathEnv = "SURGEON_PLUGIN_PATH"

// LockEnv overrides the lock file location.
const LockEnv = "SURGEON_PLUGIN_LOCK"

// Binary is a discovered plugin executable.
type Binary struct {
	Name string // NAME of surgeon-plugin-NAME
	Path string // absolute path
}

// DefaultDirs returns the plugin directories in search order: those on
// SURGEON_PLUGIN_PATH, then "plugins" next to the surgeon executable
// (bin/plugins when surgeon is bin/surgeon).
func DefaultDirs() []string {
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv(PathEnv)) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), "plugins"))
	}
	return dirs
}

// DefaultLock returns the lock file path: SURGEON_PLUGIN_LOCK, else
// plugins.lock in the last default directory (the one next to surgeon).
func DefaultLock(dirs []string) string {
	if p := os.Getenv(LockEnv); p != "" {
		return p
	}
	if len(dirs) == 0 {
		return "plugins.lock"
	}
	return filepath.Join(dirs[len(dirs)-1], "plugins.lock")
}

// Discover lists plugin binaries in dirs. When two directories hold a
// plugin of the same name the earlier one wins. Missing directories are
// skipped.
func Discover(dirs []string) ([]Binary, error) {
	seen := map[string]bool{}
	var out []Binary
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("plugin directory %s: %w", d, err)
		}
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), Prefix)
			if !ok || name == "" || e.IsDir() || seen[name] {
				continue
			}
			p, err := filepath.Abs(filepath.Join(d, e.Name()))
			if err != nil {
				return nil, err
			}
			info, err := os.Stat(p)
			if err != nil || info.Mode()&0o111 == 0 {
				continue
			}
			seen[name] = true
			out = append(out, Binary{Name: name, Path: p})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
