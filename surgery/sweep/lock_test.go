package sweep

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/surgeon-ml/surgeon/internal/runlock"
)

// RunPoint on a point whose run folder is locked (another job running the
// same point) fails at once, naming the folder and the holder's PID, and
// runs nothing; once the lock is gone the point runs.
func TestRunPointRefusesBusyPoint(t *testing.T) {
	s, err := loadSweep(t, runTable)
	if err != nil {
		t.Fatal(err)
	}
	opts, log := fakeEnv(t)
	dir := s.PointDir(s.Points[0].Name)
	// Another Lock on the file: to flock, as good as another process.
	other, err := runlock.Acquire(runlock.PathFor(dir))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = RunPoint(context.Background(), s, 0, opts)
	if err == nil {
		t.Fatal("ran a busy point")
	}
	for _, want := range []string{dir, "process " + strconv.Itoa(os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refused after %s, want at once", d)
	}
	if got := calls(t, log); len(got) != 0 {
		t.Fatalf("ran %v on a busy point", got)
	}
	if err := other.Release(); err != nil {
		t.Fatal(err)
	}
	if p, err := RunPoint(context.Background(), s, 0, opts); err != nil || p.State != StateDone {
		t.Fatalf("after the lock was released: %v %+v", err, p)
	}
}
