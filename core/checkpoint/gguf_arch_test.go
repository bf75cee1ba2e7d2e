package checkpoint

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/formats/gguf"
	"github.com/surgeon-ml/surgeon/internal/memavail"
)

// ggufArchCases are reference folders of every family GGUF holds, with
// what the written file must show: its architecture, tensors it must and
// must not have, and metadata values.
var ggufArchCases = []struct {
	dir, arch string
	has, not  []string
	meta      map[string]any
}{
	{dir: "llama-gqa-f32", arch: "llama", has: []string{"output.weight", "blk.1.attn_q.weight"}},
	{dir: "qwen2-gqa-f32", arch: "qwen2", has: []string{"blk.0.attn_q.bias", "blk.1.attn_v.bias", "output.weight"},
		meta: map[string]any{"qwen2.rope.freq_base": float32(1e6), "qwen2.attention.head_count_kv": uint32(2)}},
	{dir: "qwen2-tied-bf16-sharded", arch: "qwen2", not: []string{"output.weight"}},
	{dir: "qwen3-gqa-f32", arch: "qwen3", has: []string{"blk.0.attn_q_norm.weight", "blk.1.attn_k_norm.weight"},
		meta: map[string]any{"qwen3.attention.key_length": uint32(32)}},
	{dir: "qwen3-mha-tied-f16", arch: "qwen3", not: []string{"output.weight"}},
	{dir: "gemma-gqa-f32", arch: "gemma", not: []string{"output.weight"},
		meta: map[string]any{"gemma.attention.key_length": uint32(16)}},
	{dir: "gemma2-gqa-window3-f32", arch: "gemma2", has: []string{"blk.2.post_attention_norm.weight", "blk.2.post_ffw_norm.weight", "blk.0.ffn_norm.weight"},
		not: []string{"output.weight"},
		meta: map[string]any{"gemma2.attn_logit_softcapping": float32(2), "gemma2.final_logit_softcapping": float32(5),
			"gemma2.attention.sliding_window": uint32(3), "gemma2.attention.scale": float32(1 / math.Sqrt(24))}},
	{dir: "phi3-gqa-f32", arch: "phi3", has: []string{"blk.0.attn_qkv.weight", "blk.1.ffn_up.weight"}, not: []string{"blk.0.attn_q.weight", "blk.0.ffn_gate.weight"},
		meta: map[string]any{"phi3.attention.sliding_window": uint32(0)}},
	{dir: "phi3-mha-window5-f16", arch: "phi3", meta: map[string]any{"phi3.attention.sliding_window": uint32(5)}},
	{dir: "gpt2-f32", arch: "gpt2", has: []string{"position_embd.weight", "blk.0.attn_qkv.bias", "output_norm.bias"}, not: []string{"output.weight"},
		meta: map[string]any{"gpt2.feed_forward_length": uint32(256), "gpt2.context_length": uint32(32)}},
	{dir: "rope-llama3-f32", arch: "llama", has: []string{"rope_freqs.weight"},
		meta: map[string]any{"llama.rope.scaling.original_context_length": uint32(64)}},
	{dir: "rope-llama-linear-f16", arch: "llama", meta: map[string]any{"llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": float32(2)}},
	{dir: "gpt2-untied-f16", arch: "gpt2", has: []string{"output.weight"}, meta: map[string]any{"gpt2.feed_forward_length": uint32(80)}},
}

