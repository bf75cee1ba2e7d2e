package sdktest

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/plugins/program"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/adapter"
)

// everyOp builds, without a plugin, an adapted layer whose programs use
// every operation of the language, the fused LoRA form among them.
func everyOp(t *testing.T) *adapter.Adapted {
	t.Helper()
	const in, out = 5, 4
	r := rand.New(rand.NewPCG(3, 3))
	base := layer.NewLinear(in, out, true)
	for _, p := range []*nn.Param{base.Weight, base.Bias} {
		for i := range ops.Data(p) {
			ops.Data(p)[i] = float32(r.NormFloat64() * 0.5)
		}
		p.SetRequiresGrad(false)
	}
	normal := rpc.InitRule{Rule: "normal", Std: 0.5}
	params := []rpc.ParamSpec{
		{Name: "A", Shape: []int{2, in}, Trainable: true, Init: normal},
		{Name: "B", Shape: []int{out, 2}, Trainable: true, Init: normal},
		{Name: "g", Shape: []int{out}, Trainable: true, Init: rpc.InitRule{Rule: "constant", Value: 1.5}},
		{Name: "h", Shape: []int{in}, Trainable: true, Init: rpc.InitRule{Rule: "ones"}},
		{Name: "frozen", Shape: []int{out, in}, Init: normal},
	}
	f := program.New()
	x := f.X()
	a, b, g, h, fz := f.Param("A"), f.Param("B"), f.Param("g"), f.Param("h"), f.Param("frozen")
	fused := x.Linear().Add(x.LowRank(a, b, 0.5, 0))
	u := x.Mul(h).Dropout(0.2).LowRank(a, b, 0.7, 0.1)
	v := f.W().Add(b.MatMul(a).Scale(0.3))
	z := x.Div(v.ColNorm().Add(f.Const(1))).MatMulT(v).Mul(g.Div(v.RowNorm().StopGrad().T()))
	z4 := x.MatMul(fz.T().Sub(fz.T().Scale(0.5)))
	f.Output("y", fused.Add(u).Add(z).Sub(z4).Add(x.MatMulT(f.W()).Add(f.Bias()).Scale(0.1)))
	m := program.New()
	m.Output("weight", m.W().Add(m.Param("B").MatMul(m.Param("A"))).Mul(m.Param("g").T()))
	m.Output("bias", m.Bias().Add(m.Param("g")))
	plan := &rpc.Plan{Params: params, Forward: f.Program(), Merge: m.Program()}
	ad, err := adapter.New(base, "test.layer", "every-op", map[string]any{}, plan, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	return ad
}

func TestCheckGradientsEveryOp(t *testing.T) {
	if err := CheckGradients(everyOp(t), 3, 1); err != nil {
		t.Fatal(err)
	}
}

// Finite differences that see through stop_grad disagree with autograd:
// the check notices.
func TestCheckGradientsStopGrad(t *testing.T) {
	err := checkGradients(everyOp(t), 3, 1, false)
	if err == nil || !strings.Contains(err.Error(), "gradient of") {
		t.Fatalf("finite differences through stop_grad passed the check: %v", err)
	}
}

func TestCompareGradReports(t *testing.T) {
	fd := []float64{0.5, -2, 1e-3, 0}
	host := []float32{0.5, 2, 1e-3, 0}
	errs := compareGrad("lora {}", "fused", "lora_A.weight", 2, 2, host, fd)
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "lora_A.weight[0,1]") || !strings.Contains(errs[1].Error(), "||host - finite differences||") {
		t.Fatalf("errors %v", errs)
	}
	// Gradients too small for the element check still fail the norm one.
	small := []float64{1e-4, -2e-4, 1e-4, 3e-4}
	host = []float32{-1e-4, 2e-4, -1e-4, -3e-4}
	if errs := compareGrad("x", "fused", "x", 2, 2, host, small); len(errs) != 1 {
		t.Fatalf("a sign error in small gradients: %v", errs)
	}
	if errs := compareGrad("x", "fused", "x", 2, 2, nil, small); len(errs) != 1 {
		t.Fatalf("a missing gradient: %v", errs)
	}
}
