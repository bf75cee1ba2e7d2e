package gguf

import (
	"fmt"
	"iter"
	"strconv"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// llamaHParams reads the hyper-parameters of a file whose
// general.architecture must be "llama".
func (f *File) llamaHParams() (hparams, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return hparams{}, err
	}
	if arch != "llama" {
		return hparams{}, fmt.Errorf("%s: general.architecture is %q, want \"llama\"", f.name, arch)
	}
	return f.readHParams(archs["llama"])
}

// decimalFloat reads a float key; a float32 is widened through its shortest
// decimal form, so 1e-5 stored as float32 reads 1e-05, not 9.99999974e-06.
func (f *File) decimalFloat(key string) (float64, error) {
	v, err := f.Value(key)
	if err != nil {
		return 0, err
	}
	if x, ok := v.v.(float32); ok {
		d, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
		return d, nil
	}
	return f.Float(key)
}

// tokenID reads an optional special-token id. Absent keys, and the values
// -1 and 0xFFFFFFFF that writers use for "none", report ok == false.
func (f *File) tokenID(key string) (id int, ok bool, err error) {
	v, err := f.Value(key)
	if err != nil {
		return 0, false, nil
	}
	x, isInt := v.AsInt()
	if !isInt {
		return 0, false, f.wrongType(key, v, "an integer token id")
	}
	if x == -1 || x == 0xFFFFFFFF {
		return 0, false, nil
	}
	if x < 0 || x > 1<<40 {
		return 0, false, fmt.Errorf("%s: metadata key %q: token id %d out of range", f.name, key, x)
	}
	return int(x), true, nil
}

// positiveInt reads an integer key that must be at least 1 and fit an int
// comfortably.
func (f *File) positiveInt(key string) (int, error) {
	u, err := f.Uint(key)
	if err != nil {
		return 0, err
	}
	if u == 0 || u > 1<<40 {
		return 0, fmt.Errorf("%s: metadata key %q: value %d out of range", f.name, key, u)
	}
	return int(u), nil
}

// LlamaConfig returns the Hugging Face LlamaConfig (the contents of a
// config.json) of a GGUF file whose general.architecture is "llama".
// vocab_size comes from the token_embd.weight rows, else from the
// tokenizer's token list; tie_word_embeddings is true when the file has no
// output.weight, as llama.cpp then reuses the embedding.
func LlamaConfig(f *File) (map[string]any, error) {
	h, err := f.llamaHParams()
	if err != nil {
		return nil, err
	}
	return f.modelConfig(h)
}

var llamaTopNames = map[string]string{
	"token_embd.weight":  "model.embed_tokens.weight",
	"output_norm.weight": "model.norm.weight",
	"output.weight":      "lm_head.weight",
}

var llamaBlockNames = map[string]string{
	"attn_norm.weight":   "input_layernorm.weight",
	"ffn_norm.weight":    "post_attention_layernorm.weight",
	"attn_q.weight":      "self_attn.q_proj.weight",
	"attn_k.weight":      "self_attn.k_proj.weight",
	"attn_v.weight":      "self_attn.v_proj.weight",
	"attn_output.weight": "self_attn.o_proj.weight",
	"ffn_gate.weight":    "mlp.gate_proj.weight",
	"ffn_up.weight":      "mlp.up_proj.weight",
	"ffn_down.weight":    "mlp.down_proj.weight",
}

// LlamaName maps a llama.cpp GGUF tensor name to its Hugging Face Llama name,
// for example "blk.3.attn_q.weight" to "model.layers.3.self_attn.q_proj.weight".
func LlamaName(name string) (string, bool) {
	return archs["llama"].hfName(name)
}

// LlamaTensorSeq yields the tensors of a llama GGUF file under Hugging Face
// names and layouts, in file order: float32 data (quantized tensors
// dequantized as ggml does), row-major shapes, and the
// q/k projections un-permuted from GGUF's interleaved rotary layout to the
// rotate-half layout (see UnpermuteQK). Data of F32 tensors that need no
// permutation aliases the file (valid until Close); every other tensor gets
// new memory. Iteration stops at the first error, which is yielded.
func LlamaTensorSeq(f *File) iter.Seq2[tensor.Tensor, error] {
	return func(yield func(tensor.Tensor, error) bool) {
		h, err := f.llamaHParams()
		if err != nil {
			yield(tensor.Tensor{}, err)
			return
		}
		for i := range f.tensors {
			t, err := f.modelTensor(&f.tensors[i], h)
			if !yield(t, err) || err != nil {
				return
			}
		}
	}
}

