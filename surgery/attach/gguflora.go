package attach

import (
	"context"
	"fmt"
	"os"
	"sort"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/gguf"
	"github.com/surgeon-ml/surgeon/formats/peft"
)

// IsGGUF reports whether path is a file that starts with GGUF's magic.
func IsGGUF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	if _, err := f.Read(magic[:]); err != nil {
		return false
	}
	return string(magic[:]) == "GGUF"
}

// GGUFLoRA reads a llama.cpp LoRA adapter GGUF as the PEFT LoRA adapter
// of base model m: the same modules, A and B, and scales (lora_alpha / r,
// with rank_pattern and alpha_pattern where modules differ). Tensors whose
// base weight m lacks, or whose shapes do not fit it, are refused, naming
// the file and the tensor.
func GGUFLoRA(path string, m model.Model) (*peft.Adapter, error) {
	l, err := gguf.ReadLoRA(path, m.HFConfig())
	if err != nil {
		return nil, err
	}
	linears := layer.Linears(m)
	for i, mod := range l.Modules {
		lin, ok := linears[mod.Module]
		if !ok {
			return nil, fmt.Errorf("%s: tensor %s.lora_a: the model has no base tensor %s (%s.weight)", path, l.Tensors[i], l.Tensors[i], mod.Module)
		}
		if lin.In() != mod.In || lin.Out() != mod.Out {
			return nil, fmt.Errorf("%s: tensor %s: lora_a and lora_b make a [%d, %d] update, but %s.weight is [%d, %d]",
				path, l.Tensors[i], mod.Out, mod.In, mod.Module, lin.Out(), lin.In())
		}
	}
	// The most common rank and scale become r and lora_alpha; the others
	// go to the patterns, by full module path.
	count := map[[2]float64]int{}
	for _, m := range l.Modules {
		count[[2]float64{float64(m.R), m.Scale}]++
	}
	var common [2]float64
	best := 0
	for k, n := range count {
		if n > best || n == best && (k[0] < common[0] || k[0] == common[0] && k[1] < common[1]) {
			common, best = k, n
		}
	}
	r, scale := int(common[0]), common[1]
	a := &peft.Adapter{
		Config: peft.Config{
			PeftType:  "LORA",
			TaskType:  "CAUSAL_LM",
			R:         r,
			LoraAlpha: scale * float64(r),
		},
		Modules: map[string]map[string]tensor.Tensor{},
	}
	var targets []string
	for _, m := range l.Modules {
		targets = append(targets, m.Module)
		if m.R != r {
			if a.Config.RankPattern == nil {
				a.Config.RankPattern = map[string]int{}
			}
			a.Config.RankPattern[m.Module] = m.R
		}
		if alpha := m.Scale * float64(m.R); alpha != a.Config.LoraAlpha {
			if a.Config.AlphaPattern == nil {
				a.Config.AlphaPattern = map[string]float64{}
			}
			a.Config.AlphaPattern[m.Module] = alpha
		}
		at, err := f32Tensor(m.Module+".lora_A.weight", []int{m.R, m.In}, m.A)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		bt, err := f32Tensor(m.Module+".lora_B.weight", []int{m.Out, m.R}, m.B)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		a.Modules[m.Module] = map[string]tensor.Tensor{"lora_A.weight": at, "lora_B.weight": bt}
	}
	sort.Strings(targets)
	a.Config.TargetModules = targets
	return a, nil
}

func f32Tensor(name string, shape []int, v []float32) (tensor.Tensor, error) {
	data, err := tensor.FromFloat32(tensor.F32, v)
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("%s: %w", name, err)
	}
	return tensor.Tensor{Name: name, DType: tensor.F32, Shape: shape, Data: data}, nil
}

// readAdapter reads a saved adapter for model m: a PEFT folder, or a
// llama.cpp LoRA adapter GGUF file.
func readAdapter(ctx context.Context, s Store, m model.Model, path string) (*peft.Adapter, []Target, error) {
	if !IsGGUF(path) {
		return Read(ctx, s, path)
	}
	a, err := GGUFLoRA(path, m)
	if err != nil {
		return nil, nil, err
	}
	targets, err := Split(ctx, s, a)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, targets, nil
}
