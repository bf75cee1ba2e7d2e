package sdktest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/plugins/program"
	"github.com/surgeon-ml/surgeon/surgery/adapter"
)

// Tolerances of CheckGradients. The host computes in float32; the
// reference is float64 arithmetic on the same (float32) values.
const (
	// GradElemTol bounds each element: |host - reference| <= GradElemTol *
	// max(1, |reference|).
	GradElemTol = 1e-3
	// GradNormTol bounds a whole gradient: ||host - reference|| <=
	// GradNormTol * ||reference|| + GradElemTol * 1e-2 * sqrt(n), which
	// catches errors in gradients too small for the element check.
	GradNormTol = 1e-4
	// ValueTol bounds the host's forward output and merged weight and bias
	// against the reference interpreter, relative to max(1, the largest
	// reference magnitude).
	ValueTol = 1e-4
)

// maxReported caps the element mismatches reported per tensor.
const maxReported = 4

// CheckGradients checks an adapted layer's forward pass and gradients
// against an independent float64 interpreter of its programs. On tokens
// random input rows x (seed makes them reproducible) and a fixed random
// output weighting R [tokens, out] it
//
//   - compares the host's forward output, fused and unfused (see
//     adapter.Adapted.Unfused), and its merged weight and bias with the
//     interpreter's, to ValueTol relative;
//   - backpropagates the loss L = sum(y ⊙ R) through the host's compiled
//     operators, fused and unfused, and compares the gradients of every
//     trainable parameter and of x with central finite differences of the
//     interpreter's L, within GradElemTol per element and GradNormTol over
//     each tensor.
//
// Dropout is off (the check runs with training off) and stop_grad nodes
// keep their values at the unperturbed point while finite differences
// perturb the inputs, which gives the gradient autograd computes. The
// layer's parameter values are left as they were and their gradients are
// cleared. Errors name the adapter, its configuration, the tensor and the
// element. It evaluates the forward program twice per parameter element:
// meant for small layers.
func CheckGradients(a *adapter.Adapted, tokens int, seed uint64) error {
	return checkGradients(a, tokens, seed, true)
}

