package gguf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadQuantizedInput checks that malformed files with quantized tensors
// are refused with one line naming the file and the tensor, never a panic.
func TestBadQuantizedInput(t *testing.T) {
	q4k := func(name string, rows uint64) testTensor {
		return testTensor{name: name, dims: []uint64{256, rows}, typ: TypeQ4_K, data: make([]byte, 144*rows)}
	}
	truncated := testFile{tensors: []testTensor{q4k("blk.0.ffn_up.weight", 4)}}.bytes()
	truncated = truncated[:len(truncated)-100]
	zero := uint64(0)
	eight := uint64(8)
	cases := []struct {
		name   string
		data   []byte
		tensor string
		sub    string
		is     error
	}{
		{"truncated", truncated, "blk.0.ffn_up.weight", "lies past the end", ErrMalformed},
		{"overlap", testFile{tensors: []testTensor{
			{name: "a.weight", dims: []uint64{32, 2}, typ: TypeQ8_0, data: make([]byte, 68)},
			{name: "b.weight", dims: []uint64{32, 2}, typ: TypeQ8_0, data: make([]byte, 68), offset: &zero},
		}}.bytes(), "b.weight", "overlap", ErrMalformed},
		{"blocks do not divide", testFile{tensors: []testTensor{
			{name: "odd.weight", dims: []uint64{40, 2}, typ: TypeQ4_0, data: make([]byte, 36)},
		}}.bytes(), "odd.weight", "innermost dimension 40 is not a multiple of the Q4_0 block size 32", ErrMalformed},
		{"k-quant blocks do not divide", testFile{tensors: []testTensor{
			{name: "k.weight", dims: []uint64{128, 2}, typ: TypeQ6_K, data: make([]byte, 210)},
		}}.bytes(), "k.weight", "not a multiple of the Q6_K block size 256", ErrMalformed},
		{"bad alignment", testFile{tensors: []testTensor{
			{name: "x.weight", dims: []uint64{32}, typ: TypeQ8_0, data: make([]byte, 34)},
			{name: "y.weight", dims: []uint64{32}, typ: TypeQ8_0, data: make([]byte, 34), offset: &eight},
		}}.bytes(), "y.weight", "offset 8 is not a multiple of the alignment 32", ErrMalformed},
		{"unknown type", testFile{tensors: []testTensor{
			{name: "u.weight", dims: []uint64{32}, typ: GGMLType(99), data: make([]byte, 34)},
		}}.bytes(), "u.weight", "unknown ggml type 99 (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS)", ErrMalformed},
		{"removed type", testFile{tensors: []testTensor{
			{name: "r.weight", dims: []uint64{32}, typ: GGMLType(31), data: make([]byte, 18)},
		}}.bytes(), "r.weight", "(Q4_0_4_4) has been removed from ggml (supported: F32,", ErrMalformed},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".gguf")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatal("opened")
			}
			checkOneLine(t, err, path, c.tensor, c.sub)
			if !errors.Is(err, c.is) {
				t.Fatalf("%v does not wrap %v", err, c.is)
			}
		})
	}

	// A type ggml can size but surgeon cannot decode opens (inspect lists
	// it) and fails when read.
	t.Run("not dequantizable", func(t *testing.T) {
		path := filepath.Join(dir, "iq2.gguf")
		data := testFile{tensors: []testTensor{{name: "iq.weight", dims: []uint64{256}, typ: TypeIQ2_XXS, data: make([]byte, 66)}}}.bytes()
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_, _, err = f.Float32("iq.weight")
		checkOneLine(t, err, path, "iq.weight", "ggml type IQ2_XXS cannot be dequantized (supported: F32, F16, BF16, Q4_0")
		if !errors.Is(err, ErrUnsupportedType) {
			t.Fatalf("%v does not wrap ErrUnsupportedType", err)
		}
	})
}

func checkOneLine(t *testing.T, err error, path, tensor, sub string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if !strings.HasPrefix(msg, path+": ") {
		t.Errorf("error does not start with the file: %q", msg)
	}
	if !strings.Contains(msg, `"`+tensor+`"`) {
		t.Errorf("error does not name tensor %q: %q", tensor, msg)
	}
	if !strings.Contains(msg, sub) {
		t.Errorf("error %q does not contain %q", msg, sub)
	}
}