// Every family's reference folder written as GGUF F32 reads back (Load and
// LoadStored) as the same family giving the folder's logits (to 1e-6: the
// Gemma norm weights go through w+1-1 in float32), and the file follows
// llama.cpp's names and keys.
func TestGGUFArchRoundTrip(t *testing.T) {
	for _, c := range ggufArchCases {
		t.Run(c.dir, func(t *testing.T) {
			dir := filepath.Join(refDir, c.dir)
			var exp expected
			raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &exp); err != nil {
				t.Fatal(err)
			}
			src, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			out := filepath.Join(t.TempDir(), "m.gguf")
			if err := writeGGUF(out, src, "f32", nil, paramSources(src.Model)); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if a, err := f.String("general.architecture"); err != nil || a != c.arch {
				t.Errorf("general.architecture %q, %v; want %q", a, err, c.arch)
			}
			for _, n := range c.has {
				if _, ok := f.TensorInfo(n); !ok {
					t.Errorf("no tensor %s", n)
				}
			}
			for _, n := range c.not {
				if _, ok := f.TensorInfo(n); ok {
					t.Errorf("tensor %s should not be written", n)
				}
			}
			for k, want := range c.meta {
				v, err := f.Value(k)
				if err != nil {
					t.Errorf("key %s: %v", k, err)
					continue
				}
				if got := gguf.ValueOf(v); got != want {
					t.Errorf("key %s = %v (%T), want %v (%T)", k, got, got, want, want)
				}
			}
			f.Close()
			for _, load := range []struct {
				name string
				fn   func(string) (*Loaded, error)
			}{{"Load", Load}, {"LoadStored", LoadStored}} {
				back, err := load.fn(out)
				if err != nil {
					t.Fatalf("%s: %v", load.name, err)
				}
				if got, want := back.Model.HFConfig()["model_type"], src.Model.HFConfig()["model_type"]; got != want {
					t.Fatalf("%s: model_type %v, want %v", load.name, got, want)
				}
				for i, in := range exp.Inputs {
					want, err := src.Model.Logits(model.NewBatch([][]int{in}, 0))
					if err != nil {
						t.Fatal(err)
					}
					got, err := back.Model.Logits(model.NewBatch([][]int{in}, 0))
					if err != nil {
						t.Fatalf("%s: %v", load.name, err)
					}
					g, w := ops.Data(got), ops.Data(want)
					if len(g) != len(w) {
						t.Fatalf("%s: %d logits, want %d", load.name, len(g), len(w))
					}
					worst := 0.0
					for j := range w {
						d := math.Abs(float64(g[j]) - float64(w[j]))
						worst = math.Max(worst, d)
						if d > 1e-6*math.Max(1, math.Abs(float64(w[j]))) {
							t.Fatalf("%s: input %d: logit %d = %v, the folder's %v", load.name, i, j, g[j], w[j])
						}
					}
					if i == 0 {
						t.Logf("%s: max abs diff %.3g", load.name, worst)
					}
				}
				back.Close()
			}
		})
	}
}

// Quantized GGUF files of the families read back to the quantizer's
// dequantized weights: each matrix row-quantized in llama.cpp's [out, in]
// layout (GPT-2's Conv1D weights transposed first), vectors exact (Gemma's
// norms to float32 rounding of w+1-1).
func TestGGUFArchQuantizedReadsBack(t *testing.T) {
	for _, c := range []struct{ dir, typ string }{
		{"qwen2-gqa-f32", "q8_0"}, {"qwen3-gqa-f32", "q5_0"}, {"gemma2-gqa-window3-f32", "q8_0"},
		{"phi3-gqa-f32", "q4_0"}, {"gpt2-f32", "q8_0"}, {"gemma-gqa-f32", "q5_1"},
	} {
		t.Run(c.dir+"/"+c.typ, func(t *testing.T) {
			src, err := Load(filepath.Join(refDir, c.dir))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			out := filepath.Join(t.TempDir(), "m.gguf")
			if err := writeGGUF(out, src, c.typ, nil, paramSources(src.Model)); err != nil {
				t.Fatal(err)
			}
			back, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			defer back.Close()
			orig := map[string][]float32{}
			for _, p := range layer.Params(src.Model) {
				orig[p.Path] = ops.Data(p.Param)
			}
			quantized := 0
			for _, p := range layer.Params(back.Model) {
				o, ok := orig[p.Path]
				if !ok {
					t.Fatalf("%s: not in the source", p.Path)
				}
				got := ops.Data(p.Param) // the layer's own layout: [out, in] for every matrix
				if len(p.Shape) != 2 {
					for i := range o {
						want := o[i]
						if strings.HasSuffix(p.Path, "norm.weight") && strings.HasPrefix(c.dir, "gemma") {
							want = (o[i] + 1) - 1
						}
						if got[i] != want {
							t.Fatalf("%s[%d] = %v, want %v", p.Path, i, got[i], want)
						}
					}
					continue
				}
				rowLen := p.Shape[1]
				if p.Transposed {
					rowLen = p.Shape[0]
				}
				typ := gguf.FileTypes[c.typ].Type
				if rowLen%typ.BlockSize() != 0 {
					typ = gguf.TypeF16
				}
				q, err := gguf.Quantize(typ, o)
				if err != nil {
					t.Fatal(err)
				}
				exp := make([]float32, len(o))
				if err := gguf.Dequantize(typ, exp, q); err != nil {
					t.Fatal(err)
				}
				for i := range exp {
					if got[i] != exp[i] {
						t.Fatalf("%s (%s)[%d] = %v, quantizer's %v", p.Path, typ, i, got[i], exp[i])
					}
				}
				if typ != gguf.TypeF16 {
					quantized++
				}
			}
			if quantized == 0 {
				t.Fatal("no matrix was quantized: the test could not tell")
			}
			// The stored twin dequantizes on use and gives the same logits.
			st, err := LoadStored(out)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			in := model.NewBatch([][]int{{1, 5, 9, 3, 7}}, 0)
			a, err := back.Model.Logits(in)
			if err != nil {
				t.Fatal(err)
			}
			b, err := st.Model.Logits(in)
			if err != nil {
				t.Fatal(err)
			}
			for i, x := range ops.Data(a) {
				if y := ops.Data(b)[i]; math.Abs(float64(x-y)) > 1e-5*math.Max(1, math.Abs(float64(x))) {
					t.Fatalf("logit %d: Load %v, LoadStored %v", i, x, y)
				}
			}
		})
	}
}