// checkGradients is CheckGradients; freeze false lets finite differences
// see through stop_grad (for the suite's own tests).
func checkGradients(a *adapter.Adapted, tokens int, seed uint64, freeze bool) error {
	training := a.Training
	unfused := a.Unfused
	a.Training = false
	defer func() { a.Training, a.Unfused = training, unfused }()
	label := fmt.Sprintf("%s %s", a.Type, a.ConfigJSON)

	rng := rand.New(rand.NewPCG(seed, 0x9ad))
	in, out := a.Base.In(), a.Base.Out()
	x := newDense64(tokens, in)
	for i := range x.v {
		// float32-representable, so that host and reference see the same x.
		x.v[i] = float64(float32(rng.NormFloat64()))
	}
	r := newDense64(tokens, out)
	for i := range r.v {
		r.v[i] = float64(float32(rng.NormFloat64()))
	}

	it := &interp{params: map[string]*dense64{}}
	it.w = fromFloat32(out, in, ops.Data(a.Base.Weight))
	it.b = newDense64(1, out)
	if a.Base.Bias != nil {
		it.b = fromFloat32(1, out, ops.Data(a.Base.Bias))
	}
	for i, name := range a.Names {
		s, err := program.ParamShape(a.Shapes[i])
		if err != nil {
			return fmt.Errorf("%s: parameter %s: %w", label, name, err)
		}
		m := fromFloat32(s[0], s[1], ops.Data(a.Values[i]))
		it.params[name] = &m
	}

	// Reference forward at the unperturbed point; it fixes the stop_grad
	// values for the finite differences.
	it.x = &x
	vals, err := it.run(a.Fwd)
	if err != nil {
		return fmt.Errorf("%s: reference interpreter, forward program: %w", label, err)
	}
	yid, ok := a.Fwd.Outputs["y"]
	if !ok {
		return fmt.Errorf("%s: forward program has no output y", label)
	}
	yref := vals[yid]
	if yref.r != tokens || yref.c != out {
		return fmt.Errorf("%s: reference forward output is %dx%d, want %dx%d", label, yref.r, yref.c, tokens, out)
	}
	it.frozen = map[int]dense64{}
	for i, n := range a.Fwd.Nodes {
		if n.Op == program.OpStopGrad && freeze {
			// A copy: the value may share storage with a perturbed leaf.
			it.frozen[i] = dense64{vals[i].r, vals[i].c, append([]float64(nil), vals[i].v...)}
		}
	}
	loss := func() float64 {
		v, err := it.run(a.Fwd)
		if err != nil {
			panic(err) // the same program ran at the unperturbed point
		}
		y := v[yid]
		s := 0.0
		for i := range y.v {
			s += y.v[i] * r.v[i]
		}
		return s
	}

	// Reference gradients: central differences.
	type target struct {
		name string
		m    *dense64
	}
	targets := []target{{"x", &x}}
	for i, name := range a.Names {
		if a.Train[i] {
			targets = append(targets, target{name, it.params[name]})
		}
	}
	fd := map[string][]float64{}
	for _, tg := range targets {
		g := make([]float64, len(tg.m.v))
		for i, v := range tg.m.v {
			h := 1e-5 * math.Max(1, math.Abs(v))
			tg.m.v[i] = v + h
			lp := loss()
			tg.m.v[i] = v - h
			lm := loss()
			tg.m.v[i] = v
			g[i] = (lp - lm) / (2 * h)
		}
		fd[tg.name] = g
	}

	var errs []error
	// Merge program, once.
	errs = append(errs, checkMerged(a, it, label)...)
	// Host forward and gradients, fused and unfused.
	for _, mode := range []bool{false, true} {
		a.Unfused = mode
		how := "fused"
		if mode {
			how = "unfused"
		}
		for _, p := range a.Values {
			p.ZeroGrad()
		}
		xs := make([]float32, len(x.v))
		for i, v := range x.v {
			xs[i] = float32(v)
		}
		xt := ops.New(tokens, in, xs)
		xt.SetRequiresGrad(true)
		y := a.Forward(xt)
		if ops.Rows(y) != tokens || ops.Cols(y) != out {
			errs = append(errs, fmt.Errorf("%s (%s): host forward output is %dx%d, want %dx%d", label, how, ops.Rows(y), ops.Cols(y), tokens, out))
			continue
		}
		yh := append([]float32(nil), ops.Data(y)...)
		errs = append(errs, compareValues(label, how+" forward output y", yh, yref)...)
		rs := make([]float32, len(r.v))
		for i, v := range r.v {
			rs[i] = float32(v)
		}
		y.AccGrad(ops.New(tokens, out, rs))
		if err := ops.Backward(y); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): backward: %w", label, how, err))
			continue
		}
		host := func(name string) []float32 {
			if name == "x" {
				if !xt.HasGrad() {
					return nil
				}
				return ops.Data(xt.Grad())
			}
			p := a.Param(name)
			if !p.HasGrad() {
				return nil
			}
			return ops.Data(p.Grad())
		}
		for _, tg := range targets {
			errs = append(errs, compareGrad(label, how, tg.name, tg.m.r, tg.m.c, host(tg.name), fd[tg.name])...)
		}
	}
	for _, p := range a.Values {
		p.ZeroGrad()
	}
	return errors.Join(errs...)
}

// checkMerged compares the host's merged layer with the interpreter's
// merge program.
func checkMerged(a *adapter.Adapted, it *interp, label string) []error {
	m, err := a.Merged()
	if err != nil {
		return []error{fmt.Errorf("%s: host merge: %w", label, err)}
	}
	it.x, it.frozen = nil, nil
	vals, err := it.run(a.Mrg)
	if err != nil {
		return []error{fmt.Errorf("%s: reference interpreter, merge program: %w", label, err)}
	}
	var errs []error
	w := vals[a.Mrg.Outputs["weight"]]
	errs = append(errs, compareValues(label, "merged weight", ops.Data(m.Weight), w)...)
	b := it.b
	if id, ok := a.Mrg.Outputs["bias"]; ok {
		b = vals[id]
	}
	hb := make([]float32, a.Base.Out())
	if m.Bias != nil {
		hb = ops.Data(m.Bias)
	}
	errs = append(errs, compareValues(label, "merged bias", hb, b)...)
	return errs
}

