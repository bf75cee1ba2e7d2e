// Package adapter attaches plugin-defined adapters to linear slots: it
// compiles an adapter's forward and merge programs into spago operators,
// initialises its parameters, merges it back into a plain linear layer, and
// checks that the two agree.
package adapter

import (
	"encoding/gob"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"unsafe"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/plugins/program"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
)

func init() { gob.Register(&Adapted{}) }

var (
	_ layer.Forwarder   = (*Adapted)(nil)
	_ layer.ParamLister = (*Adapted)(nil)
)

// Adapted is a linear layer with an adapter: the frozen base layer plus the
// adapter's parameters and programs. It sits in the base layer's Slot.
type Adapted struct {
	nn.Module
	Base *layer.Linear `hf:"base_layer"`
	// Type is the adapter's component name ("lora", "dora", ...).
	Type string
	// ConfigJSON is the adapter configuration the plan was made with.
	ConfigJSON string
	// Names, Shapes and Values are the adapter parameters in plan order;
	// Shapes are as planned (1-D vectors are stored as [1, n] rows).
	Names  []string
	Shapes [][]int
	Values []*nn.Param
	Train  []bool
	Fwd    *program.Program
	Mrg    *program.Program
	// Training enables dropout.
	Training bool
	// Summary is what the plugin said about the module with its plan
	// (rank, scale), for reports.
	Summary rpc.Summary
	// Unfused runs lowrank and linear nodes as plain matrix products
	// instead of fused operators (for checks and benchmarks).
	Unfused bool
	rng     *rand.Rand
	cfg     map[string]any
	fwdPlan *compiled
}

// Kind reports "linear": an adapted linear is still a linear for selection.
func (a *Adapted) Kind() string { return "linear" }

// ListParams names the adapter parameters relative to the layer.
func (a *Adapted) ListParams() []layer.Param {
	out := make([]layer.Param, len(a.Names))
	for i, n := range a.Names {
		out[i] = layer.Param{Path: n, Param: a.Values[i], Shape: a.Shapes[i]}
	}
	return out
}

// Param returns the adapter parameter called name, or nil.
func (a *Adapted) Param(name string) *nn.Param {
	for i, n := range a.Names {
		if n == name {
			return a.Values[i]
		}
	}
	return nil
}

// Config returns the configuration the adapter was planned with, typed as
// it was given (integers as int). A layer restored from its gob encoding
// decodes ConfigJSON, reading integral numbers as int.
func (a *Adapted) Config() map[string]any {
	if a.cfg != nil {
		return a.cfg
	}
	d := json.NewDecoder(strings.NewReader(a.ConfigJSON))
	d.UseNumber()
	var m map[string]any
	_ = d.Decode(&m)
	for k, v := range m {
		m[k] = typedNumber(v)
	}
	return m
}

func typedNumber(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = typedNumber(x[i])
		}
	}
	return v
}

// SetTraining switches dropout on or off, with a seed for its masks.
func (a *Adapted) SetTraining(on bool, seed uint64) {
	a.Training = on
	a.rng = rand.New(rand.NewPCG(seed, 0xd0))
}

