package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

// storiesPath is the stories260K fixture, relative to this package.
var storiesPath = filepath.Join("..", "..", "..", "shared", "fixtures", "stories260K-gguf", "stories260K.gguf")

func openStories(t testing.TB) *File {
	t.Helper()
	if _, err := os.Stat(storiesPath); err != nil {
		t.Skipf("fixture %s not available (%v); it lives in ../shared/fixtures next to the repository", storiesPath, err)
	}
	f, err := Open(storiesPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	return f
}

func TestStories260K(t *testing.T) {
	f := openStories(t)
	if f.Version() != 3 || f.Alignment() != 32 {
		t.Fatalf("version %d alignment %d", f.Version(), f.Alignment())
	}
	if n := len(f.Tensors()); n != 48 {
		t.Fatalf("%d tensors, want 48", n)
	}
	t.Run("metadata", func(t *testing.T) {
		if s, err := f.String("general.architecture"); err != nil || s != "llama" {
			t.Errorf("architecture %q, %v", s, err)
		}
		if n, err := f.Uint("llama.context_length"); err != nil || n != 2048 {
			t.Errorf("context_length %d, %v", n, err)
		}
		toks, err := f.Strings("tokenizer.ggml.tokens")
		if err != nil || len(toks) != 512 || toks[1] != "<s>" || toks[3] != "<0x00>" {
			t.Errorf("tokens %d, %v", len(toks), err)
		}
		types, err := f.Int32s("tokenizer.ggml.token_type")
		if err != nil || len(types) != 512 || types[0] != 2 || types[1] != 3 || types[3] != 6 {
			t.Errorf("token types %v, %v", types[:4], err)
		}
		if eps, err := f.Float("llama.attention.layer_norm_rms_epsilon"); err != nil || math.Abs(eps-1e-5) > 1e-12 {
			t.Errorf("eps %v, %v", eps, err)
		}
	})
	t.Run("shapes", func(t *testing.T) {
		cases := []struct {
			name  string
			dims  []uint64
			shape []int
		}{
			{"token_embd.weight", []uint64{64, 512}, []int{512, 64}},
			{"output.weight", []uint64{64, 512}, []int{512, 64}},
			{"output_norm.weight", []uint64{64}, []int{64}},
			{"blk.0.attn_q.weight", []uint64{64, 64}, []int{64, 64}},
			{"blk.2.attn_k.weight", []uint64{64, 32}, []int{32, 64}},
			{"blk.4.ffn_down.weight", []uint64{172, 64}, []int{64, 172}},
			{"blk.4.ffn_up.weight", []uint64{64, 172}, []int{172, 64}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ti, ok := f.TensorInfo(c.name)
				if !ok || !reflect.DeepEqual(ti.Dims, c.dims) || ti.Type != TypeF32 {
					t.Fatalf("info %+v", ti)
				}
				tt, err := f.Tensor(c.name)
				if err != nil || tt.DType != tensor.F32 || !reflect.DeepEqual(tt.Shape, c.shape) || len(tt.Data) != 4*tensor.NumElements(c.shape) {
					t.Fatalf("tensor %s %v %d bytes, %v", tt.DType, tt.Shape, len(tt.Data), err)
				}
			})
		}
	})
	t.Run("config", func(t *testing.T) {
		cfg, err := LlamaConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama",
			"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
			"num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 8,
			"rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": 512,
			"max_position_embeddings": 2048, "tie_word_embeddings": false,
			"bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "torch_dtype": "float32",
		}
		for k, v := range want {
			if !reflect.DeepEqual(cfg[k], v) {
				t.Errorf("%s = %#v, want %#v", k, cfg[k], v)
			}
		}
		if _, ok := cfg["pad_token_id"]; ok {
			t.Errorf("pad_token_id present although the file says none (0xFFFFFFFF)")
		}
	})
	t.Run("hf tensors", func(t *testing.T) {
		ts, err := LlamaTensors(f)
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, tt := range ts {
			got = append(got, tt.Name)
			if tt.DType != tensor.F32 || len(tt.Data) != 4*tt.NumElements() {
				t.Errorf("%s: %s, %d bytes for %v", tt.Name, tt.DType, len(tt.Data), tt.Shape)
			}
		}
		want = []string{"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
		for l := range 5 {
			for _, s := range []string{"input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"} {
				want = append(want, fmt.Sprintf("model.layers.%d.%s.weight", l, s))
			}
		}
		sort.Strings(got)
		sort.Strings(want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("names\n got %v\nwant %v", got, want)
		}
		byName := map[string]tensor.Tensor{}
		for _, tt := range ts {
			byName[tt.Name] = tt
		}
		if s := byName["model.layers.0.self_attn.k_proj.weight"].Shape; !reflect.DeepEqual(s, []int{32, 64}) {
			t.Errorf("k_proj shape %v", s)
		}
		for _, c := range []struct {
			gguf, hf string
			heads    int
		}{
			{"blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight", 8},
			{"blk.3.attn_k.weight", "model.layers.3.self_attn.k_proj.weight", 4},
		} {
			orig, _ := f.Tensor(c.gguf)
			hf := byName[c.hf]
			if bytes.Equal(orig.Data, hf.Data) {
				t.Errorf("%s: not permuted", c.hf)
			}
			back, err := PermuteQK(hf, c.heads)
			if err != nil || !bytes.Equal(back.Data, orig.Data) {
				t.Errorf("%s: PermuteQK does not restore the GGUF rows (%v)", c.hf, err)
			}
		}
		v, _ := f.Tensor("blk.1.attn_v.weight")
		if !bytes.Equal(v.Data, byName["model.layers.1.self_attn.v_proj.weight"].Data) {
			t.Errorf("v_proj changed")
		}
	})
	t.Run("rope equivalence", func(t *testing.T) {
		// Attention logits computed llama.cpp-style (interleaved RoPE on
		// GGUF rows) must equal those computed Hugging Face-style
		// (rotate-half RoPE on the un-permuted rows).
		ts, err := LlamaTensors(f)
		if err != nil {
			t.Fatal(err)
		}
		hf := map[string][]float32{}
		for _, tt := range ts {
			hf[tt.Name], _ = tt.Float32()
		}
		gq, _, _ := f.Float32("blk.0.attn_q.weight")
		gk, _, _ := f.Float32("blk.0.attn_k.weight")
		hq := hf["model.layers.0.self_attn.q_proj.weight"]
		hk := hf["model.layers.0.self_attn.k_proj.weight"]
		rng := rand.New(rand.NewPCG(1, 2))
		x1, x2 := make([]float32, 64), make([]float32, 64)
		for i := range x1 {
			x1[i], x2[i] = rng.Float32()-0.5, rng.Float32()-0.5
		}
		const hd, pq, pk = 8, 5, 2
		for head := range 8 {
			kvHead := head / 2
			qg := rope(matvec(gq, x1, head*hd, hd), pq, true)
			kg := rope(matvec(gk, x2, kvHead*hd, hd), pk, true)
			qh := rope(matvec(hq, x1, head*hd, hd), pq, false)
			kh := rope(matvec(hk, x2, kvHead*hd, hd), pk, false)
			a, b := dot(qg, kg), dot(qh, kh)
			if math.Abs(a-b) > 1e-4*(1+math.Abs(a)) {
				t.Errorf("head %d: logit %v (GGUF) vs %v (HF)", head, a, b)
			}
		}
	})
	t.Run("tokenizer", func(t *testing.T) {
		t0, err := Tokenizer(f)
		if err != nil {
			t.Fatal(err)
		}
		tok, ok := t0.(*tokenizer.SPM)
		if !ok {
			t.Fatalf("tokenizer is a %T, want *tokenizer.SPM", t0)
		}
		got := tok.Encode("Once upon a time", true)
		want := []int{1, 403, 407, 261, 378}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Encode = %v, want %v", got, want)
		}
		if tok.VocabSize() != 512 || tok.BOS() != 1 || tok.EOS() != 2 || tok.UNK() != 0 {
			t.Fatalf("vocab %d bos %d eos %d unk %d", tok.VocabSize(), tok.BOS(), tok.EOS(), tok.UNK())
		}
	})
}

