package gguf

import (
	"fmt"
	"strings"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// FileTypes maps the --type names of `surgeon convert --to gguf` to the
// ggml type of 2-D weights and llama.cpp's general.file_type number.
var FileTypes = map[string]struct {
	Type     GGMLType
	FileType uint32
}{
	"f32":  {TypeF32, 0},
	"f16":  {TypeF16, 1},
	"q4_0": {TypeQ4_0, 2},
	"q4_1": {TypeQ4_1, 3},
	"q8_0": {TypeQ8_0, 7},
	"q5_0": {TypeQ5_0, 8},
	"q5_1": {TypeQ5_1, 9},
	"q4_k": {TypeQ4_K, 15}, // LLAMA_FTYPE_MOSTLY_Q4_K_M's number; every matrix is Q4_K here
	"q5_k": {TypeQ5_K, 17},
	"q6_k": {TypeQ6_K, 18},
	"bf16": {TypeBF16, 32},
}

// ModelWrite describes a model to write as a llama.cpp GGUF file.
type ModelWrite struct {
	// Config is the Hugging Face config.json of a causal LM of a family
	// Architectures lists (model_type llama, qwen2, qwen3, gemma, gemma2,
	// phi3 or gpt2).
	Config map[string]any
	// Type names the type of the 2-D weights (a FileTypes key). Vectors
	// (norm weights, biases) stay F32, and rows whose length does not
	// divide into the type's blocks fall back to F16 as llama.cpp's
	// quantizer does.
	Type string
	// Name is general.name.
	Name string
	// Tokenizer holds the tokenizer.ggml.* metadata.
	Tokenizer []KV
}

// LlamaWrite describes a Llama model to write as a llama.cpp GGUF file;
// it is ModelWrite.
type LlamaWrite = ModelWrite

// LlamaGGUFName maps a Hugging Face Llama tensor name to llama.cpp's.
func LlamaGGUFName(hf string) (string, bool) {
	return archs["llama"].ggufName(hf)
}

func cfgInt(c map[string]any, key string) (int, error) {
	switch v := c[key].(type) {
	case int:
		return v, nil
	case float64:
		return int(v), nil
	case int64:
		return int(v), nil
	}
	return 0, fmt.Errorf("config: %s missing or not a number", key)
}

func cfgFloat(c map[string]any, key string, def float64) float64 {
	switch v := c[key].(type) {
	case float64:
		return v
	case int:
		return float64(v)
	}
	return def
}

// WriteLlama writes a Llama model as a llama.cpp GGUF file: llama.*
// hyper-parameters, general.file_type, the tokenizer metadata, and the
// tensors under llama.cpp's names with q and k permuted to GGUF's
// interleaved rotary layout (PermuteQK), converted to o.Type. tensors
// holds the model's parameters under Hugging Face names (any float dtype).
func WriteLlama(path string, o LlamaWrite, tensors []tensor.Tensor) error {
	if _, ok := FileTypes[strings.ToLower(o.Type)]; ok {
		if mt, _ := o.Config["model_type"].(string); mt != "llama" {
			return fmt.Errorf("%s: writing GGUF supports Llama models, not model_type %q", path, mt)
		}
	}
	return WriteModel(path, o, tensors)
}

// LoRAModule is one module of a LoRA adapter to write for llama.cpp: the
// Hugging Face module path ("model.layers.0.self_attn.q_proj"), A [r, in]
// and B [out, r] row-major, and the scale of its update (s B A).
type LoRAModule struct {
	Module  string
	A, B    []float32
	R       int
	In, Out int
	Scale   float64
}

// WriteLlamaLoRA writes a LoRA adapter of a Llama model in llama.cpp's
// adapter GGUF format; it is WriteLoRA, which writes the other
// architectures too.
func WriteLlamaLoRA(path string, cfg map[string]any, name string, mods []LoRAModule) error {
	if mt, _ := cfg["model_type"].(string); mt != "llama" {
		return fmt.Errorf("%s: llama.cpp LoRA adapters are written for Llama bases, not model_type %q", path, mt)
	}
	return WriteLoRA(path, cfg, name, mods)
}

// WriteLoRA writes a LoRA adapter in llama.cpp's adapter GGUF format for
// a base of any family WriteModel writes: general.architecture of the
// base, general.type "adapter", adapter.type "lora", adapter.lora.alpha,
// and tensors "<base tensor>.lora_a" (ne [in, r]) and ".lora_b" (ne
// [r, out]), F32, with the rows of B permuted like the base q and k
// weights where the architecture permutes them (llama). In and Out are the
// layer's, so GPT-2's Conv1D modules need no transposition: llama.cpp
// holds their base weights [out, in]. llama.cpp scales each module by
// alpha/r (by 1 when alpha is 0): when every module's scale times its rank
// is the same number, that number is alpha; otherwise alpha is 0 and each
// B carries its scale. cfg is the base model's Hugging Face config.
func WriteLoRA(path string, cfg map[string]any, name string, mods []LoRAModule) error {
	a, err := archForModelType(path, cfg)
	if err != nil {
		return err
	}
	heads, kvHeads := 0, 0
	if a.permuteQK {
		if heads, err = cfgInt(cfg, "num_attention_heads"); err != nil {
			return err
		}
		if kvHeads, err = cfgInt(cfg, "num_key_value_heads"); err != nil {
			kvHeads = heads
		}
	}
	if len(mods) == 0 {
		return fmt.Errorf("%s: no LoRA modules to write", path)
	}
	alpha := mods[0].Scale * float64(mods[0].R)
	for _, m := range mods {
		if d := m.Scale*float64(m.R) - alpha; d > 1e-9*alpha || d < -1e-9*alpha {
			alpha = 0
			break
		}
	}
	kvs := []KV{
		{"general.architecture", a.name},
		{"general.type", "adapter"},
		{"general.name", name},
		{"adapter.type", "lora"},
		{"adapter.lora.alpha", float32(alpha)},
	}
	var ts []WriteTensor
	for _, m := range mods {
		base, ok := a.ggufName(m.Module + ".weight")
		if !ok {
			return fmt.Errorf("%s: module %q has no llama.cpp tensor", path, m.Module)
		}
		if len(m.A) != m.R*m.In || len(m.B) != m.Out*m.R {
			return fmt.Errorf("%s: module %q: A of %d and B of %d values for rank %d, [%d,%d]", path, m.Module, len(m.A), len(m.B), m.R, m.Out, m.In)
		}
		b := append([]float32(nil), m.B...)
		if alpha == 0 {
			for i := range b {
				b[i] = float32(float64(b[i]) * m.Scale)
			}
		}
		bt := tensor.Tensor{Name: m.Module + ".lora_B", DType: tensor.F32, Shape: []int{m.Out, m.R}}
		if bt.Data, err = tensor.FromFloat32(tensor.F32, b); err != nil {
			return err
		}
		switch {
		case a.permuteQK && strings.HasSuffix(base, ".attn_q.weight"):
			bt, err = PermuteQK(bt, heads)
		case a.permuteQK && strings.HasSuffix(base, ".attn_k.weight"):
			bt, err = PermuteQK(bt, kvHeads)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		stem := strings.TrimSuffix(base, ".weight")
		ad, _ := Quantize(TypeF32, m.A)
		ts = append(ts, WriteTensor{Name: stem + ".weight.lora_a", Shape: []int{m.R, m.In}, Type: TypeF32, Data: ad},
			WriteTensor{Name: stem + ".weight.lora_b", Shape: []int{m.Out, m.R}, Type: TypeF32, Data: bt.Data})
	}
	return Write(path, kvs, ts)
}