// New builds an adapted layer from a plan, checking its programs against the
// layer, with parameters initialised by the plan's rules. values holds
// parameter values that take precedence over the rules: those of "computed"
// parameters (from the plugin's Init), or every parameter of a saved
// adapter; it may also hold rpc.BaseWeightName, a replacement base weight,
// used when the plan says it replaces the base. seed makes random
// initialisation reproducible; path varies it per layer.
func New(base *layer.Linear, path, typ string, cfg map[string]any, plan *rpc.Plan, computed map[string][]float32, seed uint64) (*Adapted, error) {
	if plan == nil || plan.Forward == nil || plan.Merge == nil {
		return nil, fmt.Errorf("%s: %s plan lacks a forward or merge program", path, typ)
	}
	cj, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", path, err)
	}
	env := program.Env{In: base.In(), Out: base.Out(), Params: map[string][]int{}}
	a := &Adapted{Base: base, Type: typ, ConfigJSON: string(cj), Fwd: plan.Forward, Mrg: plan.Merge, Summary: plan.Summary, cfg: cfg}
	for _, ps := range plan.Params {
		if _, dup := env.Params[ps.Name]; dup {
			return nil, fmt.Errorf("%s: %s plan declares parameter %q twice", path, typ, ps.Name)
		}
		s2, err := program.ParamShape(ps.Shape)
		if err != nil {
			return nil, fmt.Errorf("%s: %s parameter %q: %w", path, typ, ps.Name, err)
		}
		if s2[0] <= 0 || s2[1] <= 0 {
			return nil, fmt.Errorf("%s: %s parameter %q has empty shape %v", path, typ, ps.Name, ps.Shape)
		}
		env.Params[ps.Name] = ps.Shape
		vals := make([]float32, s2[0]*s2[1])
		if err := initValues(vals, ps, s2, computed, seedFor(seed, path, ps.Name)); err != nil {
			return nil, fmt.Errorf("%s: %s parameter %q: %w", path, typ, ps.Name, err)
		}
		p := nn.NewParam(ops.New(s2[0], s2[1], vals))
		p.SetRequiresGrad(ps.Trainable)
		a.Names = append(a.Names, ps.Name)
		a.Shapes = append(a.Shapes, append([]int(nil), ps.Shape...))
		a.Values = append(a.Values, p)
		a.Train = append(a.Train, ps.Trainable)
	}
	if _, err := plan.Forward.Check(env, true); err != nil {
		return nil, fmt.Errorf("%s: %s forward program: %w", path, typ, err)
	}
	if _, err := plan.Merge.Check(env, false); err != nil {
		return nil, fmt.Errorf("%s: %s merge program: %w", path, typ, err)
	}
	if w, ok := computed[rpc.BaseWeightName]; ok && plan.ReplacesBase {
		if len(w) != base.In()*base.Out() {
			return nil, fmt.Errorf("%s: %s promised a replacement base weight of %d values, got %d", path, typ, base.In()*base.Out(), len(w))
		}
		nb := &layer.Linear{Weight: nn.NewParam(ops.New(base.Out(), base.In(), append([]float32(nil), w...))), Bias: base.Bias, Conv1D: base.Conv1D}
		nb.Weight.SetRequiresGrad(false)
		a.Base = nb
	}
	return a, nil
}

func seedFor(seed uint64, path, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return seed ^ h.Sum64()
}

func initValues(v []float32, ps rpc.ParamSpec, s program.Shape, computed map[string][]float32, seed uint64) error {
	if c, ok := computed[ps.Name]; ok {
		if len(c) != len(v) {
			return fmt.Errorf("%d values given for shape %v", len(c), ps.Shape)
		}
		copy(v, c)
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, 0x1417))
	switch ps.Init.Rule {
	case "", "zeros":
	case "ones":
		for i := range v {
			v[i] = 1
		}
	case "constant":
		for i := range v {
			v[i] = float32(ps.Init.Value)
		}
	case "normal":
		if ps.Init.Std < 0 {
			return fmt.Errorf("normal init with negative std %v", ps.Init.Std)
		}
		for i := range v {
			v[i] = float32(rng.NormFloat64() * ps.Init.Std)
		}
	case "kaiming_uniform":
		// PyTorch nn.init.kaiming_uniform_(a): bound = gain*sqrt(3/fan_in),
		// gain = sqrt(2/(1+a^2)), fan_in = the second dimension.
		gain := math.Sqrt(2 / (1 + ps.Init.A*ps.Init.A))
		bound := gain * math.Sqrt(3/float64(s[1]))
		for i := range v {
			v[i] = float32((rng.Float64()*2 - 1) * bound)
		}
	case "computed":
		return fmt.Errorf("computed init but the plugin returned no values")
	default:
		return fmt.Errorf("unknown init rule %q", ps.Init.Rule)
	}
	return nil
}

// Forward runs the forward program on x [T, in] (see compile for what
// runs fused).
func (a *Adapted) Forward(x mat.Tensor) mat.Tensor {
	out, err := a.eval(a.Fwd, x)
	if err != nil {
		panic(err) // programs were checked when the layer was built
	}
	return out["y"]
}

