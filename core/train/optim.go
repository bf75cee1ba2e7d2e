// Package train holds the pieces of surgeon's training loop: AdamW, learning
// rate schedules, gradient clipping, metrics and resumable checkpoints.
package train

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/ops"
)

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter), with
// PyTorch's torch.optim.AdamW update and bias correction.
type AdamW struct {
	Params            []*nn.Param
	Beta1, Beta2, Eps float64
	WeightDecay       float64
	// M and V are the first and second moment estimates per parameter.
	M, V [][]float32
	// T is the number of steps taken.
	T int
}

// NewAdamW returns an optimizer over params.
func NewAdamW(params []*nn.Param, beta1, beta2, eps, weightDecay float64) *AdamW {
	o := &AdamW{Params: params, Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay}
	for _, p := range params {
		o.M = append(o.M, make([]float32, p.Size()))
		o.V = append(o.V, make([]float32, p.Size()))
	}
	return o
}

// Step applies one update with learning rate lr from the parameters'
// accumulated gradients, then clears them. Parameters without a gradient
// are left unchanged (but still decay, as in PyTorch, only when they have one).
func (o *AdamW) Step(lr float64) {
	o.T++
	bc1 := 1 - math.Pow(o.Beta1, float64(o.T))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.T))
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	stepSize := lr / bc1
	sqrtBC2 := math.Sqrt(bc2)
	decay := float32(1 - lr*o.WeightDecay)
	for i, p := range o.Params {
		if !p.HasGrad() {
			continue
		}
		g := ops.Data(p.Grad())
		w := ops.Data(p)
		m, v := o.M[i], o.V[i]
		for j := range w {
			gj := g[j]
			m[j] = b1*m[j] + (1-b1)*gj
			v[j] = b2*v[j] + (1-b2)*gj*gj
			denom := math.Sqrt(float64(v[j]))/sqrtBC2 + o.Eps
			w[j] = w[j]*decay - float32(stepSize*float64(m[j])/denom)
		}
		p.ZeroGrad()
	}
}

// ZeroGrad clears every gradient.
func (o *AdamW) ZeroGrad() {
	for _, p := range o.Params {
		p.ZeroGrad()
	}
}

// GradNorm returns the global L2 norm of the accumulated gradients.
func GradNorm(params []*nn.Param) float64 {
	var s float64
	for _, p := range params {
		if !p.HasGrad() {
			continue
		}
		for _, g := range ops.Data(p.Grad()) {
			s += float64(g) * float64(g)
		}
	}
	return math.Sqrt(s)
}

// ScaleGrads multiplies every accumulated gradient by f.
func ScaleGrads(params []*nn.Param, f float64) {
	for _, p := range params {
		if !p.HasGrad() {
			continue
		}
		g := ops.Data(p.Grad())
		for j := range g {
			g[j] *= float32(f)
		}
	}
}

// ClipGradNorm scales gradients so that their global norm is at most max
// (as torch.nn.utils.clip_grad_norm_) and returns the norm before clipping.
func ClipGradNorm(params []*nn.Param, max float64) float64 {
	n := GradNorm(params)
	if max > 0 && n > max {
		ScaleGrads(params, max/(n+1e-6))
	}
	return n
}

// Schedule is a learning-rate schedule.
type Schedule struct {
	Kind   string // linear, cosine or constant
	Base   float64
	Warmup int
	Total  int
}

// LR returns the learning rate for optimizer step number step (0-based),
// as transformers' get_linear_schedule_with_warmup and
// get_cosine_schedule_with_warmup compute it: step/Warmup of Base during
// warm-up, then a linear or half-cosine decay reaching 0 at Total.
func (s Schedule) LR(step int) float64 {
	if step < s.Warmup {
		return s.Base * float64(step) / float64(max(1, s.Warmup))
	}
	if s.Kind == "constant" {
		return s.Base
	}
	progress := float64(step-s.Warmup) / float64(max(1, s.Total-s.Warmup))
	switch s.Kind {
	case "cosine":
		return s.Base * math.Max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	default:
		return s.Base * math.Max(0, 1-progress)
	}
}

// Validate checks the schedule kind.
func (s Schedule) Validate() error {
	switch s.Kind {
	case "linear", "cosine", "constant":
		return nil
	}
	return fmt.Errorf("unknown schedule %q (linear, cosine, constant)", s.Kind)
}
