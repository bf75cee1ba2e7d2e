package adapter

import (
	"github.com/nlpodyssey/spago/mat"

	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/plugins/program"
)

// loraShape is a forward program recognised as LoRA:
// y = x W^T + b + s * d(x) A^T B^T.
type loraShape struct {
	a, b    string
	scale   float64
	dropout float64
}

// matchLoRA recognises the LoRA forward shape in a program, whatever the
// node order, so that it runs as one fused operator.
func matchLoRA(p *program.Program) (loraShape, bool) {
	var m loraShape
	id, ok := p.Outputs["y"]
	if !ok {
		return m, false
	}
	n := func(i int) program.Node { return p.Nodes[i] }
	is := func(i int, op program.Op) bool { return i >= 0 && i < len(p.Nodes) && n(i).Op == op }
	isBase := func(i int) bool { // add(matmul_t(x, W), bias)
		if !is(i, program.OpAdd) {
			return false
		}
		l, r := n(i).Args[0], n(i).Args[1]
		if is(r, program.OpMatMulT) && is(l, program.OpBias) {
			l, r = r, l
		}
		return is(l, program.OpMatMulT) && is(r, program.OpBias) &&
			is(n(l).Args[0], program.OpInput) && is(n(l).Args[1], program.OpWeight)
	}
	isLoRA := func(i int) bool { // scale(matmul_t(matmul_t(d(x), A), B), s)
		if !is(i, program.OpScale) {
			return false
		}
		outer := n(i).Args[0]
		if !is(outer, program.OpMatMulT) || !is(n(outer).Args[1], program.OpParam) {
			return false
		}
		inner := n(outer).Args[0]
		if !is(inner, program.OpMatMulT) || !is(n(inner).Args[1], program.OpParam) {
			return false
		}
		src := n(inner).Args[0]
		drop := 0.0
		if is(src, program.OpDropout) {
			drop = n(src).Value
			src = n(src).Args[0]
		}
		if !is(src, program.OpInput) {
			return false
		}
		m = loraShape{a: n(n(inner).Args[1]).Name, b: n(n(outer).Args[1]).Name, scale: n(i).Value, dropout: drop}
		return true
	}
	if !is(id, program.OpAdd) {
		return m, false
	}
	l, r := n(id).Args[0], n(id).Args[1]
	if isBase(l) && isLoRA(r) || isBase(r) && isLoRA(l) {
		return m, true
	}
	return m, false
}

// fusedForward runs a recognised LoRA program as one operator.
func (a *Adapted) fusedForward(x mat.Tensor, m loraShape) mat.Tensor {
	var mask []float32
	if a.Training && a.rng != nil {
		mask = ops.DropoutMask(x.Value().Size(), m.dropout, a.rng)
	}
	var bias mat.Tensor
	if a.Base.Bias != nil {
		bias = a.Base.Bias
	}
	return ops.LoRA(x, a.Base.Weight, bias, a.Param(m.a), a.Param(m.b), float32(m.scale), mask)
}
