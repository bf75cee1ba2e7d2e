// Package plugintest builds real plugin binaries for end-to-end tests and
// prepares a plugin directory with a lock file, so tests exercise the same
// discovery, checksum and process paths as the surgeon binary.
package plugintest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/surgeon-ml/surgeon/plugins/host"
)

// Sources maps plugin names to their main packages, relative to the module root.
var Sources = map[string]string{
	"lora":    "plugins/cmd/lora",
	"ia3":     "plugins/cmd/ia3",
	"loha":    "plugins/examples/loha",
	"crashy":  "plugins/internal/crashy",
	"convert": "plugins/cmd/convert",
}

// Root returns the module root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	mu    sync.Mutex
	built = map[string]string{} // name -> binary, once per test process
)

// binary builds a plugin once per test process.
func binary(t testing.TB, name string) string {
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	src, ok := Sources[name]
	if !ok {
		t.Fatalf("no plugin source for %q", name)
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("surgeon-plugintest-%d", os.Getpid()))
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, host.Prefix+name)
	cmd := exec.Command("go", "build", "-o", out, "./"+src)
	cmd.Dir = Root()
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building plugin %s: %v\n%s", name, err, msg)
	}
	built[name] = out
	return out
}

// Cleanup removes the binaries built by this process; call it from TestMain.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	os.RemoveAll(filepath.Join(os.TempDir(), fmt.Sprintf("surgeon-plugintest-%d", os.Getpid())))
}

// Build puts the named plugins, as surgeon-plugin-NAME, into a fresh
// directory and returns it.
func Build(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		data, err := os.ReadFile(binary(t, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, host.Prefix+n), data, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Manager builds the plugins, locks them and returns a manager over them.
// The manager is closed when the test ends.
func Manager(t testing.TB, opts host.Options, names ...string) *host.Manager {
	t.Helper()
	dir := Build(t, names...)
	opts.Dirs = []string{dir}
	opts.LockPath = filepath.Join(dir, "plugins.lock")
	m, err := host.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.LockAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// Env returns environment variables that point a surgeon process at the
// manager's plugins.
func Env(m *host.Manager) []string {
	return append(os.Environ(), host.PathEnv+"="+strings.Join(m.Dirs(), string(os.PathListSeparator)), host.LockEnv+"="+m.LockPath())
}