// Files of an architecture surgeon does not read, and models it cannot
// write for llama.cpp, fail with one line naming the problem.
func TestGGUFArchErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "falcon.gguf")
	if err := gguf.Write(path, []gguf.KV{{Key: "general.architecture", Value: "falcon"}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), `"falcon" is not supported (supported: gemma, gemma2, gpt2, llama, phi3, qwen2, qwen3)`) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %v", err)
	}
	src, err := Load(filepath.Join(refDir, "gemma2-mqa-untied-window4-f16"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := writeGGUF(filepath.Join(dir, "g.gguf"), src, "f32", nil, paramSources(src.Model)); err == nil || !strings.Contains(err.Error(), "untied") {
		t.Fatalf("untied gemma2: error %v", err)
	}
	for ref, want := range map[string]string{
		"rope-qwen2-yarn-bf16":           `rope_scaling type "yarn" is not supported (only linear)`,
		"rope-llama-dynamic-f32":         `rope_scaling type "dynamic" is not supported (only linear)`,
		"rope-phi3-longrope-partial-f32": "not supported",
		"mistral-gqa-window3-f32":        "llama.cpp runs Mistral as llama, which has no sliding window",
	} {
		l, err := Load(filepath.Join(refDir, ref))
		if err != nil {
			t.Fatal(err)
		}
		err = writeGGUF(filepath.Join(dir, ref+".gguf"), l, "f32", nil, paramSources(l.Model))
		l.Close()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: error %v, want %q", ref, err, want)
		}
	}
	bert, err := Load(filepath.Join(refDir, "bert-f32"))
	if err != nil {
		t.Fatal(err)
	}
	defer bert.Close()
	if err := SaveGGUF(filepath.Join(dir, "b.gguf"), bert, "f32"); err == nil || !strings.Contains(err.Error(), "causal LMs") {
		t.Fatalf("bert: error %v", err)
	}
}

