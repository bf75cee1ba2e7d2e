package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/surgeon-ml/surgeon/internal/plugintest"
	"github.com/surgeon-ml/surgeon/plugins/host"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
)

var layer = rpc.Layer{Path: "model.layers.0.self_attn.q_proj", Kind: "linear", In: 8, Out: 8}

func TestDescribeAndFind(t *testing.T) {
	m := plugintest.Manager(t, host.Options{}, "lora", "ia3", "loha")
	l := m.Lock()
	if len(l.Plugins) != 3 {
		t.Fatalf("locked %v", l.Names())
	}
	for _, name := range []string{"lora", "dora", "lora-merged", "ia3", "loha"} {
		p, err := m.Find(context.Background(), rpc.KindAdapter, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := p.Plan(context.Background(), rpc.PlanRequest{Adapter: name, Layer: layer, Config: map[string]any{}}); err != nil {
			t.Fatalf("%s: plan: %v", name, err)
		}
	}
	if _, err := m.Find(context.Background(), rpc.KindAdapter, "vera"); err == nil || !strings.Contains(err.Error(), "lora") {
		t.Fatalf("unknown adapter: %v (should list the known ones)", err)
	}
	problems, err := m.Verify()
	if err != nil || len(problems) != 0 {
		t.Fatalf("verify: %v %v", problems, err)
	}
}

func TestTamperedBinaryRefused(t *testing.T) {
	m := plugintest.Manager(t, host.Options{}, "lora")
	bin := filepath.Join(m.Dirs()[0], host.Prefix+"lora")
	f, err := os.OpenFile(bin, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("tampered"))
	f.Close()
	m2, err := host.New(host.Options{Dirs: m.Dirs(), LockPath: m.LockPath()})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	_, err = m2.Plugin(context.Background(), "lora")
	if !errors.Is(err, host.ErrChecksum) || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("tampered plugin: %v", err)
	}
	problems, _ := m2.Verify()
	if len(problems) != 1 || !strings.Contains(problems[0], "checksum") {
		t.Fatalf("verify: %v", problems)
	}
	// A binary that is not locked at all is refused too.
	os.WriteFile(m.LockPath(), []byte(`{"version":1,"plugins":{}}`), 0o644)
	m3, _ := host.New(host.Options{Dirs: m.Dirs(), LockPath: m.LockPath()})
	defer m3.Close()
	if _, err := m3.Plugin(context.Background(), "lora"); !errors.Is(err, host.ErrNotLocked) {
		t.Fatalf("unlocked plugin: %v", err)
	}
}

func TestCrashAndHang(t *testing.T) {
	m := plugintest.Manager(t, host.Options{CallTimeout: 2 * time.Second}, "crashy")
	ctx := context.Background()
	cases := []struct {
		mode string
		want []string
	}{
		{"panic", []string{"crashy", "exited unexpectedly", "deliberate panic"}},
		{"exit", []string{"crashy", "exited unexpectedly", "exiting with status 3"}},
		{"hang", []string{"crashy", "deadline"}},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			p, err := m.Plugin(ctx, "crashy")
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Plan(ctx, rpc.PlanRequest{Adapter: "crashy", Layer: layer, Config: map[string]any{"mode": c.mode}})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			p.Kill()
		})
	}
	t.Run("killed mid-call", func(t *testing.T) {
		p, err := m.Plugin(ctx, "crashy")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := p.Plan(ctx, rpc.PlanRequest{Adapter: "crashy", Layer: layer, Config: map[string]any{"mode": "hang"}})
			done <- err
		}()
		time.Sleep(300 * time.Millisecond)
		p.Kill()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "crashy") || !errors.Is(err, rpc.ErrPluginExited) {
				t.Fatalf("killed plugin: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("call did not return after the plugin was killed")
		}
		// The manager restarts a plugin that died.
		p2, err := m.Plugin(ctx, "crashy")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p2.Plan(ctx, rpc.PlanRequest{Adapter: "crashy", Layer: layer, Config: map[string]any{}}); err != nil {
			t.Fatalf("restarted plugin: %v", err)
		}
	})
}

// BenchmarkStartup measures starting a plugin process (checksum, handshake,
// mTLS, Describe) and one Plan round trip.
func BenchmarkStartup(b *testing.B) {
	m := plugintest.Manager(b, host.Options{}, "lora")
	ctx := context.Background()
	b.Run("start+describe", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			p, err := m.Plugin(ctx, "lora")
			if err != nil {
				b.Fatal(err)
			}
			p.Kill()
		}
	})
	b.Run("plan", func(b *testing.B) {
		p, err := m.Plugin(ctx, "lora")
		if err != nil {
			b.Fatal(err)
		}
		req := rpc.PlanRequest{Adapter: "lora", Layer: layer, Config: map[string]any{"r": 8}}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := p.Plan(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestMain(m *testing.M) {
	code := m.Run()
	plugintest.Cleanup()
	os.Exit(code)
}
