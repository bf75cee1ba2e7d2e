//go:build unix

package safetensors

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Written files get 0666 (or Options.Perm) masked by the umask, like
// os.Create's. The test changes the process umask: not parallel.
func TestWrittenModesFollowUmask(t *testing.T) {
	ts := testTensors(3)
	for _, tc := range []struct {
		name  string
		umask int
		perm  os.FileMode // Options.Perm; 0 = default
		want  os.FileMode
	}{
		{"umask 022", 0o022, 0, 0o644},
		{"umask 077", 0o077, 0, 0o600},
		{"umask 002", 0o002, 0, 0o664},
		{"perm 0640, umask 022", 0o022, 0o640, 0o640},
		{"perm 0666, umask 077", 0o077, 0o666, 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := syscall.Umask(tc.umask)
			defer syscall.Umask(old)
			dir := t.TempDir()
			var files []string
			if tc.perm == 0 {
				// Sharded: shards and the index.
				if err := WriteSharded(dir, "model", ts, nil, 50); err != nil {
					t.Fatal(err)
				}
				files = dirEntries(t, dir)
			} else {
				p := filepath.Join(dir, "x.safetensors")
				w, err := Create(p, []Descriptor{{Name: ts[0].Name, DType: ts[0].DType, Shape: ts[0].Shape}}, &Options{Perm: tc.perm})
				if err != nil {
					t.Fatal(err)
				}
				if err := w.WriteTensor(ts[0]); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				files = []string{"x.safetensors"}
			}
			if len(files) < 2 && tc.perm == 0 {
				t.Fatalf("expected shards and an index, got %q", files)
			}
			for _, f := range files {
				if got := fileMode(t, filepath.Join(dir, f)); got != tc.want {
					t.Errorf("%s: mode %v, want %v", f, got, tc.want)
				}
			}
		})
	}
}
