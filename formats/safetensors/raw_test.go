package safetensors

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

func TestRawInto(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	big := make([]byte, rawSplit+2*1234) // read in parallel pieces
	small := make([]byte, 2*77)
	for _, b := range [][]byte{big, small} {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	}
	tensors := []tensor.Tensor{
		{Name: "small", DType: tensor.BF16, Shape: []int{7, 11}, Data: small},
		{Name: "big", DType: tensor.F16, Shape: []int{len(big) / 2}, Data: big},
	}
	p := filepath.Join(t.TempDir(), "m.safetensors")
	if err := WriteFile(p, tensors, nil); err != nil {
		t.Fatal(err)
	}
	m, err := OpenModel(p)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, want := range tensors {
		got := make([]byte, len(want.Data))
		if err := m.RawInto(want.Name, got); err != nil {
			t.Fatalf("%s: %v", want.Name, err)
		}
		if !bytes.Equal(got, want.Data) {
			t.Errorf("%s: bytes differ from those written", want.Name)
		}
	}
	// A file parsed in memory reads from its bytes.
	f, err := m.Shard("small")
	if err != nil {
		t.Fatal(err)
	}
	mem, err := Parse(f.buf)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(small))
	if err := mem.RawInto("small", got); err != nil || !bytes.Equal(got, small) {
		t.Errorf("parsed file: %v, equal %v", err, bytes.Equal(got, small))
	}

	dst := bytes.Repeat([]byte{0xAA}, len(small)+2)
	if err := m.RawInto("small", dst); err == nil {
		t.Error("no error for a destination of the wrong length")
	}
	if !bytes.Equal(dst, bytes.Repeat([]byte{0xAA}, len(small)+2)) {
		t.Error("a refused destination was written")
	}
	if err := m.RawInto("nope", got); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown tensor: %v, want ErrNotFound", err)
	}
	m.Close()
	if err := f.RawInto("small", got); !errors.Is(err, ErrClosed) {
		t.Errorf("closed file: %v, want ErrClosed", err)
	}
}
