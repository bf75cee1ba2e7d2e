//go:build unix

package apply

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/surgeon-ml/surgeon/internal/runlock"
	"github.com/surgeon-ml/surgeon/surgery/recipe"
)

// A run on an output folder that another holder has locked fails before
// touching the folder or its checkpoint, naming the folder and the PID.
func TestExecuteRefusesBusyOutput(t *testing.T) {
	needFixtures(t)
	out := filepath.Join(t.TempDir(), "out")
	path := writeRecipe(t, smallRecipe("\n[output]\ndir = \""+out+"\"\n"))
	r, err := prepare(t, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Another Lock on the file: to flock, as good as another process.
	other, err := runlock.Acquire(runlock.PathFor(out))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	_, err = r.Execute(context.Background(), nil)
	if err == nil {
		t.Fatal("ran on a busy folder")
	}
	for _, want := range []string{out, "in use", "process " + strconv.Itoa(os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	for _, p := range []string{out, out + ".checkpoint"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was created by the refused run", p)
		}
	}
}

// LockOutput locks DIR.lock beside the output folder (output.dir
// resolved against the recipe, else runs/<recipe name>), excludes a second
// lock on the folder in this process too, and Release frees it and removes
// the lock file.
func TestLockOutput(t *testing.T) {
	tmp := t.TempDir()
	abs := filepath.Join(tmp, "elsewhere", "out")
	for _, tc := range []struct {
		name, outputDir, want string
	}{
		{"absolute", abs, abs},
		{"relative to the recipe", "runs/x", filepath.Join(tmp, "runs", "x")},
		{"default", "", filepath.Join(tmp, "runs", "r")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recipe.Recipe{Path: filepath.Join(tmp, "r.toml"), Dir: tmp, Output: recipe.Output{Dir: tc.outputDir}}
			l, err := LockOutput(rec)
			if err != nil {
				t.Fatal(err)
			}
			if l.Dir() != tc.want {
				t.Fatalf("Dir() = %s, want %s", l.Dir(), tc.want)
			}
			raw, err := os.ReadFile(tc.want + ".lock")
			if err != nil || strings.TrimSpace(string(raw)) != strconv.Itoa(os.Getpid()) {
				t.Fatalf("lock file: %q, %v", raw, err)
			}
			if _, err := LockOutput(rec); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("second LockOutput: %v", err)
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(tc.want + ".lock"); err == nil {
				t.Fatal("lock file left after Release")
			}
			if l, err = LockOutput(rec); err != nil {
				t.Fatalf("after Release: %v", err)
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The run folder and what is in it are created 0777/0666 masked by the
// umask: readable by others under 022, private under 077. The caller's
// lock (LockOutput before Prepare, as `surgeon apply` does) is used by
// Execute. The test changes the process umask: not parallel.
func TestRunFolderModesFollowUmask(t *testing.T) {
	needFixtures(t)
	for _, tc := range []struct {
		umask     int
		dir, file string
	}{
		{0o022, "drwxr-xr-x", "-rw-r--r--"},
		{0o077, "drwx------", "-rw-------"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			old := syscall.Umask(tc.umask)
			defer syscall.Umask(old)
			out := filepath.Join(t.TempDir(), "runs", "out")
			path := writeRecipe(t, smallRecipe("\n[output]\ndir = \""+out+"\"\n"))
			rec, err := recipe.Load(path, []string{"train.max_steps=2"})
			if err != nil {
				t.Fatal(err)
			}
			l, err := LockOutput(rec)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			r, err := prepare(t, path, "train.max_steps=2")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := r.Execute(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			n := 0
			err = filepath.WalkDir(filepath.Dir(out), func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if strings.HasSuffix(p, ".lock") {
					return nil // the caller's lock, released below
				}
				st, err := os.Stat(p)
				if err != nil {
					return err
				}
				want := tc.file
				if d.IsDir() {
					want = tc.dir
				}
				if got := st.Mode().String(); got != want {
					t.Errorf("%s is %s, want %s", p, got, want)
				}
				n++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"metrics.csv", "report.json", "adapter"} {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Errorf("output: %v", err)
				}
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
			if es, _ := os.ReadDir(filepath.Dir(out)); len(es) != 1 {
				t.Errorf("runs/ holds %v, want only out (no checkpoint, no lock)", es)
			}
		})
	}
}