// matvec returns rows [r0, r0+n) of W [*, len(x)] times x.
func matvec(w, x []float32, r0, n int) []float64 {
	out := make([]float64, n)
	for r := range n {
		var s float64
		for c, xv := range x {
			s += float64(w[(r0+r)*len(x)+c]) * float64(xv)
		}
		out[r] = s
	}
	return out
}

// rope rotates one head at position pos, interleaved (pairs 2i, 2i+1) as
// llama.cpp does or rotate-half (pairs i, i+d/2) as Hugging Face does.
func rope(v []float64, pos int, interleaved bool) []float64 {
	d := len(v)
	out := make([]float64, d)
	for i := range d / 2 {
		theta := float64(pos) * math.Pow(10000, -2*float64(i)/float64(d))
		a, b := i, i+d/2
		if interleaved {
			a, b = 2*i, 2*i+1
		}
		c, s := math.Cos(theta), math.Sin(theta)
		out[a] = v[a]*c - v[b]*s
		out[b] = v[a]*s + v[b]*c
	}
	return out
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func TestPermuteQK(t *testing.T) {
	rowsOf := func(t tensor.Tensor) []float32 { v, _ := t.Float32(); return v }
	mk := func(rows, cols int) tensor.Tensor {
		v := make([]float32, rows*cols)
		for i := range v {
			v[i] = float32(i / cols) // each row holds its index
		}
		data, _ := tensor.FromFloat32(tensor.F32, v)
		return tensor.Tensor{Name: "q", DType: tensor.F32, Shape: []int{rows, cols}, Data: data}
	}
	t.Run("one head", func(t *testing.T) {
		hf, err := UnpermuteQK(mk(4, 1), 1)
		if err != nil {
			t.Fatal(err)
		}
		// GGUF rows are interleaved pairs (0,1) (2,3); HF puts the first
		// element of every pair first.
		if got := rowsOf(hf); !reflect.DeepEqual(got, []float32{0, 2, 1, 3}) {
			t.Fatalf("rows %v", got)
		}
		gg, _ := PermuteQK(mk(8, 1), 2)
		if got := rowsOf(gg); !reflect.DeepEqual(got, []float32{0, 2, 1, 3, 4, 6, 5, 7}) {
			t.Fatalf("forward rows %v", got)
		}
	})
	t.Run("inverse", func(t *testing.T) {
		for _, c := range []struct{ rows, cols, heads int }{{8, 3, 1}, {8, 3, 2}, {8, 3, 4}, {64, 64, 8}, {32, 64, 4}, {48, 5, 3}} {
			for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
				w := mk(c.rows, c.cols)
				rng := rand.New(rand.NewPCG(uint64(c.rows), uint64(c.heads)))
				v := make([]float32, c.rows*c.cols)
				for i := range v {
					v[i] = rng.Float32()
				}
				w.DType = dt
				w.Data, _ = tensor.FromFloat32(dt, v)
				p, err := PermuteQK(w, c.heads)
				if err != nil {
					t.Fatal(err)
				}
				u, err := UnpermuteQK(p, c.heads)
				if err != nil || !bytes.Equal(u.Data, w.Data) {
					t.Errorf("%+v %s: Unpermute(Permute(w)) != w", c, dt)
				}
				u, _ = UnpermuteQK(w, c.heads)
				p, _ = PermuteQK(u, c.heads)
				if !bytes.Equal(p.Data, w.Data) {
					t.Errorf("%+v %s: Permute(Unpermute(w)) != w", c, dt)
				}
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			t     tensor.Tensor
			heads int
			sub   string
		}{
			{"odd rows per head", mk(6, 2), 2, "heads"},
			{"not divisible", mk(8, 2), 3, "heads"},
			{"zero heads", mk(8, 2), 0, "heads"},
			{"vector", tensor.Tensor{Name: "q", DType: tensor.F32, Shape: []int{8}, Data: make([]byte, 32)}, 2, "matrix"},
			{"short data", tensor.Tensor{Name: "q", DType: tensor.F32, Shape: []int{8, 2}, Data: make([]byte, 32)}, 2, "bytes"},
		} {
			t.Run(c.name, func(t *testing.T) {
				if _, err := UnpermuteQK(c.t, c.heads); err == nil || !strings.Contains(err.Error(), c.sub) {
					t.Fatalf("error %v", err)
				}
			})
		}
	})
}

func TestLlamaName(t *testing.T) {
	for in, want := range map[string]string{
		"token_embd.weight":        "model.embed_tokens.weight",
		"output_norm.weight":       "model.norm.weight",
		"output.weight":            "lm_head.weight",
		"blk.0.attn_norm.weight":   "model.layers.0.input_layernorm.weight",
		"blk.12.ffn_norm.weight":   "model.layers.12.post_attention_layernorm.weight",
		"blk.1.attn_q.weight":      "model.layers.1.self_attn.q_proj.weight",
		"blk.1.attn_k.weight":      "model.layers.1.self_attn.k_proj.weight",
		"blk.1.attn_v.weight":      "model.layers.1.self_attn.v_proj.weight",
		"blk.1.attn_output.weight": "model.layers.1.self_attn.o_proj.weight",
		"blk.2.ffn_gate.weight":    "model.layers.2.mlp.gate_proj.weight",
		"blk.2.ffn_up.weight":      "model.layers.2.mlp.up_proj.weight",
		"blk.2.ffn_down.weight":    "model.layers.2.mlp.down_proj.weight",
		"blk.01.ffn_up.weight":     "",
		"blk.x.ffn_up.weight":      "",
		"blk.1.ffn_up.bias":        "",
		"rope_freqs.weight":        "",
	} {
		t.Run(in, func(t *testing.T) {
			got, ok := LlamaName(in)
			if got != want || ok != (want != "") {
				t.Fatalf("LlamaName = %q, %v; want %q", got, ok, want)
			}
		})
	}
}

// tinyLlama builds a one-block llama GGUF with F16/BF16 weights and no
// output.weight (tied embeddings).
func tinyLlama(extra ...testTensor) testFile {
	const hidden, ffn, vocab = 8, 4, 6
	half := func(n int, seed float32) []byte {
		out := make([]byte, 0, 2*n)
		for i := range n {
			out = binary.LittleEndian.AppendUint16(out, tensor.Float32ToHalf(seed+float32(i)/8))
		}
		return out
	}
	bf := func(n int, seed float32) []byte {
		out := make([]byte, 0, 2*n)
		for i := range n {
			out = binary.LittleEndian.AppendUint16(out, tensor.Float32ToBF16(seed+float32(i)/8))
		}
		return out
	}
	tf := testFile{
		kvs: []testKV{
			{"general.architecture", "llama"},
			{"llama.context_length", uint32(128)},
			{"llama.embedding_length", uint32(hidden)},
			{"llama.feed_forward_length", uint32(ffn)},
			{"llama.block_count", uint32(1)},
			{"llama.attention.head_count", uint32(2)},
			{"llama.attention.head_count_kv", uint32(1)},
			{"llama.attention.layer_norm_rms_epsilon", float32(1e-6)},
			{"llama.rope.freq_base", float32(500000)},
			{"tokenizer.ggml.model", "llama"},
			{"tokenizer.ggml.tokens", []string{"<unk>", "<s>", "</s>", "▁a", "b", "▁ab"}},
			{"tokenizer.ggml.scores", []float32{0, 0, 0, -1, -2, -3}},
			{"tokenizer.ggml.token_type", []int32{2, 3, 3, 1, 1, 1}},
			{"tokenizer.ggml.bos_token_id", uint32(1)},
			{"tokenizer.ggml.eos_token_id", uint32(2)},
		},
		tensors: []testTensor{
			{name: "token_embd.weight", dims: []uint64{hidden, vocab}, typ: TypeF16, data: half(hidden*vocab, 0)},
			{name: "output_norm.weight", dims: []uint64{hidden}, typ: TypeF32, data: f32Bytes(1, 1, 1, 1, 1, 1, 1, 1)},
			{name: "blk.0.attn_norm.weight", dims: []uint64{hidden}, typ: TypeBF16, data: bf(hidden, 1)},
			{name: "blk.0.ffn_norm.weight", dims: []uint64{hidden}, typ: TypeBF16, data: bf(hidden, 2)},
			{name: "blk.0.attn_q.weight", dims: []uint64{hidden, hidden}, typ: TypeF16, data: half(hidden*hidden, 0)},
			{name: "blk.0.attn_k.weight", dims: []uint64{hidden, hidden / 2}, typ: TypeBF16, data: bf(hidden*hidden/2, 0)},
			{name: "blk.0.attn_v.weight", dims: []uint64{hidden, hidden / 2}, typ: TypeF16, data: half(hidden*hidden/2, 0)},
			{name: "blk.0.attn_output.weight", dims: []uint64{hidden, hidden}, typ: TypeF16, data: half(hidden*hidden, 0)},
			{name: "blk.0.ffn_gate.weight", dims: []uint64{hidden, ffn}, typ: TypeF16, data: half(hidden*ffn, 0)},
			{name: "blk.0.ffn_up.weight", dims: []uint64{hidden, ffn}, typ: TypeF16, data: half(hidden*ffn, 0)},
			{name: "blk.0.ffn_down.weight", dims: []uint64{ffn, hidden}, typ: TypeF16, data: half(hidden*ffn, 0)},
		},
	}
	tf.tensors = append(tf.tensors, extra...)
	return tf
}

func TestLlamaSynthetic(t *testing.T) {
	f := mustParse(t, tinyLlama().bytes())
	cfg, err := LlamaConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{
		"tie_word_embeddings": true, "vocab_size": 6, "num_key_value_heads": 1, "head_dim": 4,
		"rope_theta": 500000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 128,
	} {
		if !reflect.DeepEqual(cfg[k], v) {
			t.Errorf("%s = %#v, want %#v", k, cfg[k], v)
		}
	}
	ts, err := LlamaTensors(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 11 {
		t.Fatalf("%d tensors", len(ts))
	}
	for _, tt := range ts {
		if tt.DType != tensor.F32 || len(tt.Data) != 4*tt.NumElements() {
			t.Errorf("%s: %s with %d bytes", tt.Name, tt.DType, len(tt.Data))
		}
		if tt.Name == "lm_head.weight" {
			t.Errorf("lm_head.weight emitted for tied embeddings")
		}
	}
	byName := map[string]tensor.Tensor{}
	for _, tt := range ts {
		byName[tt.Name] = tt
	}
	normT := byName["model.layers.0.post_attention_layernorm.weight"]
	norm, _ := normT.Float32()
	if norm[1] != 2.125 {
		t.Errorf("ffn norm from BF16 = %v", norm)
	}
	qT := byName["model.layers.0.self_attn.q_proj.weight"]
	q, _ := qT.Float32()
	// GGUF q row r holds r + c/8 ... (as F16): row 1 of the HF layout is
	// GGUF row 2 (two heads of four rows).
	if q[8] != 2 || q[16] != 1 {
		t.Errorf("q_proj rows not un-permuted: rows start %v %v", q[8], q[16])
	}
	if s := byName["model.embed_tokens.weight"].Shape; !reflect.DeepEqual(s, []int{6, 8}) {
		t.Errorf("embed shape %v", s)
	}

	errCases := []struct {
		name string
		file testFile
		sub  string
	}{
		{"unknown tensor", tinyLlama(testTensor{name: "token_types.weight", dims: []uint64{2}, typ: TypeF32, data: f32Bytes(1, 2)}), `"token_types.weight" has no Hugging Face Llama equivalent`},
		{"block out of range", tinyLlama(testTensor{name: "blk.1.ffn_norm.weight", dims: []uint64{8}, typ: TypeF32, data: make([]byte, 32)}), "block_count is 1"},
		{"not dequantizable", tinyLlama(testTensor{name: "output.weight", dims: []uint64{256, 6}, typ: TypeIQ2_XXS, data: make([]byte, 66*6)}), `tensor "output.weight": ggml type IQ2_XXS cannot be dequantized (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS)`},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			f := mustParse(t, c.file.bytes())
			if _, err := LlamaTensors(f); err == nil || !strings.Contains(err.Error(), c.sub) {
				t.Fatalf("error %v, want %q", err, c.sub)
			}
		})
	}
	t.Run("not llama", func(t *testing.T) {
		tf := tinyLlama()
		tf.kvs[0].val = "gpt2"
		f := mustParse(t, tf.bytes())
		if _, err := LlamaConfig(f); err == nil || !strings.Contains(err.Error(), `"gpt2"`) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("missing key", func(t *testing.T) {
		tf := tinyLlama()
		tf.kvs = tf.kvs[:3]
		f := mustParse(t, tf.bytes())
		if _, err := LlamaConfig(f); !errors.Is(err, ErrMissingKey) || !strings.Contains(err.Error(), "llama.feed_forward_length") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("iterator stops", func(t *testing.T) {
		n := 0
		for _, err := range LlamaTensorSeq(f) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			if n == 3 {
				break
			}
		}
		if n != 3 {
			t.Fatalf("n = %d", n)
		}
	})
}

func TestTokenizerFromMetadata(t *testing.T) {
	f := mustParse(t, tinyLlama().bytes())
	tok, err := Tokenizer(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("ab", true); !reflect.DeepEqual(got, []int{1, 5}) {
		t.Errorf("Encode = %v", got)
	}
	cases := []struct {
		name string
		edit func(*testFile)
		sub  string
	}{
		{"unknown model", func(tf *testFile) { tf.kvs[9].val = "rwkv" }, `tokenizer.ggml.model is "rwkv"`},
		{"gpt2 without merges", func(tf *testFile) { tf.kvs[9].val = "gpt2" }, "merges is missing"},
		{"no tokens", func(tf *testFile) { tf.kvs[10].key = "x" }, `"tokenizer.ggml.tokens"`},
		{"scores mismatch", func(tf *testFile) { tf.kvs[11].val = []float32{1} }, "1 scores for 6 tokens"},
		{"bos out of range", func(tf *testFile) { tf.kvs[13].val = uint32(99) }, "bos_token_id is 99"},
		{"types of wrong type", func(tf *testFile) { tf.kvs[12].val = []string{"a"} }, "token_type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tf := tinyLlama()
			c.edit(&tf)
			if _, err := Tokenizer(mustParse(t, tf.bytes())); err == nil || !strings.Contains(err.Error(), c.sub) {
				t.Fatalf("error %v, want %q", err, c.sub)
			}
		})
	}
	t.Run("none ids", func(t *testing.T) {
		tf := tinyLlama()
		tf.kvs[14].val = uint32(0xFFFFFFFF)
		tok, err := Tokenizer(mustParse(t, tf.bytes()))
		if err != nil || tok.EOS() != -1 {
			t.Fatalf("eos %d, %v", tok.EOS(), err)
		}
	})
}
