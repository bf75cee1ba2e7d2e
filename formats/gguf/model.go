package gguf

import (
	"fmt"
	"iter"
	"math"
	"strconv"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// ModelConfig returns the Hugging Face config (the contents of a
// config.json) of a GGUF model of any architecture Architectures lists:
// model_type and architectures name the family (llama, qwen2, qwen3,
// gemma, gemma2, phi3, gpt2) and the hyper-parameters come from the
// <arch>.* metadata keys. vocab_size comes from the token_embd.weight
// rows, else from the tokenizer's token list; tie_word_embeddings is true
// when the file has no output.weight, as llama.cpp then reuses the
// embedding (Gemma's LM head is always the embedding).
func ModelConfig(f *File) (map[string]any, error) {
	h, err := f.fileHParams()
	if err != nil {
		return nil, err
	}
	return f.modelConfig(h)
}

func (f *File) modelConfig(h hparams) (map[string]any, error) {
	a := h.arch
	vocab := 0
	if ti, ok := f.TensorInfo("token_embd.weight"); ok && len(ti.Dims) == 2 {
		vocab = int(ti.Dims[1])
	} else if toks, err := f.Array("tokenizer.ggml.tokens"); err == nil {
		vocab = toks.Len()
	} else if f.Has(a.name + ".vocab_size") {
		if vocab, err = f.positiveInt(a.name + ".vocab_size"); err != nil {
			return nil, err
		}
	}
	if vocab == 0 {
		return nil, fmt.Errorf("%s: cannot tell the vocabulary size: no token_embd.weight, tokenizer.ggml.tokens or %s.vocab_size", f.name, a.name)
	}
	_, hasOutput := f.TensorInfo("output.weight")
	cfg := map[string]any{
		"architectures":           []string{a.hfClass},
		"model_type":              a.name,
		"hidden_size":             h.hidden,
		"intermediate_size":       h.ffn,
		"num_hidden_layers":       h.layers,
		"num_attention_heads":     h.heads,
		"num_key_value_heads":     h.kvHeads,
		"head_dim":                h.headDim,
		"rms_norm_eps":            h.eps,
		"rope_theta":              h.ropeTheta,
		"vocab_size":              vocab,
		"max_position_embeddings": h.ctx,
		"tie_word_embeddings":     !hasOutput || a.alwaysTied,
		"hidden_act":              "silu",
		"attention_bias":          false,
		"mlp_bias":                false,
		"torch_dtype":             "float32",
	}
	if err := a.config(f, h, cfg); err != nil {
		return nil, err
	}
	if !a.conv1D {
		if err := f.ropeScalingConfig(a, cfg); err != nil {
			return nil, err
		}
	}
	for _, k := range []struct{ gguf, hf string }{
		{"tokenizer.ggml.bos_token_id", "bos_token_id"},
		{"tokenizer.ggml.eos_token_id", "eos_token_id"},
		{"tokenizer.ggml.padding_token_id", "pad_token_id"},
	} {
		id, ok, err := f.tokenID(k.gguf)
		if err != nil {
			return nil, err
		}
		if ok && id < vocab {
			cfg[k.hf] = id
		}
	}
	return cfg, nil
}

// HFTensorName returns the Hugging Face name and shape (row-major, as a
// Hugging Face checkpoint stores it) of the file's tensor called name,
// without reading its data; ok is false for a tensor the architecture does
// not map.
func HFTensorName(f *File, name string) (hf string, shape []int, ok bool, err error) {
	h, err := f.fileHParams()
	if err != nil {
		return "", nil, false, err
	}
	ti, found := f.TensorInfo(name)
	if !found {
		return "", nil, false, fmt.Errorf("%s: no tensor %q", f.name, name)
	}
	if hf, ok = h.arch.hfName(name); !ok {
		return "", nil, false, nil
	}
	shape = ti.Shape()
	if h.arch.transposed(name, len(shape)) {
		shape[0], shape[1] = shape[1], shape[0]
	}
	return hf, shape, true, nil
}

// ModelTensorSeq yields the tensors of a GGUF model under Hugging Face
// names and layouts, in file order: float32 data (quantized tensors
// dequantized as ggml does), row-major shapes, and llama.cpp's converter
// undone: Llama's q/k rows un-permuted from the interleaved rotary layout
// (UnpermuteQK), Gemma's norm weights less one, GPT-2's Conv1D weights
// transposed back to [in, out]. Data of F32 tensors that need none of
// that aliases the file (valid until Close); every other tensor gets new
// memory. Iteration stops at the first error, which is yielded.
func ModelTensorSeq(f *File) iter.Seq2[tensor.Tensor, error] {
	return func(yield func(tensor.Tensor, error) bool) {
		h, err := f.fileHParams()
		if err != nil {
			yield(tensor.Tensor{}, err)
			return
		}
		for i := range f.tensors {
			if ConfigTensor(f, f.tensors[i].Name) {
				continue
			}
			t, err := f.modelTensor(&f.tensors[i], h)
			if !yield(t, err) || err != nil {
				return
			}
		}
	}
}

// ModelTensors returns all tensors of a GGUF model under Hugging Face
// names and layouts; see ModelTensorSeq.
func ModelTensors(f *File) ([]tensor.Tensor, error) {
	out := make([]tensor.Tensor, 0, len(f.tensors))
	for t, err := range ModelTensorSeq(f) {
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// ModelTensor returns the GGUF model's tensor called name (its GGUF name)
// under its Hugging Face name and layout, as ModelTensorSeq does: one
// tensor at a time, for loaders that keep the others where they are.
func ModelTensor(f *File, name string) (tensor.Tensor, error) {
	i, ok := f.byName[name]
	if !ok {
		return tensor.Tensor{}, fmt.Errorf("%s: no tensor %q", f.name, name)
	}
	h, err := f.fileHParams()
	if err != nil {
		return tensor.Tensor{}, err
	}
	return f.modelTensor(&f.tensors[i], h)
}

// WeightInto decodes the GGUF model's linear weight called name (its GGUF
// name) into dst in the layer's [out, in] layout, dequantizing straight
// into dst and undoing Llama's q/k permutation: the fill of a weight kept
// quantized, which runs for every product. GPT-2's Conv1D weights are
// [out, in] in GGUF already, so they are not transposed here.
func WeightInto(f *File, name string, dst []float32) error {
	i, ok := f.byName[name]
	if !ok {
		return fmt.Errorf("%s: no tensor %q", f.name, name)
	}
	ti := &f.tensors[i]
	if uint64(len(dst)) != ti.NumElements() {
		return fmt.Errorf("%s: tensor %q has %d elements, the destination %d", f.name, name, ti.NumElements(), len(dst))
	}
	var order []int // the q/k rows' Hugging Face order, if permuted
	if cols := int(ti.Dims[0]); cols > 0 {
		var err error
		if order, err = f.qkOrder(name, len(dst)/cols); err != nil {
			return err
		}
	}
	if ti.Type.Dequantizable() || ti.Type.Quantized() {
		data, err := f.TensorData(name)
		if err != nil {
			return err
		}
		if err := Dequantize(ti.Type, dst, data); err != nil {
			return fmt.Errorf("%s: tensor %q: %w", f.name, name, err)
		}
	} else {
		t, err := f.Tensor(name)
		if err != nil {
			return err
		}
		if err := tensor.ToFloat32(dst, t.DType, t.Data); err != nil {
			return fmt.Errorf("%s: tensor %q: %w", f.name, name, err)
		}
	}
	if order != nil {
		reorderRows(dst, int(ti.Dims[0]), order)
	}
	return nil
}

// hfName returns the Hugging Face name of the model tensor ti, or an
// error when it has none or lies in a block past block_count.
func (f *File) hfName(ti *TensorInfo, h hparams) (string, error) {
	a := h.arch
	hf, ok := a.hfName(ti.Name)
	if !ok {
		return "", fmt.Errorf("%s: tensor %q has no Hugging Face %s equivalent", f.name, ti.Name, a.display)
	}
	if num, _, ok := splitBlock(ti.Name); ok {
		if n, _ := strconv.Atoi(num); n >= h.layers {
			return "", fmt.Errorf("%s: tensor %q: block %d but %s.block_count is %d", f.name, ti.Name, n, a.name, h.layers)
		}
	}
	return hf, nil
}

// modelInfo returns the model tensor called name (its GGUF name), the
// file's hyperparameters and the tensor's Hugging Face name.
func (f *File) modelInfo(name string) (*TensorInfo, hparams, string, error) {
	i, ok := f.byName[name]
	if !ok {
		return nil, hparams{}, "", fmt.Errorf("%s: no tensor %q", f.name, name)
	}
	ti := &f.tensors[i]
	h, err := f.fileHParams()
	if err != nil {
		return nil, hparams{}, "", err
	}
	hf, err := f.hfName(ti, h)
	if err != nil {
		return nil, hparams{}, "", err
	}
	return ti, h, hf, nil
}

// ModelTensorInto decodes the GGUF model's tensor called name (its GGUF
// name) into dst, with the values and layout ModelTensor gives it, but
// straight into dst: a loader that has the parameter's memory avoids the
// float32 copies in between (three of a quantized embedding, which is
// the largest tensor a QLoRA run reads). dst must hold exactly the
// tensor's elements.
func ModelTensorInto(f *File, name string, dst []float32) error {
	ti, h, hf, err := f.modelInfo(name)
	if err != nil {
		return err
	}
	if h.arch.transposed(ti.Name, len(ti.Dims)) {
		// Rare (GPT-2's Conv1D weights): through a copy.
		if uint64(len(dst)) != ti.NumElements() {
			return fmt.Errorf("%s: tensor %q has %d elements, the destination %d", f.name, name, ti.NumElements(), len(dst))
		}
		t, err := f.modelTensor(ti, h)
		if err != nil {
			return err
		}
		return tensor.ToFloat32(dst, t.DType, t.Data)
	}
	// WeightInto checks dst's length, dequantizes or converts into it and
	// puts permuted q/k rows back, as modelTensor does.
	if err := WeightInto(f, name, dst); err != nil {
		return err
	}
	if h.arch.offsetNorm(hf) {
		for i := range dst {
			dst[i]--
		}
	}
	return nil
}

func (f *File) modelTensor(ti *TensorInfo, h hparams) (tensor.Tensor, error) {
	a := h.arch
	hf, err := f.hfName(ti, h)
	if err != nil {
		return tensor.Tensor{}, err
	}
	var t tensor.Tensor
	if ti.Type == TypeF32 {
		if t, err = f.Tensor(ti.Name); err != nil {
			return tensor.Tensor{}, err
		}
	} else {
		// Everything else, quantized blocks included, is dequantized to
		// float32 in new memory.
		v, shape, err := f.Float32(ti.Name)
		if err != nil {
			return tensor.Tensor{}, err
		}
		if t.Data, err = tensor.FromFloat32(tensor.F32, v); err != nil {
			return tensor.Tensor{}, fmt.Errorf("%s: tensor %q: %w", f.name, ti.Name, err)
		}
		t.Name, t.DType, t.Shape = ti.Name, tensor.F32, shape
	}
	if nHead := h.qkHeads(ti.Name); nHead > 0 {
		if t, err = UnpermuteQK(t, nHead); err != nil {
			return tensor.Tensor{}, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if a.offsetNorm(hf) || a.transposed(ti.Name, len(t.Shape)) {
		v, err := t.Float32() // a copy: the file's bytes stay untouched
		if err != nil {
			return tensor.Tensor{}, fmt.Errorf("%s: tensor %q: %w", f.name, ti.Name, err)
		}
		shape := append([]int(nil), t.Shape...)
		if a.offsetNorm(hf) {
			for i := range v {
				v[i]--
			}
		} else {
			rows, cols := shape[0], shape[1]
			tr := make([]float32, len(v))
			for r := range rows {
				for c := range cols {
					tr[c*rows+r] = v[r*cols+c]
				}
			}
			v, shape = tr, []int{cols, rows}
		}
		data, err := tensor.FromFloat32(tensor.F32, v)
		if err != nil {
			return tensor.Tensor{}, fmt.Errorf("%s: tensor %q: %w", f.name, ti.Name, err)
		}
		t = tensor.Tensor{DType: tensor.F32, Shape: shape, Data: data}
	}
	t.Name = hf
	return t, nil
}

// ropeScalingConfig reads llama.cpp's rope scaling keys into the config:
// linear scaling (rope.scaling.type "linear", llama.cpp's default type,
// with rope.scaling.factor or the older rope.scale_linear) becomes
// rope_scaling {"rope_type": "linear", "factor": f}; another type with a
// factor is refused.
func (f *File) ropeScalingConfig(a *arch, cfg map[string]any) error {
	p := a.name + "."
	if ConfigTensor(f, RopeFreqsTensor) {
		if _, ok := f.TensorInfo(RopeFreqsTensor); ok {
			return f.llama3Config(p, cfg)
		}
	}
	typ := "linear"
	if f.Has(p + "rope.scaling.type") {
		var err error
		if typ, err = f.String(p + "rope.scaling.type"); err != nil {
			return err
		}
	}
	factor := 0.0
	for _, k := range []string{"rope.scaling.factor", "rope.scale_linear"} {
		if f.Has(p + k) {
			var err error
			if factor, err = f.decimalFloat(p + k); err != nil {
				return err
			}
			break
		}
	}
	switch {
	case typ == "none" || factor == 0 || factor == 1 && typ == "linear":
		return nil
	case typ != "linear":
		return fmt.Errorf("%s: %srope.scaling.type %q is not supported (only linear)", f.name, p, typ)
	case !(factor > 0) || math.IsInf(factor, 0):
		return fmt.Errorf("%s: %srope.scaling.factor %v is not a positive number", f.name, p, factor)
	}
	cfg["rope_scaling"] = map[string]any{"rope_type": "linear", "factor": factor}
	return nil
}

// llama3Config sets rope_scaling llama3 from the factors of
// RopeFreqsTensor (see llama3Scaling).
func (f *File) llama3Config(p string, cfg map[string]any) error {
	if f.Has(p + "rope.scaling.type") {
		if typ, _ := f.String(p + "rope.scaling.type"); typ != "none" {
			return fmt.Errorf("%s: both %s and %srope.scaling.type %q scale the rotary embedding", f.name, RopeFreqsTensor, p, typ)
		}
	}
	factors, _, err := f.Float32(RopeFreqsTensor)
	if err != nil {
		return err
	}
	orig := 8192.0 // Llama 3.1's, which the factors cannot tell
	if f.Has(p + "rope.scaling.original_context_length") {
		n, err := f.positiveInt(p + "rope.scaling.original_context_length")
		if err != nil {
			return err
		}
		orig = float64(n)
	}
	dim, _ := cfg["head_dim"].(int)
	theta, _ := cfg["rope_theta"].(float64)
	rs, err := llama3Scaling(theta, dim, factors, orig)
	if err != nil {
		return fmt.Errorf("%s: %w", f.name, err)
	}
	if rs != nil {
		cfg["rope_scaling"] = rs
	}
	return nil
}
