// Command mkllama writes a random Llama checkpoint (a Hugging Face folder)
// and a random PEFT LoRA adapter for it, for benchmarks of loading, merging
// and converting at realistic sizes.
//
//	go run ./tools/mkllama -o /tmp/llama1g -adapter /tmp/llama1g-lora
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
	"github.com/surgeon-ml/surgeon/formats/peft"
)

func main() {
	out := flag.String("o", "", "output model folder")
	adapter := flag.String("adapter", "", "also write a random LoRA adapter (r=16 on q,v) here")
	hidden := flag.Int("hidden", 2048, "hidden size")
	inter := flag.Int("inter", 5632, "intermediate size")
	layers := flag.Int("layers", 3, "layers")
	vocab := flag.Int("vocab", 32000, "vocabulary")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "mkllama: -o is required")
		os.Exit(2)
	}
	cfg := fmt.Sprintf(`{"model_type":"llama","architectures":["LlamaForCausalLM"],"hidden_size":%d,"intermediate_size":%d,
		"num_hidden_layers":%d,"num_attention_heads":16,"num_key_value_heads":16,"vocab_size":%d,"rms_norm_eps":1e-5}`, *hidden, *inter, *layers, *vocab)
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
