//go:build unix

package runlock

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary a lock holder (see TestMain): it takes
// the lock at the given path, prints "locked", and waits until killed or
// its standard input closes.
const helperEnv = "RUNLOCK_TEST_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		l, err := Acquire(path)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
		l.Release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holder starts a helper process holding the lock at path.
func holder(t *testing.T, path string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	return cmd, stdin
}

func TestSecondAcquireFailsNamingHolder(t *testing.T) {
	path := PathFor(filepath.Join(t.TempDir(), "runs", "out"))
	if !strings.HasSuffix(path, filepath.Join("runs", "out.lock")) {
		t.Fatalf("PathFor: %s", path)
	}
	cmd, stdin := holder(t, path)
	pid := cmd.Process.Pid
	start := time.Now()
	l, err := Acquire(path)
	if err == nil {
		l.Release()
		t.Fatal("acquired a held lock")
	}
	var busy *BusyError
	if !errors.As(err, &busy) || !errors.Is(err, ErrBusy) {
		t.Fatalf("error %v (%T), want a *BusyError", err, err)
	}
	if busy.PID != pid || busy.Path != path || !strings.Contains(err.Error(), strconv.Itoa(pid)) {
		t.Fatalf("%v (pid %d), want holder %d", err, busy.PID, pid)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refused after %s, want at once", d)
	}
	// The holder releases cleanly: the file goes and the lock is free.
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file left after release: %v", err)
	}
	if l, err = Acquire(path); err != nil {
		t.Fatal(err)
	}
	l.Release()
}

// A lock whose holder was killed (SIGKILL: no cleanup at all) does not
// block: its file is still there, but the kernel dropped the flock.
func TestLockOfKilledHolderIsFree(t *testing.T) {
	path := PathFor(filepath.Join(t.TempDir(), "out"))
	cmd, _ := holder(t, path)
	if _, err := Acquire(path); !errors.Is(err, ErrBusy) {
		t.Fatalf("want busy, got %v", err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the killed holder's lock file should still exist: %v", err)
	}
	l, err := Acquire(path)
	if err != nil {
		t.Fatalf("lock of a killed holder: %v", err)
	}
	defer l.Release()
	raw, _ := os.ReadFile(path)
	if got := strings.TrimSpace(string(raw)); got != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file holds %q, want this process's PID %d", got, os.Getpid())
	}
}

func TestAcquireInProcess(t *testing.T) {
	path := PathFor(filepath.Join(t.TempDir(), "out"))
	a, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	// Another Lock of the same process is refused too, naming this PID.
	var busy *BusyError
	if _, err := Acquire(path); !errors.As(err, &busy) || busy.PID != os.Getpid() {
		t.Fatalf("second in-process Acquire: %v", err)
	}
	if a.Path() != path {
		t.Fatalf("Path() = %s", a.Path())
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	b, err := Acquire(path)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	b.Release()
}

// A process that opened the lock file before its holder removed it and
// unlocked must not keep a lock on the removed file: Acquire starts over
// with the file now at the path.
func TestAcquireSkipsReplacedFile(t *testing.T) {
	path := PathFor(filepath.Join(t.TempDir(), "out"))
	stale, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if same, err := samePath(stale, path); err != nil || same {
		t.Fatalf("samePath of a removed file: %v, %v", same, err)
	}
	l, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if same, err := samePath(l.f, path); err != nil || !same {
		t.Fatalf("the lock is not on the file at %s: %v, %v", path, same, err)
	}
}

func TestBusyErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		err  *BusyError
		want string
	}{
		{&BusyError{Path: "runs/x.lock", PID: 42}, "runs/x.lock is held by process 42"},
		{&BusyError{Path: "runs/x.lock"}, "runs/x.lock is held by another process"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