// Merged evaluates the merge program and returns the equivalent plain
// linear layer (frozen). A bias appears only if the base had one or the
// merge produces a non-zero one.
func (a *Adapted) Merged() (*layer.Linear, error) {
	if err := a.Base.Materialize(); err != nil {
		return nil, fmt.Errorf("%s base weight: %w", a.Type, err)
	}
	// Without gradients: merging is not training, and recorded operators
	// would stay on the tape (with every product) until a backward pass.
	var out map[string]mat.Tensor
	err := ops.WithoutGrad(func() (err error) {
		out, err = a.eval(a.Mrg, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	// The program's result is a fresh tensor unless it hands back one of
	// its inputs (the base weight, an adapter value): only then copy.
	w := ops.Data(out["weight"])
	if a.aliases(w) {
		w = slices.Clone(w)
	}
	l := &layer.Linear{Weight: layer.Own(a.Base.Out(), a.Base.In(), w), Conv1D: a.Base.Conv1D}
	l.Weight.SetRequiresGrad(false)
	var bias []float32
	if b, ok := out["bias"]; ok {
		bias = ops.Data(b)
	} else if a.Base.Bias != nil {
		bias = ops.Data(a.Base.Bias)
	}
	nonzero := a.Base.Bias != nil
	for _, v := range bias {
		nonzero = nonzero || v != 0
	}
	if nonzero {
		l.Bias = nn.NewParam(ops.New(a.Base.Out(), 1, append([]float32(nil), bias...)))
		l.Bias.SetRequiresGrad(false)
	}
	for _, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("%s merge produced non-finite weights", a.Type)
		}
	}
	return l, nil
}

// aliases reports whether v shares memory with the base layer's weight or
// bias or one of the adapter's values.
func (a *Adapted) aliases(v []float32) bool {
	in := []mat.Tensor{a.Base.Weight}
	if a.Base.Bias != nil {
		in = append(in, a.Base.Bias)
	}
	for _, v := range a.Values {
		in = append(in, v)
	}
	for _, t := range in {
		if t != nil && overlap(v, ops.Data(t)) {
			return true
		}
	}
	return false
}

// overlap reports whether two slices share any element's memory.
func overlap(a, b []float32) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	pa, pb := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return pa < pb+4*uintptr(len(b)) && pb < pa+4*uintptr(len(a))
}

// compiled is a program's execution plan: the nodes to evaluate, and the
// adds that run as one fused LoRA operator.
type compiled struct {
	needed []bool
	// fusedAdd maps an add node to the lowrank node whose update it adds
	// to linear(x) of the same x.
	fusedAdd map[int]int
	// scaledAdd maps an add node of a merge program, u + scale(P Q, s)
	// (either order), to its u node and its scale node: the product is
	// made once and the rest in its buffer (see addScaledProduct).
	scaledAdd map[int][2]int
}

// compile plans a program's execution. An add of linear(x) and
// lowrank(x, A, B) (either order, the same x node) runs as the fused LoRA
// operator, y = x W^T + b + s d(x) A^T B^T; its two operands are then not
// evaluated unless something else uses them. In a merge program (merge:
// run without gradients), an add of u and scale(P Q, s) (either order)
// runs in the product's buffer (addScaledProduct). Every other node runs
// as its own operator (lowrank as the fused low-rank operator).
func compile(p *program.Program, unfused, merge bool) *compiled {
	c := &compiled{needed: make([]bool, len(p.Nodes)), fusedAdd: map[int]int{}, scaledAdd: map[int][2]int{}}
	for i, n := range p.Nodes {
		if unfused || n.Op != program.OpAdd {
			continue
		}
		l, r := n.Args[0], n.Args[1]
		if op := p.Nodes[l].Op; op == program.OpLowRank || op == program.OpScale {
			l, r = r, l
		}
		switch left, right := p.Nodes[l], p.Nodes[r]; {
		case left.Op == program.OpLinear && right.Op == program.OpLowRank && left.Args[0] == right.Args[0]:
			c.fusedAdd[i] = r
		case merge && right.Op == program.OpScale && p.Nodes[right.Args[0]].Op == program.OpMatMul:
			c.scaledAdd[i] = [2]int{l, r}
		}
	}
	var mark func(int)
	mark = func(i int) {
		if c.needed[i] {
			return
		}
		c.needed[i] = true
		if k, ok := c.fusedAdd[i]; ok {
			for _, arg := range p.Nodes[k].Args {
				mark(arg)
			}
			return
		}
		if us, ok := c.scaledAdd[i]; ok { // u, and the product's operands
			mark(us[0])
			for _, arg := range p.Nodes[p.Nodes[us[1]].Args[0]].Args {
				mark(arg)
			}
			return
		}
		for _, arg := range p.Nodes[i].Args {
			mark(arg)
		}
	}
	for _, id := range p.Outputs {
		mark(id)
	}
	return c
}

