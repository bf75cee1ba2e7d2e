package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/tensor"
)

// Streaming a Hugging Face folder writes exactly what loading it and
// saving it (SaveHF) writes, for every family, every output dtype, and
// single and sharded output.
func TestStreamEqualsSaveHF(t *testing.T) {
	entries, err := os.ReadDir(refDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		src := filepath.Join(refDir, e.Name())
		if _, err := os.Stat(filepath.Join(src, "config.json")); err != nil {
			continue
		}
		n++
		t.Run(e.Name(), func(t *testing.T) {
			l, err := Load(src)
			if err != nil {
				t.Fatal(err)
			}
			sk, err := OpenSkeleton(src)
			if err != nil {
				t.Fatal(err)
			}
			defer sk.Close()
			for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
				for _, shard := range []int64{0, 20000} {
					opts := SaveOptions{DType: dt, MaxShardBytes: shard, Extra: map[string][]byte{"tokenizer.json": []byte("{}")}}
					dir := t.TempDir()
					want, got := filepath.Join(dir, "saved"), filepath.Join(dir, "streamed")
					if err := SaveHF(want, l.Model, opts); err != nil {
						t.Fatal(err)
					}
					if err := sk.Stream(context.Background(), got, opts, nil); err != nil {
						t.Fatal(err)
					}
					sameFiles(t, got, want)
				}
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d reference folders found", n)
	}
}

func sameFiles(t *testing.T, got, want string) {
	t.Helper()
	names := func(dir string) []string {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Name())
		}
		return out
	}
	g, w := names(got), names(want)
	if !slices.Equal(g, w) {
		t.Fatalf("files %v, want %v", g, w)
	}
	for _, n := range w {
		a, _ := os.ReadFile(filepath.Join(got, n))
		b, _ := os.ReadFile(filepath.Join(want, n))
		if !bytes.Equal(a, b) {
			t.Fatalf("%s differs (%d and %d bytes)", n, len(a), len(b))
		}
	}
}

// A cancelled stream leaves nothing at the destination.
func TestStreamCancelledLeavesNothing(t *testing.T) {
	sk, err := OpenSkeleton(filepath.Join(refDir, "llama-bf16-sharded"))
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := sk.Stream(ctx, out, SaveOptions{}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Fatalf("left %v behind", es)
	}
}

// rss reads the process's resident set in bytes.
func rss(t *testing.T) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// A meta model of Llama-2-7B's shape (27 GB of float32 parameters) costs
// almost no memory until its parameters are written, and Release gives a
// written parameter back.
func TestMetaModelCostsNoMemory(t *testing.T) {
	cfg := `{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":4096,"intermediate_size":11008,
		"num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":32,"vocab_size":32000,"rms_norm_eps":1e-5,
		"max_position_embeddings":4096,"tie_word_embeddings":false}`
	before := rss(t)
	m, err := layer.BuildMeta(func() (model.Model, error) { return model.New([]byte(cfg)) })
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	params := layer.Params(m)
	for _, p := range params {
		total += int64(4 * p.Param.Size())
	}
	grown := rss(t) - before
	t.Logf("meta 7B model: %.1f GB of parameters, resident set grew by %.1f MB", float64(total)/1e9, float64(grown)/1e6)
	if total < 25e9 || grown > 200<<20 {
		t.Fatalf("%d bytes of parameters, resident set grew by %d bytes", total, grown)
	}
	var q layer.Param
	for _, p := range params {
		if strings.HasSuffix(p.Path, "layers.3.mlp.up_proj.weight") {
			q = p
		}
	}
	v := make([]float32, q.Param.Size())
	for i := range v {
		v[i] = 1
	}
	mid := rss(t)
	q.SetStored(v)
	if d := rss(t) - mid; d < 100<<20 {
		t.Fatalf("writing 180 MB into a parameter grew the resident set by only %d bytes", d)
	}
	mid = rss(t)
	if !layer.Release(q.Param) {
		t.Fatal("Release of a meta parameter reported false")
	}
	if d := mid - rss(t); d < 100<<20 {
		t.Fatalf("Release gave back only %d bytes", d)
	}
	if s := q.Stored(); s[0] != 0 || s[len(s)-1] != 0 {
		t.Fatal("a released parameter does not read as zero")
	}
	runtimeKeep(v)
}

func runtimeKeep(v []float32) {
	if len(v) == 0 {
		panic("unreachable")
	}
}
