package safetensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// FuzzOpen feeds arbitrary bytes to Parse and, through a file, to Open. Both
// must agree, never panic, and every tensor of an accepted file must be
// readable; an accepted file must also survive a rewrite by the Writer.
// The seed corpus is in testdata/fuzz/FuzzOpen.
func FuzzOpen(f *testing.F) {
	f.Add(rawFile(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, []byte{0, 0x3c, 0, 0xc0}))
	f.Add(rawFile(`{}`, nil))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		pf, perr := Parse(data)
		of, oerr := openBytes(t, dir, data)
		if (perr == nil) != (oerr == nil) {
			t.Fatalf("Parse error %v but Open error %v", perr, oerr)
		}
		if perr != nil {
			if !errors.Is(perr, ErrInvalid) || !errors.Is(oerr, ErrInvalid) {
				t.Fatalf("errors do not wrap ErrInvalid: %v / %v", perr, oerr)
			}
			return
		}
		defer func() {
			if err := of.Close(); err != nil {
				t.Fatal(err)
			}
		}()
		if !slices.Equal(pf.Names(), of.Names()) {
			t.Fatalf("Parse and Open disagree on names")
		}
		var total int64
		var ts []tensor.Tensor
		writable := true
		for _, name := range pf.Names() {
			a, err := pf.Tensor(name)
			if err != nil {
				t.Fatal(err)
			}
			b, err := of.Tensor(name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Data, b.Data) {
				t.Fatalf("tensor %q: Parse and Open disagree", name)
			}
			total += int64(len(a.Data))
			ts = append(ts, a)
			if name == "" {
				writable = false // the Writer refuses empty names
			}
			if checkFloat32(a.DType) == nil {
				v, err := of.Float32(name)
				if err != nil {
					t.Fatalf("Float32(%q): %v", name, err)
				}
				// Rows read on their own are Float32's rows.
				if len(a.Shape) == 2 && a.Shape[0] > 0 && a.Shape[1] < 1<<16 {
					rows, cols := a.Shape[0], a.Shape[1]
					got := make([]float32, 2*cols)
					if err := of.RowsInto(name, []int{rows - 1, 0}, got); err != nil {
						t.Fatalf("RowsInto(%q): %v", name, err)
					}
					if !slices.Equal(bits(got[:cols]), bits(v[(rows-1)*cols:])) || !slices.Equal(bits(got[cols:]), bits(v[:cols])) {
						t.Fatalf("RowsInto(%q) differs from Float32", name)
					}
				}
			} else if _, err := of.Float32(name); err == nil {
				t.Fatalf("Float32(%q) of %s succeeded", name, a.DType)
			}
		}
		if total != int64(len(data))-pf.dataStart {
			t.Fatalf("tensors cover %d bytes of a %d-byte data section", total, int64(len(data))-pf.dataStart)
		}
		if !writable {
			return
		}
		var buf bytes.Buffer
		descs := make([]Descriptor, len(ts))
		for i, x := range ts {
			descs[i] = Descriptor{x.Name, x.DType, x.Shape}
		}
		w, err := NewWriter(&buf, descs, &Options{Metadata: pf.Metadata()})
		if err != nil {
			t.Fatalf("NewWriter on an accepted file: %v", err)
		}
		for _, x := range ts {
			if err := w.WriteTensor(x); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		g, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("rewritten file rejected: %v", err)
		}
		if !slices.Equal(g.Names(), pf.Names()) || !mapsEqual(g.Metadata(), pf.Metadata()) ||
			!bytes.Equal(g.buf[g.dataStart:], pf.buf[pf.dataStart:]) {
			t.Fatal("rewrite changed the file's content")
		}
	})
}

// openBytes stores data in a temporary file under dir and opens it.
func openBytes(t *testing.T, dir string, data []byte) (*File, error) {
	tmp, err := os.CreateTemp(dir, "fuzz-*.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	// The mapping outlives the directory entry.
	return Open(tmp.Name())
}

// TestFuzzSeedCorpus checks that the seed files named valid_* parse and
// those named invalid_* do not, so the corpus keeps covering both paths.
func TestFuzzSeedCorpus(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzOpen"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "valid_") && !strings.HasPrefix(name, "invalid_") {
			continue // crashers found by the fuzzer keep their hash names
		}
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzOpen", name))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
			if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
				t.Fatalf("not a one-value corpus file: %q", raw)
			}
			data, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse([]byte(data))
			if valid := strings.HasPrefix(name, "valid_"); valid != (err == nil) {
				t.Errorf("valid=%v but Parse error %v", valid, err)
			}
		})
	}
}