// eval runs a program. x is nil for merge programs.
// linear is the base layer's product x*W^T + bias, from its stored
// weight when it keeps one.
func (a *Adapted) linear(x, bias mat.Tensor) mat.Tensor {
	if a.Base.Source != nil {
		return ops.StoredLinear(x, a.Base.Source, a.Base.Out(), a.Base.In(), bias)
	}
	return ops.Linear(x, a.Base.Weight, bias)
}

func (a *Adapted) eval(p *program.Program, x mat.Tensor) (map[string]mat.Tensor, error) {
	var plan *compiled
	if p == a.Fwd {
		if a.fwdPlan == nil {
			a.fwdPlan = compile(p, false, false)
		}
		plan = a.fwdPlan
		if a.Unfused {
			plan = compile(p, true, false)
		}
	} else {
		plan = compile(p, a.Unfused, p == a.Mrg && x == nil)
	}
	vals := make([]mat.Tensor, len(p.Nodes))
	params := map[string]mat.Tensor{}
	for i, n := range a.Names {
		params[n] = a.Values[i]
	}
	out := a.Base.Out()
	var bias mat.Tensor
	if a.Base.Bias != nil {
		bias = a.Base.Bias
	}
	mask := func(x mat.Tensor, p float64) []float32 {
		if !a.Training || a.rng == nil {
			return nil
		}
		return ops.DropoutMask(x.Value().Size(), p, a.rng)
	}
	for i, n := range p.Nodes {
		if !plan.needed[i] {
			continue
		}
		arg := func(k int) mat.Tensor { return vals[n.Args[k]] }
		if k, ok := plan.fusedAdd[i]; ok {
			lr := p.Nodes[k]
			xv := vals[lr.Args[0]]
			if a.Base.Source != nil { // a stored base: its own product, then the low-rank term
				vals[i] = ops.Add(a.linear(xv, bias), ops.LowRank(xv, vals[lr.Args[1]], vals[lr.Args[2]], float32(lr.Value), mask(xv, lr.Value2)))
				continue
			}
			vals[i] = ops.LoRA(xv, a.Base.Weight, bias, vals[lr.Args[1]], vals[lr.Args[2]], float32(lr.Value), mask(xv, lr.Value2))
			continue
		}
		if us, ok := plan.scaledAdd[i]; ok {
			mm := p.Nodes[p.Nodes[us[1]].Args[0]]
			vals[i] = addScaledProduct(vals[us[0]], vals[mm.Args[0]], vals[mm.Args[1]], float32(p.Nodes[us[1]].Value))
			continue
		}
		var v mat.Tensor
		switch n.Op {
		case program.OpLinear:
			v = a.linear(arg(0), bias)
		case program.OpLowRank:
			xv := arg(0)
			if a.Unfused {
				if a.Training && a.rng != nil && n.Value2 > 0 {
					xv = ops.Dropout(xv, n.Value2, a.rng)
				}
				v = ops.Scale(ops.Linear(ops.Linear(xv, arg(1), nil), arg(2), nil), float32(n.Value))
			} else {
				v = ops.LowRank(xv, arg(1), arg(2), float32(n.Value), mask(xv, n.Value2))
			}
		case program.OpInput:
			if x == nil {
				return nil, fmt.Errorf("node %d: input used outside a forward program", i)
			}
			v = x
		case program.OpWeight:
			if err := a.Base.Materialize(); err != nil { // the values themselves are needed
				return nil, fmt.Errorf("%s base weight: %w", a.Type, err)
			}
			v = a.Base.Weight
		case program.OpBias:
			switch {
			case a.Base.Bias == nil:
				v = ops.New(1, out, make([]float32, out))
			case a.Base.Bias.RequiresGrad():
				v = ops.Transpose(a.Base.Bias)
			default:
				v = ops.New(1, out, ops.Data(a.Base.Bias))
			}
		case program.OpParam:
			v = params[n.Name]
		case program.OpConst:
			v = ops.New(1, 1, []float32{float32(n.Value)})
		case program.OpMatMul:
			v = ops.MatMul(arg(0), arg(1))
		case program.OpMatMulT:
			v = ops.Linear(arg(0), arg(1), nil)
		case program.OpAdd:
			v = ops.Binary(ops.AddOp, arg(0), arg(1))
		case program.OpSub:
			v = ops.Binary(ops.SubOp, arg(0), arg(1))
		case program.OpMul:
			v = ops.Binary(ops.MulOp, arg(0), arg(1))
		case program.OpDiv:
			v = ops.Binary(ops.DivOp, arg(0), arg(1))
		case program.OpScale:
			v = ops.Scale(arg(0), float32(n.Value))
		case program.OpRowNorm:
			v = ops.RowNorm(arg(0))
		case program.OpColNorm:
			v = ops.ColNorm(arg(0))
		case program.OpT:
			v = ops.Transpose(arg(0))
		case program.OpStopGrad:
			v = ops.StopGrad(arg(0))
		case program.OpDropout:
			if a.Training && a.rng != nil {
				v = ops.Dropout(arg(0), n.Value, a.rng)
			} else {
				v = arg(0)
			}
		default:
			return nil, fmt.Errorf("node %d: unknown op %q", i, n.Op)
		}
		vals[i] = v
	}
	res := map[string]mat.Tensor{}
	for name, id := range p.Outputs {
		res[name] = vals[id]
	}
	return res, nil
}

