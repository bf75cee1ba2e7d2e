package gpt2_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
)

const ref = "../testdata/reference"

func logits(t *testing.T, path string) []float32 {
	t.Helper()
	l, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	y, err := l.Model.Logits(model.NewBatch([][]int{{1, 5, 9, 17}}, 0))
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), ops.Data(y)...)
}

// A GPT-2 saved as a Hugging Face folder keeps Conv1D weights [in, out] and
// its logits; so does a spago native folder.
func TestSaveRoundTrip(t *testing.T) {
	src := filepath.Join(ref, "gpt2-untied-f16")
	want := logits(t, src)
	l, err := checkpoint.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hf := filepath.Join(t.TempDir(), "hf")
	if err := checkpoint.SaveHF(hf, l.Model, checkpoint.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.OpenModel(hf)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info("transformer.h.0.mlp.c_fc.weight")
	st.Close()
	if err != nil || !slices.Equal(info.Shape, []int{32, 80}) {
		t.Fatalf("saved c_fc weight %v %v, want [32 80]", info.Shape, err)
	}
	nat := filepath.Join(t.TempDir(), "native")
	if err := checkpoint.SaveNative(nat, l); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{hf, nat} {
		got := logits(t, dir)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: logits differ after saving", dir)
		}
	}
}

// A checkpoint that does not fit its config (n_inner) is refused, naming
// the tensor and both shapes.
func TestBadCheckpoint(t *testing.T) {
	l, err := checkpoint.Load(filepath.Join(ref, "gpt2-f32"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := l.Model.HFConfig()
	cfg["n_inner"] = 200
	dir := filepath.Join(t.TempDir(), "bad")
	if err := checkpoint.SaveHF(dir, l.Model, checkpoint.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, dir, cfg)
	_, err = checkpoint.Load(dir)
	if err == nil || !strings.Contains(err.Error(), "transformer.h.0.mlp.c_fc.weight") || !strings.Contains(err.Error(), "[64 256]") {
		t.Fatalf("error %v", err)
	}
	t.Log(err)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeConfig(t *testing.T, dir string, cfg map[string]any) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), mustJSON(t, cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A native folder keeps config.json values of any JSON type among the
// keys the typed config does not know: a classifier's label2id, GPT-2's
// task_specific_params, arrays.
func TestNativeKeepsConfig(t *testing.T) {
	l, err := checkpoint.Load(filepath.Join(ref, "gpt2-cls-f32"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := l.Model.HFConfig()
	cfg["task_specific_params"] = map[string]any{"text-generation": map[string]any{"do_sample": true, "max_length": 50.0}}
	cfg["suppress_tokens"] = []any{1.0, "x", nil}
	src := filepath.Join(t.TempDir(), "hf")
	if err := checkpoint.SaveHF(src, l.Model, checkpoint.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, src, cfg)
	want := logits(t, src)
	ls, err := checkpoint.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	nat := filepath.Join(t.TempDir(), "native")
	if err := checkpoint.SaveNative(nat, ls); err != nil {
		t.Fatal(err)
	}
	ln, err := checkpoint.Load(nat)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got, exp := string(mustJSON(t, ln.Model.HFConfig())), string(mustJSON(t, ls.Model.HFConfig())); got != exp {
		t.Fatalf("native config\n%s\nwant\n%s", got, exp)
	}
	if !strings.Contains(string(mustJSON(t, ln.Model.HFConfig())), `"label2id":{"negative":0`) {
		t.Fatalf("native config lost label2id: %s", mustJSON(t, ln.Model.HFConfig()))
	}
	if got := logits(t, nat); !slices.Equal(got, want) {
		t.Fatal("native logits differ")
	}
}