// compareValues checks host values against reference ones to ValueTol
// relative to the reference's largest magnitude.
func compareValues(label, what string, host []float32, ref dense64) []error {
	if len(host) != len(ref.v) {
		return []error{fmt.Errorf("%s: %s: host has %d values, reference %d", label, what, len(host), len(ref.v))}
	}
	scale := 1.0
	for _, v := range ref.v {
		scale = math.Max(scale, math.Abs(v))
	}
	var errs []error
	for i, v := range ref.v {
		d := math.Abs(float64(host[i]) - v)
		if d > ValueTol*scale || math.IsNaN(d) {
			if len(errs) == maxReported {
				errs = append(errs, fmt.Errorf("%s: %s: more mismatches", label, what))
				break
			}
			errs = append(errs, fmt.Errorf("%s: %s[%d,%d]: host %.7g, reference interpreter %.7g (tolerance %.2g)", label, what, i/ref.c, i%ref.c, host[i], v, ValueTol*scale))
		}
	}
	return errs
}

// compareGrad checks a host gradient (nil: none arrived) against finite
// differences.
func compareGrad(label, how, name string, rows, cols int, host []float32, fd []float64) []error {
	if host == nil {
		host = make([]float32, len(fd))
	}
	if len(host) != len(fd) {
		return []error{fmt.Errorf("%s (%s): gradient of %s has %d values, want %d", label, how, name, len(host), len(fd))}
	}
	var errs []error
	var diff, norm float64
	for i, f := range fd {
		g := float64(host[i])
		d := g - f
		diff += d * d
		norm += f * f
		if tol := GradElemTol * math.Max(1, math.Abs(f)); math.Abs(d) > tol || math.IsNaN(d) {
			switch {
			case len(errs) < maxReported:
				errs = append(errs, fmt.Errorf("%s (%s): gradient of %s[%d,%d]: host %.7g, finite differences %.7g (tolerance %.2g)", label, how, name, i/cols, i%cols, g, f, tol))
			case len(errs) == maxReported:
				errs = append(errs, fmt.Errorf("%s (%s): gradient of %s: more mismatches", label, how, name))
			}
		}
	}
	diff, norm = math.Sqrt(diff), math.Sqrt(norm)
	if tol := GradNormTol*norm + GradElemTol*1e-2*math.Sqrt(float64(len(fd))); diff > tol || math.IsNaN(diff) {
		errs = append(errs, fmt.Errorf("%s (%s): gradient of %s [%dx%d]: ||host - finite differences|| = %.3g, ||finite differences|| = %.3g (tolerance %.2g)", label, how, name, rows, cols, diff, norm, tol))
	}
	return errs
}

// dense64 is a row-major float64 matrix.
type dense64 struct {
	r, c int
	v    []float64
}

func newDense64(r, c int) dense64 { return dense64{r, c, make([]float64, r*c)} }

func fromFloat32(r, c int, v []float32) dense64 {
	m := newDense64(r, c)
	for i, x := range v {
		m.v[i] = float64(x)
	}
	return m
}

func (m dense64) at(i, j int) float64 { return m.v[i*m.c+j] }

// interp evaluates programs in float64, independently of the host's
// compiled operators. Dropout is the identity (training off); stop_grad
// nodes take their values from frozen when it has them.
type interp struct {
	x      *dense64 // nil for merge programs
	w, b   dense64  // base weight [out,in] and bias [1,out]
	params map[string]*dense64
	frozen map[int]dense64
}