// A Mistral without a sliding window is written as llama.cpp's converter
// writes it, as llama (q/k permuted), and reads back as a Llama with the
// same logits.
func TestGGUFMistralAsLlama(t *testing.T) {
	src := filepath.Join(refDir, "mistral-gqa-window3-f32")
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "config.json" {
			var cfg map[string]any
			if err := json.Unmarshal(data, &cfg); err != nil {
				t.Fatal(err)
			}
			cfg["sliding_window"] = nil
			data, _ = json.Marshal(cfg)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out := filepath.Join(t.TempDir(), "m.gguf")
	if err := writeGGUF(out, l, "f32", nil, paramSources(l.Model)); err != nil {
		t.Fatal(err)
	}
	back, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if mt := back.Model.HFConfig()["model_type"]; mt != "llama" {
		t.Fatalf("model_type %v, want llama", mt)
	}
	in := model.NewBatch([][]int{{1, 31, 17, 66, 74, 5, 9, 40, 2}}, 0)
	want, err := l.Model.Logits(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := back.Model.Logits(in)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range ops.Data(want) {
		if g := ops.Data(got)[i]; g != w {
			t.Fatalf("logit %d = %v, the folder's %v", i, g, w)
		}
	}
}

// A Hugging Face folder streamed to GGUF (one tensor at a time from its
// skeleton) is byte for byte the file written from the loaded model, for
// every family's reference folder, in F32 and in quantized types (q/k
// permuted, Gemma's norms plus one, GPT-2's Conv1D transposed, F16
// fallback for rows that do not divide into blocks).
func TestStreamGGUFEqualsLoaded(t *testing.T) {
	for _, c := range ggufArchCases {
		t.Run(c.dir, func(t *testing.T) {
			dir := filepath.Join(refDir, c.dir)
			l, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			sk, err := OpenSkeleton(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer sk.Close()
			for _, typ := range []string{"f32", "q8_0", "q4_k"} {
				tmp := t.TempDir()
				want, got := filepath.Join(tmp, "loaded.gguf"), filepath.Join(tmp, "streamed.gguf")
				if err := writeGGUF(want, l, typ, nil, paramSources(l.Model)); err != nil {
					t.Fatal(err)
				}
				if err := streamGGUF(context.Background(), got, sk, typ, nil); err != nil {
					t.Fatal(err)
				}
				a, _ := os.ReadFile(want)
				b, _ := os.ReadFile(got)
				if !bytes.Equal(a, b) {
					t.Errorf("%s: streamed file (%d bytes) differs from the loaded model's (%d bytes)", typ, len(b), len(a))
				}
			}
		})
	}
}

// A cancelled stream to GGUF leaves no file.
func TestStreamGGUFCancelled(t *testing.T) {
	sk, err := OpenSkeleton(filepath.Join(refDir, "llama-gqa-f32"))
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := filepath.Join(t.TempDir(), "m.gguf")
	if err := streamGGUF(ctx, out, sk, "q8_0", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
		t.Fatalf("a cancelled stream left %v", entries)
	}
}

// A GGUF file with a tensor of a ggml type surgeon cannot decode is
// refused when it is opened, before any weight is read, by Load and
// LoadStored alike, naming the file, the tensor, its type and the count.
func TestGGUFUnsupportedTypeRefused(t *testing.T) {
	l, err := Load(filepath.Join(refDir, "llama-gqa-f32"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := writeGGUF(path, l, "f32", nil, paramSources(l.Model)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Patch blk.0.attn_q.weight's type field from F32 (0) to Q8_1 (9): the
	// name, then its dimension count, two dimensions, the type.
	name := []byte("blk.0.attn_q.weight")
	i := bytes.Index(raw, name)
	if i < 0 {
		t.Fatal("no blk.0.attn_q.weight in the header")
	}
	typ := i + len(name) + 4 + 2*8
	if binary.LittleEndian.Uint32(raw[typ:]) != uint32(gguf.TypeF32) {
		t.Fatalf("type field reads %d", binary.LittleEndian.Uint32(raw[typ:]))
	}
	binary.LittleEndian.PutUint32(raw[typ:], uint32(gguf.TypeQ8_1))
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func(string) (*Loaded, error){"Load": Load, "LoadStored": LoadStored} {
		_, err := load(path)
		if !errors.Is(err, gguf.ErrUnsupportedType) {
			t.Fatalf("%s: error %v, want ErrUnsupportedType", name, err)
		}
		for _, want := range []string{path, "blk.0.attn_q.weight", "Q8_1", "1 of", "Q4_K"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not name %q", name, err, want)
			}
		}
	}
}

// A model whose float32 weights exceed the memory available is refused by
// Load before anything is read, naming the numbers and --weights stored;
// LoadStored still opens it.
func TestLoadRefusesWhatCannotFit(t *testing.T) {
	dir := filepath.Join(refDir, "llama-gqa-f32")
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	gg := filepath.Join(t.TempDir(), "m.gguf")
	err = writeGGUF(gg, l, "q8_0", nil, paramSources(l.Model))
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(memavail.Env, "200M")
	for _, path := range []string{dir, gg} {
		_, err := Load(path)
		if !errors.Is(err, ErrTooBig) {
			t.Fatalf("%s: error %v, want ErrTooBig", path, err)
		}
		for _, want := range []string{path, "MiB as float32", "200 MiB is available (" + memavail.Env + ")", "--weights stored"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		s, err := LoadStored(path)
		if err != nil {
			t.Fatalf("%s: LoadStored: %v", path, err)
		}
		s.Close()
	}
	t.Setenv(memavail.Env, "4G")
	if l, err := Load(gg); err != nil {
		t.Fatal(err)
	} else {
		l.Close()
	}
}
