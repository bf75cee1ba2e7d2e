package hub

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLocal(t *testing.T) {
	s := newServer(t, nil)
	o := options(t, s)
	o.Mirror = t.TempDir()
	file := filepath.Join(o.Mirror, "owner", "repo", "model.gguf")
	folder := filepath.Join(o.Mirror, "owner", "repo", "adapters", "lora")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("GGUF"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, src, want string
		err             error
	}{
		{"local path unchanged", "some/dir/model.gguf", "some/dir/model.gguf", nil},
		{"local absolute path unchanged", folder, folder, nil},
		{"mirror file", "hf://owner/repo/model.gguf", file, nil},
		{"mirror folder", "hf://owner/repo/adapters/lora", folder, nil},
		{"mirror folder at a revision", "hf://owner/repo@v1/adapters/lora", folder, nil},
		{"downloaded file", "hf://owner/repo/dir/model.bin", cachePath(o, "main"), nil},
		{"malformed", "hf://owner", "", ErrBadURI},
		{"parent element", "hf://owner/repo/../x", "", ErrBadURI},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Local(context.Background(), c.src, o)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("Local(%q) = %q, %v; want %v", c.src, got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("Local(%q) = %q, %v; want %q", c.src, got, err, c.want)
			}
		})
	}
}
