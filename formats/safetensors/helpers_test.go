package safetensors

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

// fixturesDir returns ../shared/fixtures/sub relative to the repository root
// (found by walking up to go.mod from the test's working directory), or
// skips the test when it is absent.
func fixturesDir(t testing.TB, sub string) string {
	t.Helper()
	root := ""
	if env := os.Getenv("SURGEON_FIXTURES"); env != "" {
		root = env
	} else {
		dir, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				t.Skip("fixtures: go.mod not found above the test directory")
			}
			dir = parent
		}
		root = filepath.Join(dir, "..", "shared", "fixtures")
	}
	p := filepath.Join(root, sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("fixtures folder %s is absent (set SURGEON_FIXTURES or check out shared/fixtures beside the repository): %v", p, err)
	}
	return p
}

// rawFile builds a safetensors file from a literal header and data section.
func rawFile(header string, data []byte) []byte {
	out := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(out, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

// writeTemp stores b in a new file under t.TempDir and returns its path.
func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// unsafeAddr returns the address of the first element of s.
func unsafeAddr(s []float32) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(s))) }
