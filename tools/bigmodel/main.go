// Command bigmodel writes a random Llama of a real model's shape as a
// Hugging Face folder (config.json and BF16/F16/F32 safetensors shards),
// and optionally a random PEFT LoRA adapter for it, for the scale
// benchmarks (make bench-scale). Weights are N(0, 0.02)-like values from
// a fast counter-based generator; nothing is held in memory beyond one
// chunk, so a 7B model writes at disk speed.
//
//	go run ./tools/bigmodel -shape tinyllama -o DIR [-adapter ADIR -r 16]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
)

// shape is a Llama's size.
type shape struct {
	hidden, layers, heads, kvHeads, inter, vocab int
}

var shapes = map[string]shape{
	"tinyllama": {2048, 22, 32, 4, 5632, 32000},
	"llama7b":   {4096, 32, 32, 32, 11008, 32000},
	"540m":      {2048, 8, 16, 16, 5632, 32000},
	"110m":      {768, 12, 12, 12, 2048, 32000},
}

func main() {
	name := flag.String("shape", "tinyllama", "tinyllama, llama7b, 540m or 110m")
	out := flag.String("o", "", "output model folder (required)")
	dtype := flag.String("dtype", "BF16", "F32, F16 or BF16")
	shard := flag.Int64("max-shard-bytes", 2<<30, "shard size")
	adapter := flag.String("adapter", "", "also write a random PEFT LoRA on q_proj and v_proj here")
	rank := flag.Int("r", 16, "adapter rank")
	vocab := flag.Int("vocab", 0, "vocabulary size instead of the shape's (to match -tokenizer)")
	tok := flag.String("tokenizer", "", "copy tokenizer.json and tokenizer_config.json from this folder (a 32000-token Llama tokenizer)")
	flag.Parse()
	s, ok := shapes[*name]
	if !ok || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if *vocab > 0 {
		s.vocab = *vocab
	}
	dt, err := tensor.ParseDType(*dtype)
	if err != nil {
		fail(err)
	}
	if err := writeModel(*out, s, dt, *shard); err != nil {
		fail(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json", "tokenizer.model"} {
		if *tok == "" {
			break
		}
		raw, err := os.ReadFile(filepath.Join(*tok, f))
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(*out, f), raw, 0o666); err != nil {
			fail(err)
		}
	}
	if *adapter != "" {
		if err := writeAdapter(*adapter, s, *rank); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bigmodel:", err)
	os.Exit(1)
}

func writeModel(dir string, s shape, dt tensor.DType, shard int64) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	headDim := s.hidden / s.heads
	cfg := map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama",
		"hidden_size": s.hidden, "intermediate_size": s.inter, "num_hidden_layers": s.layers,
		"num_attention_heads": s.heads, "num_key_value_heads": s.kvHeads, "vocab_size": s.vocab,
		"rms_norm_eps": 1e-5, "max_position_embeddings": 2048, "rope_theta": 10000.0,
		"tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2,
		"torch_dtype": map[tensor.DType]string{tensor.F32: "float32", tensor.F16: "float16", tensor.BF16: "bfloat16"}[dt],
	}
	raw, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o666); err != nil {
		return err
	}
	var descs []safetensors.Descriptor
	add := func(name string, shape ...int) {
		descs = append(descs, safetensors.Descriptor{Name: name, DType: dt, Shape: shape})
	}
	add("model.embed_tokens.weight", s.vocab, s.hidden)
	kv := s.kvHeads * headDim
	for l := 0; l < s.layers; l++ {
		p := "model.layers." + strconv.Itoa(l) + "."
		add(p+"input_layernorm.weight", s.hidden)
		add(p+"self_attn.q_proj.weight", s.hidden, s.hidden)
		add(p+"self_attn.k_proj.weight", kv, s.hidden)
		add(p+"self_attn.v_proj.weight", kv, s.hidden)
		add(p+"self_attn.o_proj.weight", s.hidden, s.hidden)
		add(p+"post_attention_layernorm.weight", s.hidden)
		add(p+"mlp.gate_proj.weight", s.inter, s.hidden)
		add(p+"mlp.up_proj.weight", s.inter, s.hidden)
		add(p+"mlp.down_proj.weight", s.hidden, s.inter)
	}
	add("model.norm.weight", s.hidden)
	add("lm_head.weight", s.vocab, s.hidden)
	w, err := safetensors.CreateSharded(dir, "model", descs, map[string]string{"format": "pt"}, shard)
	if err != nil {
		return err
	}
	buf := make([]float32, 1<<20)
	var key uint64 = 0x5eed
	for _, d := range descs {
		n := tensor.NumElements(d.Shape)
		norm := len(d.Shape) == 1
		for lo := 0; lo < n; lo += len(buf) {
			b := buf[:min(len(buf), n-lo)]
			fill(b, &key, norm)
			if err := w.WriteFloat32(b); err != nil {
				_ = w.Abort()
				return err
			}
		}
	}
	return w.Close()
}

// fill writes uniform values of standard deviation 0.02 (1 + that for
// norms) from a splitmix64 stream.
func fill(v []float32, key *uint64, norm bool) {
	const amp = 0.02 * 1.7320508 // uniform on [-a, a] has sd a/sqrt(3)
	for i := range v {
		*key += 0x9E3779B97F4A7C15
		z := *key
		z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
		z = (z ^ z>>27) * 0x94D049BB133111EB
		z ^= z >> 31
		x := float32(int64(z>>40)*2-(1<<24)) / (1 << 24) * amp
		if norm {
			x += 1
		}
		v[i] = x
	}
}

func writeAdapter(dir string, s shape, r int) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	cfg := map[string]any{
		"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 2 * r, "lora_dropout": 0.0,
		"target_modules": []string{"q_proj", "v_proj"}, "bias": "none", "fan_in_fan_out": false,
		"base_model_name_or_path": "random-" + strconv.Itoa(s.hidden),
	}
	raw, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), raw, 0o666); err != nil {
		return err
	}
	kv := s.kvHeads * (s.hidden / s.heads)
	var ts []tensor.Tensor
	key := uint64(0xada)
	for l := 0; l < s.layers; l++ {
		for _, m := range []struct {
			name string
			out  int
		}{{"q_proj", s.hidden}, {"v_proj", kv}} {
			p := fmt.Sprintf("base_model.model.model.layers.%d.self_attn.%s.", l, m.name)
			a := make([]float32, r*s.hidden)
			b := make([]float32, m.out*r)
			fill(a, &key, false)
			fill(b, &key, false)
			scale(a, 1/math.Sqrt(float64(s.hidden))/0.02)
			ad, _ := tensor.FromFloat32(tensor.F32, a)
			bd, _ := tensor.FromFloat32(tensor.F32, b)
			ts = append(ts, tensor.Tensor{Name: p + "lora_A.weight", DType: tensor.F32, Shape: []int{r, s.hidden}, Data: ad},
				tensor.Tensor{Name: p + "lora_B.weight", DType: tensor.F32, Shape: []int{m.out, r}, Data: bd})
		}
	}
	return safetensors.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), ts, nil)
}

func scale(v []float32, s float64) {
	for i := range v {
		v[i] *= float32(s)
	}
}
