package gguf

import (
	"fmt"
	"sort"
	"strings"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// LoRA is a llama.cpp LoRA adapter GGUF read back under Hugging Face
// names: what WriteLlamaLoRA writes, and what llama.cpp's
// convert_lora_to_gguf.py makes of a PEFT adapter.
type LoRA struct {
	// Arch is the base model's general.architecture.
	Arch string
	// Alpha is adapter.lora.alpha; 0 means llama.cpp scales every module
	// by 1.
	Alpha float64
	// Modules are the adapted modules in name order. A is [R, In] and B
	// [Out, R], row-major, in Hugging Face's layout (q/k rows un-permuted);
	// Scale is what llama.cpp multiplies B A by: Alpha/R, or 1 when Alpha
	// is 0.
	Modules []LoRAModule
	// Tensors are the GGUF names of the modules' base weights, in the
	// order of Modules ("blk.0.attn_q.weight").
	Tensors []string
}

// ReadLoRA reads the llama.cpp LoRA adapter GGUF at path for a base model
// of Hugging Face config base (its model_type and head counts), of any
// architecture Architectures lists (what WriteLoRA writes). Every
// tensor must be a "<base tensor>.lora_a" / ".lora_b" pair of a linear
// weight the base architecture has; errors name the file and the tensor.
func ReadLoRA(path string, base map[string]any) (*LoRA, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if typ, err := f.String("general.type"); err != nil || typ != "adapter" {
		return nil, fmt.Errorf("%s: not a llama.cpp adapter (general.type is %q, want \"adapter\")", path, typ)
	}
	if typ, err := f.String("adapter.type"); err != nil || typ != "lora" {
		return nil, fmt.Errorf("%s: adapter.type is %q; only \"lora\" adapters are read", path, typ)
	}
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ar, err := lookupArch(arch)
	if err != nil {
		return nil, fmt.Errorf("%s: LoRA adapter: %w", path, err)
	}
	if ba, err := archForModelType(path, base); err != nil || ba != ar {
		mt, _ := base["model_type"].(string)
		return nil, fmt.Errorf("%s: a LoRA adapter of a %s model cannot apply to a base of model_type %q", path, arch, mt)
	}
	l := &LoRA{Arch: arch}
	if f.Has("adapter.lora.alpha") {
		if l.Alpha, err = f.Float("adapter.lora.alpha"); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	heads, kvHeads := 0, 0
	if ar.permuteQK {
		if heads, err = cfgInt(base, "num_attention_heads"); err != nil {
			return nil, fmt.Errorf("%s: base config: %w", path, err)
		}
		if kvHeads, err = cfgInt(base, "num_key_value_heads"); err != nil {
			kvHeads = heads
		}
	}

	stems := map[string]bool{}
	for _, ti := range f.Tensors() {
		stem, ok := strings.CutSuffix(ti.Name, ".lora_a")
		if !ok {
			stem, ok = strings.CutSuffix(ti.Name, ".lora_b")
		}
		if !ok {
			return nil, fmt.Errorf("%s: tensor %s: neither a .lora_a nor a .lora_b tensor", path, ti.Name)
		}
		stems[stem] = true
	}
	for stem := range stems {
		for _, suffix := range []string{".lora_a", ".lora_b"} {
			if _, ok := f.TensorInfo(stem + suffix); !ok {
				return nil, fmt.Errorf("%s: tensor %s: the LoRA pair of base tensor %s lacks %s", path, stem, stem, stem+suffix)
			}
		}
	}
	if len(stems) == 0 {
		return nil, fmt.Errorf("%s: the adapter holds no tensors", path)
	}
	names := make([]string, 0, len(stems))
	for s := range stems {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, stem := range names {
		hf, ok := ar.hfName(stem)
		if !ok {
			return nil, fmt.Errorf("%s: tensor %s.lora_a: base tensor %s is not a tensor of a %s model", path, stem, stem, arch)
		}
		module, ok := strings.CutSuffix(hf, ".weight")
		if !ok || !strings.HasPrefix(hf, ar.blockPrefix) || strings.HasSuffix(stem, "norm.weight") {
			return nil, fmt.Errorf("%s: tensor %s.lora_a: base tensor %s (%s) is not a linear layer's weight", path, stem, stem, hf)
		}
		a, as, err := f.Float32(stem + ".lora_a")
		if err != nil {
			return nil, err
		}
		b, bs, err := f.Float32(stem + ".lora_b")
		if err != nil {
			return nil, err
		}
		if len(as) != 2 || len(bs) != 2 || as[0] != bs[1] || as[0] == 0 {
			return nil, fmt.Errorf("%s: tensor %s: lora_a of shape %v and lora_b of shape %v do not form a low-rank pair ([r, in] and [out, r])", path, stem, as, bs)
		}
		r := as[0]
		m := LoRAModule{Module: module, A: a, R: r, In: as[1], Out: bs[0], Scale: 1}
		if l.Alpha != 0 {
			m.Scale = l.Alpha / float64(r)
		}
		bt := tensor.Tensor{Name: stem + ".lora_b", DType: tensor.F32, Shape: []int{m.Out, r}}
		if bt.Data, err = tensor.FromFloat32(tensor.F32, b); err != nil {
			return nil, err
		}
		switch {
		case ar.permuteQK && strings.HasSuffix(stem, ".attn_q.weight"):
			bt, err = UnpermuteQK(bt, heads)
		case ar.permuteQK && strings.HasSuffix(stem, ".attn_k.weight"):
			bt, err = UnpermuteQK(bt, kvHeads)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if m.B, err = bt.Float32(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		l.Modules = append(l.Modules, m)
		l.Tensors = append(l.Tensors, stem)
	}
	return l, nil
}
