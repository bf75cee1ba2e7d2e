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

// loraPlan is LoRA written with the lowrank node (form "lowrank"), with
// lowrank added to linear in the other order ("swapped"), or with plain
// matrix products ("matmul").
func loraPlan(in, out, r int, s, dropout float64, form string) *rpc.Plan {
	f := program.New()
	x := f.X()
	switch form {
	case "lowrank":
		f.Output("y", x.Linear().Add(x.LowRank(f.Param("A"), f.Param("B"), s, dropout)))
	case "alone": // lowrank as its own operator
		f.Output("y", x.MatMulT(f.W()).Add(f.Bias()).Add(x.LowRank(f.Param("A"), f.Param("B"), s, dropout)))
	case "swapped":
		lr := x.LowRank(f.Param("A"), f.Param("B"), s, dropout)
		f.Output("y", lr.Add(x.Linear()))
	default:
		l := x.Dropout(dropout).MatMulT(f.Param("A")).MatMulT(f.Param("B")).Scale(s)
		f.Output("y", x.MatMulT(f.W()).Add(f.Bias()).Add(l))
	}
	m := program.New()
	m.Output("weight", m.W().Add(m.Param("B").MatMul(m.Param("A")).Scale(s)))
	return &rpc.Plan{Params: []rpc.ParamSpec{
		{Name: "A", Shape: []int{r, in}, Trainable: true, Init: rpc.InitRule{Rule: "normal", Std: 0.5}},
		{Name: "B", Shape: []int{out, r}, Trainable: true, Init: rpc.InitRule{Rule: "normal", Std: 0.5}},
	}, Forward: f.Program(), Merge: m.Program()}
}

// The lowrank node, fused with linear or alone, gives the same outputs and
// gradients as the same maths in plain matrix products, with and without
// dropout, and the fused path really is taken.
func TestLowRankMatchesProgram(t *testing.T) {
	for _, tc := range []struct {
		form    string
		dropout float64
	}{{"lowrank", 0}, {"lowrank", 0.3}, {"swapped", 0}, {"swapped", 0.3}, {"alone", 0}, {"alone", 0.3}} {
		dropout := tc.dropout
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
		a, err := New(base, "l", "lora", nil, loraPlan(7, 5, 3, 1.7, dropout, tc.form), nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := New(base, "l", "lora", nil, loraPlan(7, 5, 3, 1.7, dropout, "matmul"), nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		if c := compile(a.Fwd, false, false); len(c.fusedAdd) != map[string]int{"alone": 0}[tc.form]+map[bool]int{true: 1}[tc.form != "alone"] {
			t.Fatalf("%s: linear + lowrank not fused: %v", tc.form, c.fusedAdd)
		}
		xs := make([]float32, 4*7)
		for i := range xs {
			xs[i] = float32(r.NormFloat64())
		}
		run := func(a *Adapted, unfused bool) ([]float32, [][]float32) {
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
		y1, g1 := run(a, false)
		for _, other := range []struct {
			a       *Adapted
			unfused bool
		}{{a, true}, {ref, false}} {
			y2, g2 := run(other.a, other.unfused)
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
}

// A merge program's W + scale(B A, s), in either order, runs in the
// product's buffer (compile's scaledAdd) and gives bit for bit the
// weight of the separate operators (Unfused).
func TestMergeScaledProductInPlace(t *testing.T) {
	for _, tc := range []struct {
		s       float64
		swapped bool
	}{{1.7, false}, {2, false}, {0.3, true}, {-1.1, true}} {
		base := layer.NewLinear(37, 29, true)
		r := rand.New(rand.NewPCG(3, 3))
		for i := range ops.Data(base.Weight) {
			ops.Data(base.Weight)[i] = float32(r.NormFloat64())
		}
		base.Weight.SetRequiresGrad(false)
		base.Bias.SetRequiresGrad(false)
		plan := loraPlan(37, 29, 5, tc.s, 0, "lowrank")
		if tc.swapped {
			m := program.New()
			m.Output("weight", m.Param("B").MatMul(m.Param("A")).Scale(tc.s).Add(m.W()))
			plan.Merge = m.Program()
		}
		a, err := New(base, "l", "lora", nil, plan, nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		if c := compile(a.Mrg, false, true); len(c.scaledAdd) != 1 {
			t.Fatalf("s %v swapped %v: the scaled add is not planned in place: %v", tc.s, tc.swapped, c.scaledAdd)
		}
		merged := func(unfused bool) []float32 {
			a.Unfused = unfused
			l, err := a.Merged()
			if err != nil {
				t.Fatal(err)
			}
			return ops.Data(l.Weight)
		}
		w1, w2 := merged(false), merged(true)
		if len(w1) != 37*29 || len(w1) != len(w2) {
			t.Fatalf("merged weights of %d and %d values", len(w1), len(w2))
		}
		for i := range w1 {
			if math.Float32bits(w1[i]) != math.Float32bits(w2[i]) {
				t.Fatalf("s %v swapped %v: weight %d in place %v, operators %v", tc.s, tc.swapped, i, w1[i], w2[i])
			}
		}
	}
}
