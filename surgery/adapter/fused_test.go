package adapter

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/plugins/program"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
)

func loraPlan(in, out, r int, s, dropout float64) *rpc.Plan {
	f := program.New()
	x := f.X()
	l := x.Dropout(dropout).MatMulT(f.Param("A")).MatMulT(f.Param("B")).Scale(s)
	f.Output("y", x.MatMulT(f.W()).Add(f.Bias()).Add(l))
	m := program.New()
	m.Output("weight", m.W().Add(m.Param("B").MatMul(m.Param("A")).Scale(s)))
	return &rpc.Plan{Params: []rpc.ParamSpec{
		{Name: "A", Shape: []int{r, in}, Trainable: true, Init: rpc.InitRule{Rule: "normal", Std: 0.5}},
		{Name: "B", Shape: []int{out, r}, Trainable: true, Init: rpc.InitRule{Rule: "normal", Std: 0.5}},
	}, Forward: f.Program(), Merge: m.Program()}
}

// The fused LoRA operator gives the same outputs and gradients as the
// unfused program, with and without dropout.
func TestFusedLoRAMatchesProgram(t *testing.T) {
	for _, dropout := range []float64{0, 0.3} {
		base := layer.NewLinear(7, 5, true)
		r := rand.New(rand.NewPCG(2, 2))
		for _, p := range ops.Data(base.Weight) {
			_ = p
		}
		for i := range ops.Data(base.Weight) {
			ops.Data(base.Weight)[i] = float32(r.NormFloat64())
		}
		for i := range ops.Data(base.Bias) {
			ops.Data(base.Bias)[i] = float32(r.NormFloat64())
		}
		base.Weight.SetRequiresGrad(false)
		base.Bias.SetRequiresGrad(false)
		a, err := New(base, "l", "lora", nil, loraPlan(7, 5, 3, 1.7, dropout), nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := matchLoRA(a.Fwd); !ok || m.a != "A" || m.b != "B" || m.scale != 1.7 || m.dropout != dropout {
			t.Fatalf("LoRA program not recognised: %+v %v", m, ok)
		}
		xs := make([]float32, 4*7)
		for i := range xs {
			xs[i] = float32(r.NormFloat64())
		}
		run := func(unfused bool) ([]float32, [][]float32) {
			x := ops.New(4, 7, append([]float32(nil), xs...))
			x.SetRequiresGrad(true)
			a.Unfused = unfused
			a.SetTraining(dropout > 0, 9)
			y := a.Forward(x)
			out := append([]float32(nil), ops.Data(y)...)
			if err := ops.Backward(y); err != nil {
				t.Fatal(err)
			}
			grads := [][]float32{append([]float32(nil), ops.Data(x.Grad())...)}
			for _, p := range a.Values {
				grads = append(grads, append([]float32(nil), ops.Data(p.Grad())...))
				p.ZeroGrad()
			}
			return out, grads
		}
		y1, g1 := run(false)
		y2, g2 := run(true)
		for i := range y1 {
			if math.Abs(float64(y1[i]-y2[i])) > 1e-5 {
				t.Fatalf("dropout %v: output %d fused %v unfused %v", dropout, i, y1[i], y2[i])
			}
		}
		for k := range g1 {
			for i := range g1[k] {
				if math.Abs(float64(g1[k][i]-g2[k][i])) > 1e-4 {
					t.Fatalf("dropout %v: gradient %d[%d] fused %v unfused %v", dropout, k, i, g1[k][i], g2[k][i])
				}
			}
		}
	}
}
