package gguf

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// This file exports test helpers to the external tests of this package
// (package gguf_test), which may import core/checkpoint.

// RequantizeForTest rewrites f with every tensor in the type pick returns
// for it, quantized by Quantize (tensors pick leaves in their type keep
// their bytes), and returns that file and a twin whose re-typed tensors
// hold their dequantized values as F32: loading either must give the same
// weights.
func RequantizeForTest(f *File, pick func(ti TensorInfo) GGMLType) (quant, twin []byte, err error) {
	var kvs []testKV
	for _, k := range f.keys {
		v := f.kv[k]
		if _, nested := v.v.([]Value); nested {
			return nil, nil, fmt.Errorf("metadata key %q: nested arrays are not copied", k)
		}
		kvs = append(kvs, testKV{k, v.v})
	}
	qf := testFile{version: f.version, align: f.alignment, kvs: kvs}
	tf := qf
	tf.tensors = nil
	for _, ti := range f.Tensors() {
		raw, err := f.TensorData(ti.Name)
		if err != nil {
			return nil, nil, err
		}
		typ := pick(ti)
		if typ == ti.Type {
			tt := testTensor{name: ti.Name, dims: ti.Dims, typ: typ, data: raw}
			qf.tensors = append(qf.tensors, tt)
			tf.tensors = append(tf.tensors, tt)
			continue
		}
		v, _, err := f.Float32(ti.Name)
		if err != nil {
			return nil, nil, err
		}
		q, err := Quantize(typ, v)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", ti.Name, err)
		}
		dq := make([]float32, len(v))
		if err := Dequantize(typ, dq, q); err != nil {
			return nil, nil, err
		}
		qf.tensors = append(qf.tensors, testTensor{name: ti.Name, dims: ti.Dims, typ: typ, data: q})
		tf.tensors = append(tf.tensors, testTensor{name: ti.Name, dims: ti.Dims, typ: TypeF32, data: f32Bytes(dq...)})
	}
	return qf.bytes(), tf.bytes(), nil
}

// RandomLlamaForTest returns an all-F32 Llama GGUF with random weights:
// one block, 4 heads (2 key-value heads), the given sizes.
func RandomLlamaForTest(hidden, ffn, vocab int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	w := func(n int, scale float64) []byte {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return f32Bytes(v...)
	}
	ones := func(n int) []byte {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1 + float32(rng.NormFloat64()*0.1)
		}
		return f32Bytes(v...)
	}
	h, f, voc := uint64(hidden), uint64(ffn), uint64(vocab)
	s := 1 / math.Sqrt(float64(hidden))
	return testFile{
		kvs: []testKV{
			{"general.architecture", "llama"},
			{"llama.context_length", uint32(64)},
			{"llama.embedding_length", uint32(hidden)},
			{"llama.feed_forward_length", uint32(ffn)},
			{"llama.block_count", uint32(1)},
			{"llama.attention.head_count", uint32(4)},
			{"llama.attention.head_count_kv", uint32(2)},
			{"llama.attention.layer_norm_rms_epsilon", float32(1e-5)},
		},
		tensors: []testTensor{
			{name: "token_embd.weight", dims: []uint64{h, voc}, typ: TypeF32, data: w(hidden*vocab, 1)},
			{name: "output_norm.weight", dims: []uint64{h}, typ: TypeF32, data: ones(hidden)},
			{name: "output.weight", dims: []uint64{h, voc}, typ: TypeF32, data: w(hidden*vocab, s)},
			{name: "blk.0.attn_norm.weight", dims: []uint64{h}, typ: TypeF32, data: ones(hidden)},
			{name: "blk.0.ffn_norm.weight", dims: []uint64{h}, typ: TypeF32, data: ones(hidden)},
			{name: "blk.0.attn_q.weight", dims: []uint64{h, h}, typ: TypeF32, data: w(hidden*hidden, s)},
			{name: "blk.0.attn_k.weight", dims: []uint64{h, h / 2}, typ: TypeF32, data: w(hidden*hidden/2, s)},
			{name: "blk.0.attn_v.weight", dims: []uint64{h, h / 2}, typ: TypeF32, data: w(hidden*hidden/2, s)},
			{name: "blk.0.attn_output.weight", dims: []uint64{h, h}, typ: TypeF32, data: w(hidden*hidden, s)},
			{name: "blk.0.ffn_gate.weight", dims: []uint64{h, f}, typ: TypeF32, data: w(hidden*ffn, s)},
			{name: "blk.0.ffn_up.weight", dims: []uint64{h, f}, typ: TypeF32, data: w(hidden*ffn, s)},
			{name: "blk.0.ffn_down.weight", dims: []uint64{f, h}, typ: TypeF32, data: w(hidden*ffn, 1/math.Sqrt(float64(ffn)))},
		},
	}.bytes()
}