// run evaluates every node of p and returns their values.
func (it *interp) run(p *program.Program) ([]dense64, error) {
	vals := make([]dense64, len(p.Nodes))
	for i, n := range p.Nodes {
		for _, a := range n.Args {
			if a < 0 || a >= i {
				return nil, fmt.Errorf("node %d (%s): argument %d is not an earlier node", i, n.Op, a)
			}
		}
		arg := func(k int) dense64 { return vals[n.Args[k]] }
		var v dense64
		var err error
		switch n.Op {
		case program.OpInput:
			if it.x == nil {
				return nil, fmt.Errorf("node %d: input outside a forward program", i)
			}
			v = *it.x
		case program.OpWeight:
			v = it.w
		case program.OpBias:
			v = it.b
		case program.OpParam:
			pm, ok := it.params[n.Name]
			if !ok {
				return nil, fmt.Errorf("node %d: unknown parameter %q", i, n.Name)
			}
			v = *pm
		case program.OpConst:
			v = dense64{1, 1, []float64{n.Value}}
		case program.OpMatMul:
			v, err = matMul64(arg(0), arg(1), false)
		case program.OpMatMulT:
			v, err = matMul64(arg(0), arg(1), true)
		case program.OpAdd, program.OpSub, program.OpMul, program.OpDiv:
			v, err = binary64(n.Op, arg(0), arg(1))
		case program.OpScale:
			v = scale64(arg(0), n.Value)
		case program.OpRowNorm:
			a := arg(0)
			v = newDense64(a.r, 1)
			for r := 0; r < a.r; r++ {
				s := 0.0
				for c := 0; c < a.c; c++ {
					s += a.at(r, c) * a.at(r, c)
				}
				v.v[r] = math.Sqrt(s)
			}
		case program.OpColNorm:
			a := arg(0)
			v = newDense64(1, a.c)
			for r := 0; r < a.r; r++ {
				for c := 0; c < a.c; c++ {
					v.v[c] += a.at(r, c) * a.at(r, c)
				}
			}
			for c := range v.v {
				v.v[c] = math.Sqrt(v.v[c])
			}
		case program.OpT:
			v = transpose64(arg(0))
		case program.OpStopGrad:
			if f, ok := it.frozen[i]; ok {
				v = f
			} else {
				v = arg(0)
			}
		case program.OpDropout:
			v = arg(0)
		case program.OpLinear:
			if v, err = matMul64(arg(0), it.w, true); err == nil {
				v, err = binary64(program.OpAdd, v, it.b)
			}
		case program.OpLowRank:
			// Value * x A^T B^T, dropout off.
			if v, err = matMul64(arg(0), arg(1), true); err == nil {
				if v, err = matMul64(v, arg(2), true); err == nil {
					v = scale64(v, n.Value)
				}
			}
		default:
			return nil, fmt.Errorf("node %d: unknown op %q", i, n.Op)
		}
		if err != nil {
			return nil, fmt.Errorf("node %d (%s): %w", i, n.Op, err)
		}
		vals[i] = v
	}
	return vals, nil
}

// matMul64 is a b, or a b^T when bt.
func matMul64(a, b dense64, bt bool) (dense64, error) {
	br, bc := b.r, b.c
	if bt {
		br, bc = bc, br
	}
	if a.c != br {
		return dense64{}, fmt.Errorf("%dx%d times %dx%d", a.r, a.c, br, bc)
	}
	v := newDense64(a.r, bc)
	for i := 0; i < a.r; i++ {
		for j := 0; j < bc; j++ {
			s := 0.0
			for k := 0; k < a.c; k++ {
				if bt {
					s += a.at(i, k) * b.at(j, k)
				} else {
					s += a.at(i, k) * b.at(k, j)
				}
			}
			v.v[i*bc+j] = s
		}
	}
	return v, nil
}

// binary64 applies an elementwise operation, broadcasting rows or columns
// of size 1.
func binary64(op program.Op, a, b dense64) (dense64, error) {
	dim := func(x, y int) (int, bool) {
		switch {
		case x == y, y == 1:
			return x, true
		case x == 1:
			return y, true
		}
		return 0, false
	}
	r, ok1 := dim(a.r, b.r)
	c, ok2 := dim(a.c, b.c)
	if !ok1 || !ok2 {
		return dense64{}, fmt.Errorf("shapes %dx%d and %dx%d do not broadcast", a.r, a.c, b.r, b.c)
	}
	get := func(m dense64, i, j int) float64 { return m.at(i%m.r, j%m.c) }
	v := newDense64(r, c)
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			x, y := get(a, i, j), get(b, i, j)
			var z float64
			switch op {
			case program.OpAdd:
				z = x + y
			case program.OpSub:
				z = x - y
			case program.OpMul:
				z = x * y
			case program.OpDiv:
				z = x / y
			}
			v.v[i*c+j] = z
		}
	}
	return v, nil
}

func scale64(a dense64, s float64) dense64 {
	v := newDense64(a.r, a.c)
	for i, x := range a.v {
		v.v[i] = x * s
	}
	return v
}

func transpose64(a dense64) dense64 {
	v := newDense64(a.c, a.r)
	for i := 0; i < a.r; i++ {
		for j := 0; j < a.c; j++ {
			v.v[j*a.r+i] = a.at(i, j)
		}
	}
	return v
}
