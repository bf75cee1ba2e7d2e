package ops

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

func randParam(r *rand.Rand, rows, cols int, scale float64) *mat.Dense[float32] {
	d := make([]float32, rows*cols)
	for i := range d {
		d[i] = float32(r.NormFloat64() * scale)
	}
	m := New(rows, cols, d)
	m.SetRequiresGrad(true)
	return m
}

// gradCheck compares analytic gradients of sum(op(inputs) * proj) with
// central finite differences for every input element.
func gradCheck(t *testing.T, name string, inputs []*mat.Dense[float32], op func(in []mat.Tensor) mat.Tensor) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	asT := func() []mat.Tensor {
		ts := make([]mat.Tensor, len(inputs))
		for i, in := range inputs {
			ts[i] = in
		}
		return ts
	}
	out := op(asT())
	proj := make([]float32, out.Value().Size())
	for i := range proj {
		proj[i] = float32(r.NormFloat64())
	}
	loss := func() float64 {
		y := Data(op(asT()))
		var s float64
		for i, v := range y {
			s += float64(v) * float64(proj[i])
		}
		return s
	}
	for _, in := range inputs {
		in.ZeroGrad()
	}
	out.AccGrad(New(Rows(out), Cols(out), append([]float32(nil), proj...)))
	if err := Backward(out); err != nil {
		t.Fatal(err)
	}
	for k, in := range inputs {
		var grad []float32
		if in.HasGrad() {
			grad = Data(in.Grad())
		} else {
			grad = make([]float32, in.Size())
		}
		data := Data(in)
		for i := range data {
			orig := data[i]
			h := float32(1e-2) * float32(math.Max(1, math.Abs(float64(orig))))
			data[i] = orig + h
			lp := loss()
			data[i] = orig - h
			lm := loss()
			data[i] = orig
			num := (lp - lm) / float64(2*h)
			if math.Abs(num-float64(grad[i])) > 2e-2*math.Max(1, math.Abs(num)) {
				t.Errorf("%s: input %d element %d: analytic %v numeric %v", name, k, i, grad[i], num)
				return
			}
		}
	}
}

func TestGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	lay := Layout{Batch: 2, Len: 4, Valid: [][]bool{{true, true, true, false}, {true, true, true, true}}}
	cases := []struct {
		name   string
		inputs []*mat.Dense[float32]
		op     func(in []mat.Tensor) mat.Tensor
	}{
		{"linear", []*mat.Dense[float32]{randParam(r, 5, 3, 1), randParam(r, 4, 3, 1), randParam(r, 4, 1, 1)},
			func(in []mat.Tensor) mat.Tensor { return Linear(in[0], in[1], in[2]) }},
		{"linear-nobias", []*mat.Dense[float32]{randParam(r, 5, 3, 1), randParam(r, 4, 3, 1)},
			func(in []mat.Tensor) mat.Tensor { return Linear(in[0], in[1], nil) }},
		{"rmsnorm", []*mat.Dense[float32]{randParam(r, 3, 6, 1), randParam(r, 6, 1, 1)},
			func(in []mat.Tensor) mat.Tensor { return RMSNorm(in[0], in[1], 1e-5) }},
		{"layernorm", []*mat.Dense[float32]{randParam(r, 3, 6, 1), randParam(r, 6, 1, 1), randParam(r, 6, 1, 1)},
			func(in []mat.Tensor) mat.Tensor { return LayerNorm(in[0], in[1], in[2], 1e-5) }},
		{"swiglu", []*mat.Dense[float32]{randParam(r, 3, 5, 1), randParam(r, 3, 5, 1)},
			func(in []mat.Tensor) mat.Tensor { return SwiGLU(in[0], in[1]) }},
		{"gelu", []*mat.Dense[float32]{randParam(r, 3, 5, 1)},
			func(in []mat.Tensor) mat.Tensor { return GELU(in[0]) }},
		{"tanh", []*mat.Dense[float32]{randParam(r, 3, 5, 1)},
			func(in []mat.Tensor) mat.Tensor { return Tanh(in[0]) }},
		{"embedding", []*mat.Dense[float32]{randParam(r, 6, 3, 1)},
			func(in []mat.Tensor) mat.Tensor { return Embedding(in[0], []int{1, 4, 1, 0}) }},
		{"rows", []*mat.Dense[float32]{randParam(r, 6, 3, 1)},
			func(in []mat.Tensor) mat.Tensor { return SelectRows(in[0], []int{5, 0, 5}) }},
		{"rotary", []*mat.Dense[float32]{randParam(r, 8, 8, 1)},
			func(in []mat.Tensor) mat.Tensor { return Rotary(in[0], lay.Positions(), 2, 10000) }},
		{"attention-gqa-causal", []*mat.Dense[float32]{randParam(r, 8, 8, 1), randParam(r, 8, 4, 1), randParam(r, 8, 4, 1)},
			func(in []mat.Tensor) mat.Tensor { return Attention(in[0], in[1], in[2], lay, 4, 2, true) }},
		{"attention-bidirectional", []*mat.Dense[float32]{randParam(r, 8, 6, 1), randParam(r, 8, 6, 1), randParam(r, 8, 6, 1)},
			func(in []mat.Tensor) mat.Tensor { return Attention(in[0], in[1], in[2], lay, 3, 3, false) }},
		// Heads of 16 and more go through matrix products, smaller ones
		// through vector operations: both need their gradients checked.
		{"attention-wide-heads-gqa-causal", []*mat.Dense[float32]{randParam(r, 8, 32, 1), randParam(r, 8, 16, 1), randParam(r, 8, 16, 1)},
			func(in []mat.Tensor) mat.Tensor { return Attention(in[0], in[1], in[2], lay, 2, 1, true) }},
		{"attention-wide-heads-bidirectional", []*mat.Dense[float32]{randParam(r, 8, 32, 1), randParam(r, 8, 32, 1), randParam(r, 8, 32, 1)},
			func(in []mat.Tensor) mat.Tensor { return Attention(in[0], in[1], in[2], lay, 2, 2, false) }},
		{"matmul", []*mat.Dense[float32]{randParam(r, 3, 4, 1), randParam(r, 4, 5, 1)},
			func(in []mat.Tensor) mat.Tensor { return MatMul(in[0], in[1]) }},
		{"transpose", []*mat.Dense[float32]{randParam(r, 3, 4, 1)},
			func(in []mat.Tensor) mat.Tensor { return Transpose(in[0]) }},
		{"add-row-broadcast", []*mat.Dense[float32]{randParam(r, 3, 4, 1), randParam(r, 1, 4, 1)},
			func(in []mat.Tensor) mat.Tensor { return Binary(AddOp, in[0], in[1]) }},
		{"sub-col-broadcast", []*mat.Dense[float32]{randParam(r, 3, 1, 1), randParam(r, 3, 4, 1)},
			func(in []mat.Tensor) mat.Tensor { return Binary(SubOp, in[0], in[1]) }},
		{"mul-scalar", []*mat.Dense[float32]{randParam(r, 3, 4, 1), randParam(r, 1, 1, 1)},
			func(in []mat.Tensor) mat.Tensor { return Binary(MulOp, in[0], in[1]) }},
		{"div", []*mat.Dense[float32]{randParam(r, 3, 4, 1), randParam(r, 3, 1, 0.1)},
			func(in []mat.Tensor) mat.Tensor {
				return Binary(DivOp, in[0], Binary(AddOp, in[1], New(1, 1, []float32{3})))
			}},
		{"scale", []*mat.Dense[float32]{randParam(r, 3, 4, 1)},
			func(in []mat.Tensor) mat.Tensor { return Scale(in[0], -1.5) }},
		{"rownorm", []*mat.Dense[float32]{randParam(r, 3, 4, 1)},
			func(in []mat.Tensor) mat.Tensor { return RowNorm(in[0]) }},
		{"lora-fused", []*mat.Dense[float32]{randParam(r, 5, 6, 1), randParam(r, 4, 6, 1), randParam(r, 4, 1, 1), randParam(r, 3, 6, 1), randParam(r, 4, 3, 1)},
			func(in []mat.Tensor) mat.Tensor { return LoRA(in[0], in[1], in[2], in[3], in[4], 1.5, nil) }},
		{"lora-fused-dropout", []*mat.Dense[float32]{randParam(r, 5, 6, 1), randParam(r, 4, 6, 1), randParam(r, 3, 6, 1), randParam(r, 4, 3, 1)},
			func(in []mat.Tensor) mat.Tensor {
				mask := []float32{2, 0, 2, 2, 0, 2, 2, 2, 0, 0, 2, 2, 2, 0, 2, 2, 2, 2, 0, 2, 2, 0, 2, 2, 2, 2, 2, 0, 2, 2}
				return LoRA(in[0], in[1], nil, in[2], in[3], 0.5, mask)
			}},
		{"crossentropy", []*mat.Dense[float32]{randParam(r, 4, 5, 2)},
			func(in []mat.Tensor) mat.Tensor { return CrossEntropy(in[0], []int{1, -1, 4, 0}) }},
		{"colnorm", []*mat.Dense[float32]{randParam(r, 3, 4, 1)},
			func(in []mat.Tensor) mat.Tensor { return ColNorm(in[0]) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { gradCheck(t, c.name, c.inputs, c.op) })
	}
}
