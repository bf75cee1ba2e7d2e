// Command mkllama writes a random Llama checkpoint (a Hugging Face folder)
// and a random PEFT LoRA adapter for it, for benchmarks of loading, merging
// and converting at realistic sizes; or, with -gguf, a llama.cpp GGUF file
// with a synthetic SentencePiece vocabulary, for decoding benchmarks
// against llama.cpp.
//
//	go run ./tools/mkllama -o /tmp/llama1g -adapter /tmp/llama1g-lora
//	go run ./tools/mkllama -gguf /tmp/llama100m.gguf -type q8_0 -hidden 768 -inter 2048 -layers 12 -heads 12 -vocab 16000
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/llama"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/gguf"
	"github.com/surgeon-ml/surgeon/formats/peft"
)

func main() {
	out := flag.String("o", "", "output model folder")
	adapter := flag.String("adapter", "", "also write a random LoRA adapter (r=16 on q,v) here")
	hidden := flag.Int("hidden", 2048, "hidden size")
	inter := flag.Int("inter", 5632, "intermediate size")
	layers := flag.Int("layers", 3, "layers")
	vocab := flag.Int("vocab", 32000, "vocabulary")
	heads := flag.Int("heads", 16, "attention heads")
	kvHeads := flag.Int("kv-heads", 0, "key/value heads (0: as many as -heads)")
	ggufPath := flag.String("gguf", "", "write a llama.cpp GGUF file here instead of a folder")
	ggufType := flag.String("type", "f32", "-gguf: type of the 2-D weights (f32, f16, q8_0, ...)")
	flag.Parse()
	if *out == "" && *ggufPath == "" {
		fmt.Fprintln(os.Stderr, "mkllama: -o or -gguf is required")
		os.Exit(2)
	}
	if *kvHeads == 0 {
		*kvHeads = *heads
	}
	cfg := fmt.Sprintf(`{"model_type":"llama","architectures":["LlamaForCausalLM"],"hidden_size":%d,"intermediate_size":%d,
		"num_hidden_layers":%d,"num_attention_heads":%d,"num_key_value_heads":%d,"vocab_size":%d,"rms_norm_eps":1e-5}`,
		*hidden, *inter, *layers, *heads, *kvHeads, *vocab)
	c, err := llama.ParseConfig([]byte(cfg))
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkllama:", err)
		os.Exit(1)
	}
	m := llama.New(c)
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range layer.Params(m) {
		d := ops.Data(p.Param)
		for i := range d {
			d[i] = float32(r.NormFloat64() * 0.02)
		}
	}
	if *ggufPath != "" {
		if err := writeGGUF(*ggufPath, *ggufType, m); err != nil {
			fmt.Fprintln(os.Stderr, "mkllama:", err)
			os.Exit(1)
		}
		return
	}
	if err := checkpoint.SaveHF(*out, m, checkpoint.SaveOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, "mkllama:", err)
		os.Exit(1)
	}
	if *adapter == "" {
		return
	}
	a := &peft.Adapter{Modules: map[string]map[string]tensor.Tensor{}, Saved: map[string]tensor.Tensor{}}
	a.Config = peft.Config{PeftType: "LORA", TaskType: "CAUSAL_LM", R: 16, LoraAlpha: 32, TargetModules: []any{"q_proj", "v_proj"},
		RankPattern: map[string]int{}, AlphaPattern: map[string]float64{}, BaseModel: *out}
	for _, mod := range layer.Modules(m) {
		if !strings.HasSuffix(mod.Path, "q_proj") && !strings.HasSuffix(mod.Path, "v_proj") {
			continue
		}
		mk := func(rows, cols int) tensor.Tensor {
			v := make([]float32, rows*cols)
			for i := range v {
				v[i] = float32(r.NormFloat64() * 0.01)
			}
			b, _ := tensor.FromFloat32(tensor.F32, v)
			return tensor.Tensor{DType: tensor.F32, Shape: []int{rows, cols}, Data: b}
		}
		a.Modules[mod.Path] = map[string]tensor.Tensor{"lora_A.weight": mk(16, *hidden), "lora_B.weight": mk(*hidden, 16)}
	}
	if err := peft.Write(*adapter, a); err != nil {
		fmt.Fprintln(os.Stderr, "mkllama:", err)
		os.Exit(1)
	}
}

// writeGGUF writes m as a GGUF file of the given type with a synthetic
// SentencePiece vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then
// pieces "▁t<i>".
func writeGGUF(path, typ string, m *llama.Model) error {
	n := m.Config.VocabSize
	tokens := make([]string, n)
	scores := make([]float32, n)
	types := make([]int32, n)
	for i := range tokens {
		switch {
		case i == 0:
			tokens[i], types[i] = "<unk>", 2
		case i <= 2:
			tokens[i], types[i] = []string{"", "<s>", "</s>"}[i], 3
		case i < 3+256:
			tokens[i], types[i] = fmt.Sprintf("<0x%02X>", i-3), 6
		default:
			tokens[i], scores[i], types[i] = fmt.Sprintf("\u2581t%d", i), -float32(i), 1
		}
	}
	tok := []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: "llama"},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
		{Key: "tokenizer.ggml.scores", Value: scores},
		{Key: "tokenizer.ggml.token_type", Value: types},
		{Key: "tokenizer.ggml.add_bos_token", Value: true},
		{Key: "tokenizer.ggml.add_eos_token", Value: false},
		{Key: "tokenizer.ggml.bos_token_id", Value: uint32(1)},
		{Key: "tokenizer.ggml.eos_token_id", Value: uint32(2)},
		{Key: "tokenizer.ggml.unknown_token_id", Value: uint32(0)},
	}
	var ts []tensor.Tensor
	for _, p := range layer.Params(m) {
		data, err := tensor.FromFloat32(tensor.F32, ops.Data(p.Param))
		if err != nil {
			return err
		}
		ts = append(ts, tensor.Tensor{Name: p.Path, DType: tensor.F32, Shape: p.Shape, Data: data})
	}
	return gguf.WriteLlama(path, gguf.LlamaWrite{Config: m.HFConfig(), Type: typ, Name: "mkllama", Tokenizer: tok}, ts)
}
