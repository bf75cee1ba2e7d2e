//go:build unix

package atomicfs

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Folders and files written by atomicfs get DirPerm and FilePerm masked by
// the umask, not the private modes of os.MkdirTemp and os.CreateTemp.
// The test changes the process umask, so it must not run in parallel.
func TestModesFollowUmask(t *testing.T) {
	for _, tc := range []struct {
		umask         int
		dir, file     fs.FileMode
		dirLS, fileLS string
	}{
		{0o022, 0o755, 0o644, "drwxr-xr-x", "-rw-r--r--"},
		{0o077, 0o700, 0o600, "drwx------", "-rw-------"},
		{0o002, 0o775, 0o664, "drwxrwxr-x", "-rw-rw-r--"},
	} {
		t.Run(tc.dirLS, func(t *testing.T) {
			old := syscall.Umask(tc.umask)
			defer syscall.Umask(old)
			root := t.TempDir()
			out := filepath.Join(root, "runs", "out")
			tmp, err := TempDir(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteFile(filepath.Join(tmp, "report.json"), func(w io.Writer) error {
				_, err := w.Write([]byte("{}\n"))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if err := ReplaceDir(tmp, out); err != nil {
				t.Fatal(err)
			}
			f, err := CreateTemp(root, "x-*.tmp")
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			d, err := MkdirTemp(root, "d-*")
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				path string
				want fs.FileMode
				ls   string
			}{
				{filepath.Join(root, "runs"), fs.ModeDir | tc.dir, tc.dirLS},
				{out, fs.ModeDir | tc.dir, tc.dirLS},
				{filepath.Join(out, "report.json"), tc.file, tc.fileLS},
				{f.Name(), tc.file, tc.fileLS},
				{d, fs.ModeDir | tc.dir, tc.dirLS},
			} {
				st, err := os.Stat(c.path)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode() != c.want || st.Mode().String() != c.ls {
					t.Errorf("umask %03o: %s is %s, want %s", tc.umask, c.path, st.Mode(), c.ls)
				}
			}
		})
	}
}

func TestTempNames(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		pattern, prefix, suffix string
		wantErr                 bool
	}{
		{".out.tmp-*", ".out.tmp-", "", false},
		{"a*b*.tmp", "a*b", ".tmp", false},
		{"plain", "plain", "", false},
		{"bad/*", "", "", true},
	} {
		p, err := MkdirTemp(dir, tc.pattern)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%q: no error", tc.pattern)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		base := filepath.Base(p)
		if filepath.Dir(p) != dir || len(base) <= len(tc.prefix+tc.suffix) ||
			base[:len(tc.prefix)] != tc.prefix || base[len(base)-len(tc.suffix):] != tc.suffix {
			t.Errorf("%q: got %s", tc.pattern, p)
		}
		q, err := MkdirTemp(dir, tc.pattern)
		if err != nil || q == p {
			t.Errorf("%q: second name %s (%v), first %s", tc.pattern, q, err, p)
		}
	}
}
