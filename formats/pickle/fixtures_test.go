package pickle

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
)

// robertaNames lists the tensors of the LoRA paper's RoBERTa-base MNLI
// checkpoint in state_dict order.
func robertaNames() []string {
	var names []string
	for l := range 12 {
		for _, m := range []string{"query", "value"} {
			for _, ab := range []string{"A", "B"} {
				names = append(names, fmt.Sprintf("roberta.encoder.layer.%d.attention.self.%s.lora_%s", l, m, ab))
			}
		}
	}
	return append(names, "classifier.dense.weight", "classifier.dense.bias",
		"classifier.out_proj.weight", "classifier.out_proj.bias")
}

// TestFixtures reads real torch.save files. Expected values of the candle
// pickles come from candle-core/tests/pth_tests.rs: the Fortran-ordered
// tensor must read back as 1..24 in row-major order.
func TestFixtures(t *testing.T) {
	type want struct {
		dtype  tensor.DType
		shape  []int
		values []float64 // nil: not checked
	}
	cases := []struct {
		name  string
		file  string
		names []string
		want  map[string]want
	}{
		{
			name:  "test.pt",
			file:  "candle-fixtures/test.pt",
			names: []string{"test"},
			want:  map[string]want{"test": {tensor.I64, []int{2, 4}, seq(1, 8)}},
		},
		{
			name:  "test_with_key.pt",
			file:  "candle-fixtures/test_with_key.pt",
			names: []string{"model_state_dict.test"},
			want:  map[string]want{"model_state_dict.test": {tensor.I64, []int{2, 4}, seq(1, 8)}},
		},
		{
			name:  "fortran_tensor_3d.pth",
			file:  "candle-fixtures/fortran_tensor_3d.pth",
			names: []string{"tensor_fortran"},
			want:  map[string]want{"tensor_fortran": {tensor.I64, []int{2, 3, 4}, seq(1, 24)}},
		},
		{
			name:  "roberta_base_lora_mnli.bin",
			file:  "microsoft-lora-roberta-mnli/roberta_base_lora_mnli.bin",
			names: robertaNames(),
			want: map[string]want{
				"roberta.encoder.layer.0.attention.self.query.lora_A":  {tensor.F32, []int{8, 768}, nil},
				"roberta.encoder.layer.11.attention.self.value.lora_B": {tensor.F32, []int{768, 8}, nil},
				"classifier.dense.weight":                              {tensor.F32, []int{768, 768}, nil},
				"classifier.dense.bias":                                {tensor.F32, []int{768}, nil},
				"classifier.out_proj.weight":                           {tensor.F32, []int{3, 768}, nil},
				"classifier.out_proj.bias": {tensor.F32, []int{3}, []float64{
					float64(float32(-0.04712573438882828)), float64(float32(0.0525931641459465)), float64(float32(-0.012944169342517853))}},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Open(fixture(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := f.Names(); !slices.Equal(got, c.names) {
				t.Fatalf("names %q, want %q", got, c.names)
			}
			if f.Len() != len(c.names) || len(f.Skipped()) != 0 || f.Legacy() {
				t.Fatalf("Len %d, Skipped %q, Legacy %v", f.Len(), f.Skipped(), f.Legacy())
			}
			for _, name := range f.Names() {
				x, err := f.Tensor(name)
				if err != nil {
					t.Fatal(err)
				}
				if len(x.Data) != x.NumElements()*x.DType.Size() {
					t.Fatalf("%s: %d bytes for %s%v", name, len(x.Data), x.DType, x.Shape)
				}
				w, ok := c.want[name]
				if !ok {
					continue
				}
				if x.DType != w.dtype || !slices.Equal(x.Shape, w.shape) {
					t.Fatalf("%s: %s%v, want %s%v", name, x.DType, x.Shape, w.dtype, w.shape)
				}
				if w.values != nil && !slices.Equal(values(t, x), w.values) {
					t.Fatalf("%s: values %v, want %v", name, values(t, x), w.values)
				}
			}
		})
	}
}

// TestRobertaMatchesStorages checks every RoBERTa tensor (all contiguous,
// each with its own storage) against the raw bytes of its zip entry, and the
// LoRA rank against the paper's r=8.
func TestRobertaMatchesStorages(t *testing.T) {
	p := fixture(t, "microsoft-lora-roberta-mnli/roberta_base_lora_mnli.bin")
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zip.OpenReader(p)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for i, name := range f.Names() {
		x, err := f.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := zr.Open(fmt.Sprintf("archive/data/%d", i))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x.Data, raw) {
			t.Fatalf("%s differs from storage %d", name, i)
		}
		if filepath.Ext(name) == ".lora_A" && x.Shape[0] != 8 || filepath.Ext(name) == ".lora_B" && x.Shape[1] != 8 {
			t.Fatalf("%s: shape %v is not rank 8", name, x.Shape)
		}
	}
}

// TestToSafetensorsRoberta converts the RoBERTa checkpoint and reads it back
// with formats/safetensors: every tensor must be bit-identical.
func TestToSafetensorsRoberta(t *testing.T) {
	src := fixture(t, "microsoft-lora-roberta-mnli/roberta_base_lora_mnli.bin")
	dst := filepath.Join(t.TempDir(), "adapter.safetensors")
	if err := ToSafetensors(src, dst); err != nil {
		t.Fatal(err)
	}
	f, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sf, err := safetensors.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	if !slices.Equal(sf.Names(), f.Names()) {
		t.Fatalf("names %q, want %q", sf.Names(), f.Names())
	}
	if m := sf.Metadata(); m["format"] != "pt" || m["source"] != "roberta_base_lora_mnli.bin" || len(m) != 2 {
		t.Fatalf("metadata %v", m)
	}
	for _, name := range f.Names() {
		want, err := f.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sf.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("%s: round trip changed the tensor", name)
		}
	}
}