// LlamaTensors returns all tensors of a llama GGUF file under Hugging Face
// names and layouts; see LlamaTensorSeq.
func LlamaTensors(f *File) ([]tensor.Tensor, error) {
	out := make([]tensor.Tensor, 0, len(f.tensors))
	for t, err := range LlamaTensorSeq(f) {
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// LlamaWeightInto decodes the llama GGUF file's tensor called name (its
// GGUF name) into dst in its Hugging Face layout, as LlamaTensor does, but
// dequantizing straight into dst: the fill of a weight kept quantized,
// which runs for every product.
func LlamaWeightInto(f *File, name string, dst []float32) error {
	if _, err := f.llamaHParams(); err != nil {
		return err
	}
	return WeightInto(f, name, dst)
}

// LlamaTensor returns the llama GGUF file's tensor called name (its GGUF
// name) under its Hugging Face name and layout, as LlamaTensorSeq does:
// one tensor at a time, for loaders that keep the others where they are.
func LlamaTensor(f *File, name string) (tensor.Tensor, error) {
	i, ok := f.byName[name]
	if !ok {
		return tensor.Tensor{}, fmt.Errorf("%s: no tensor %q", f.name, name)
	}
	h, err := f.llamaHParams()
	if err != nil {
		return tensor.Tensor{}, err
	}
	return f.modelTensor(&f.tensors[i], h)
}

// PermuteQK reorders the rows of a Llama q or k projection weight [out, in]
// from Hugging Face's rotate-half rotary layout to GGUF's interleaved layout,
// head by head, as llama.cpp's converter does. nHead is the number of
// attention heads for q and of key-value heads for k. Any dtype is accepted;
// the result has new data.
func PermuteQK(t tensor.Tensor, nHead int) (tensor.Tensor, error) {
	return permuteRows(t, nHead, false)
}

// UnpermuteQK is the inverse of PermuteQK: it reorders q or k projection rows
// from GGUF's interleaved rotary layout to Hugging Face's rotate-half layout.
func UnpermuteQK(t tensor.Tensor, nHead int) (tensor.Tensor, error) {
	return permuteRows(t, nHead, true)
}

// permuteRows moves rows within each head (permuteHeads).
func permuteRows(t tensor.Tensor, nHead int, toHF bool) (tensor.Tensor, error) {
	if err := checkPermute(t.Name, t.Shape, nHead); err != nil {
		return tensor.Tensor{}, err
	}
	rows, cols := t.Shape[0], t.Shape[1]
	esz := t.DType.Size()
	if esz == 0 || cols < 0 || len(t.Data) != rows*cols*esz {
		return tensor.Tensor{}, fmt.Errorf("tensor %q: %d bytes do not hold a %v %s matrix", t.Name, len(t.Data), t.Shape, t.DType)
	}
	out := permuteHeads(t.Data, rows, cols*esz, nHead, toHF)
	return tensor.Tensor{Name: t.Name, DType: t.DType, Shape: append([]int(nil), t.Shape...), Data: out}, nil
}

// checkPermute says whether a q or k projection of shape can be permuted
// between the rotate-half and interleaved layouts with heads heads.
func checkPermute(name string, shape []int, heads int) error {
	if len(shape) != 2 {
		return fmt.Errorf("tensor %q: q/k permutation needs a matrix, got shape %v", name, shape)
	}
	if rows := shape[0]; heads <= 0 || rows%heads != 0 || (rows/heads)%2 != 0 {
		return fmt.Errorf("tensor %q: %d rows cannot be split into %d heads of an even number of rows", name, rows, heads)
	}
	return nil
}

// permuteHeads returns v, rows rows of width elements each, with its rows
// moved within each of the heads (checkPermute): within a head of r rows,
// the rotate-half row j*r/2+i (j in {0,1}) corresponds to interleaved row
// 2i+j. toHF goes from interleaved to rotate-half.
func permuteHeads[T any](v []T, rows, width, heads int, toHF bool) []T {
	out := make([]T, len(v))
	perHead := rows / heads
	half := perHead / 2
	for h := range heads {
		base := h * perHead
		for j := range 2 {
			for i := range half {
				src, dst := base+2*i+j, base+j*half+i
				if !toHF {
					src, dst = dst, src
				}
				copy(out[dst*width:(dst+1)*width], v[src*width:(src+1)*width])
			}
		}
	}
	return out
}
