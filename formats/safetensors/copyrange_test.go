package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// CopyRange copies a tensor's bytes file to file into a new file, mixed
// with ordinary writes, and refuses to run past the current tensor.
func TestCopyRange(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.safetensors")
	a := tensor.Tensor{Name: "a", DType: tensor.BF16, Shape: []int{3, 5}, Data: bytes.Repeat([]byte{1, 2, 3}, 10)}
	b := tensor.Tensor{Name: "b", DType: tensor.F32, Shape: []int{4}, Data: []byte("0123456789abcdef")}
	if err := WriteFile(src, []tensor.Tensor{a, b}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fh, off, n, ok := f.Section("a")
	if !ok || n != 30 {
		t.Fatalf("Section: %v %d %d", ok, off, n)
	}
	dst := filepath.Join(dir, "dst.safetensors")
	w, err := Create(dst, []Descriptor{{"b", tensor.F32, []int{4}}, {"a", tensor.BF16, []int{3, 5}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b.Data[:5]); err != nil {
		t.Fatal(err)
	}
	if err := w.CopyRange(fh, off, n); err == nil || !strings.Contains(err.Error(), "past the end") {
		t.Fatalf("copy past the current tensor: %v", err)
	}
	w.Abort()
	w, err = Create(dst, []Descriptor{{"b", tensor.F32, []int{4}}, {"a", tensor.BF16, []int{3, 5}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b.Data); err != nil {
		t.Fatal(err)
	}
	if err := w.CopyRange(fh, off, n); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, want := range []tensor.Tensor{a, b} {
		got, err := g.Tensor(want.Name)
		if err != nil || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("%s: %v %q", want.Name, err, got.Data)
		}
	}
	if _, err := os.Stat(dst); err != nil {
		t.Fatal(err)
	}
}