// addScaledProduct returns u + s*(P Q) with the values and roundings of
// Add(u, Scale(MatMul(P, Q), s)), but made in the product's own buffer:
// one weight-sized buffer and pass instead of three. Shapes that need
// broadcasting take the operators' path.
func addScaledProduct(u, pm, qm mat.Tensor, s float32) mat.Tensor {
	t := ops.MatMul(pm, qm)
	if ops.Rows(u) != ops.Rows(t) || ops.Cols(u) != ops.Cols(t) {
		return ops.Binary(ops.AddOp, u, ops.Scale(t, s))
	}
	tv, uv := ops.Data(t), ops.Data(u)
	for i, v := range tv {
		tv[i] = uv[i] + float32(v*s) // rounded as Scale, then as the add
	}
	return t
}

// CheckMerge verifies forward(x) == x*merge(W)^T + merge(b) on random input
// of the given number of tokens, within tol relative to the output scale.
// It is the generic consistency check every adapter type must pass.
func (a *Adapted) CheckMerge(tokens int, seed uint64, tol float64) error {
	rng := rand.New(rand.NewPCG(seed, 0xc4ec))
	in := a.Base.In()
	xs := make([]float32, tokens*in)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	x := ops.New(tokens, in, xs)
	training := a.Training
	a.Training = false
	defer func() { a.Training = training }()
	y := ops.Data(a.Forward(x))
	m, err := a.Merged()
	if err != nil {
		return err
	}
	z := ops.Data(m.Forward(x))
	scale := 0.0
	for _, v := range y {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for i := range y {
		if d := math.Abs(float64(y[i] - z[i])); d > tol*math.Max(1, scale) || math.IsNaN(d) {
			return fmt.Errorf("%s: forward and merged layer disagree at %d: %v vs %v (tolerance %g x %g)", a.Type, i, y[i], z[i], tol, math.Max(1, scale))
		}
	}
	return nil
}

// LowRank reports whether the adapter is a plain low-rank update of its
// layer: its forward program's output is add(linear(x), lowrank(x, A, B))
// with A and B parameters (the fused LoRA form), so that
// y = x W^T + b + scale x A^T B^T. It returns A [r, in], B [out, r] and
// the scale. Formats that store only low-rank factors (llama.cpp's LoRA
// GGUF) accept exactly these adapters, whatever their plugin calls them.
func (a *Adapted) LowRank() (A, B *nn.Param, scale float64, ok bool) {
	p := a.Fwd
	id, has := p.Outputs["y"]
	if !has {
		return nil, nil, 0, false
	}
	k, fused := compile(p, false, false).fusedAdd[id]
	if !fused {
		return nil, nil, 0, false
	}
	lr := p.Nodes[k]
	if p.Nodes[lr.Args[0]].Op != program.OpInput || p.Nodes[lr.Args[1]].Op != program.OpParam || p.Nodes[lr.Args[2]].Op != program.OpParam {
		return nil, nil, 0, false
	}
	A, B = a.Param(p.Nodes[lr.Args[1]].Name), a.Param(p.Nodes[lr.Args[2]].Name)
	if A == nil || B == nil {
		return nil, nil, 0, false
	}
	return A, B, lr.Value, true
}
