// Package program is the adapter program language: small typed expression
// graphs over a layer's input x [T, in], its frozen base weight W [out, in]
// and bias b [out], and the adapter's own parameters. An adapter plugin
// describes its forward pass and its merge (the weight and bias the adapter
// folds into) as programs; the host compiles them to spago operators with
// autograd. Plugins never run the training loop.
//
// Values are 2-D matrices. 1-D tensors (the bias, vector parameters) are
// rows [1, n]. Elementwise operations broadcast rows or columns of size 1.
package program

import (
	"fmt"
	"strings"
)

// Op is an operation of the language.
type Op string

// The operations. Leaves take no arguments; the rest take the listed ones.
const (
	OpInput    Op = "input"     // x [T, in] (forward programs only)
	OpWeight   Op = "weight"    // W [out, in], frozen
	OpBias     Op = "bias"      // b [1, out], frozen; zeros when the layer has none
	OpParam    Op = "param"     // an adapter parameter by Name
	OpConst    Op = "const"     // the scalar Value, [1, 1]
	OpMatMul   Op = "matmul"    // a [m,k] * b [k,n]
	OpMatMulT  Op = "matmul_t"  // a [m,k] * b[n,k]^T
	OpAdd      Op = "add"       // a + b (broadcasting)
	OpSub      Op = "sub"       // a - b (broadcasting)
	OpMul      Op = "mul"       // a * b elementwise (broadcasting)
	OpDiv      Op = "div"       // a / b elementwise (broadcasting)
	OpScale    Op = "scale"     // a * Value
	OpRowNorm  Op = "row_norm"  // L2 norm of each row: [m,n] -> [m,1]
	OpColNorm  Op = "col_norm"  // L2 norm of each column: [m,n] -> [1,n]
	OpT        Op = "transpose" // a^T
	OpStopGrad Op = "stop_grad" // a, with no gradient flowing back
	OpDropout  Op = "dropout"   // inverted dropout with probability Value (training only)
	// OpLinear is the frozen base layer applied to its argument a [m,in]:
	// a W^T + b, [m,out].
	OpLinear Op = "linear"
	// OpLowRank is a low-rank update: Value * d(x) A^T B^T for x [m,k],
	// A [r,k], B [n,r], giving [m,n], where d is inverted dropout with
	// probability Value2 (training only). The host runs it as one fused
	// operator that never forms B A, and runs add(linear(x), lowrank(x, A,
	// B)) as the fused LoRA layer.
	OpLowRank Op = "lowrank"
)

var arity = map[Op]int{
	OpInput: 0, OpWeight: 0, OpBias: 0, OpParam: 0, OpConst: 0,
	OpMatMul: 2, OpMatMulT: 2, OpAdd: 2, OpSub: 2, OpMul: 2, OpDiv: 2,
	OpScale: 1, OpRowNorm: 1, OpColNorm: 1, OpT: 1, OpStopGrad: 1, OpDropout: 1,
	OpLinear: 1, OpLowRank: 3,
}

// Node is one operation; Args index earlier nodes of the same program.
type Node struct {
	Op    Op      `json:"op"`
	Args  []int   `json:"args,omitempty"`
	Name  string  `json:"name,omitempty"`
	Value float64 `json:"value,omitempty"`
	// Value2 is a second scalar (lowrank: its input's dropout probability).
	Value2 float64 `json:"value2,omitempty"`
}

// Program is a list of nodes in topological order (arguments before use)
// with named outputs: "y" for a forward program, "weight" and optionally
// "bias" for a merge program.
type Program struct {
	Nodes   []Node         `json:"nodes"`
	Outputs map[string]int `json:"outputs"`
}

// Shape is [rows, cols]; Rows == T (-1) stands for the token count.
type Shape [2]int

// T is the symbolic token dimension of the input.
const T = -1

func (s Shape) String() string {
	r := fmt.Sprint(s[0])
	if s[0] == T {
		r = "T"
	}
	return fmt.Sprintf("[%s,%d]", r, s[1])
}

// Env gives the shapes of a program's leaves for one layer.
type Env struct {
	In, Out int
	// Params maps parameter names to shapes as planned (1-D shapes [n] are
	// rows [1, n]).
	Params map[string][]int
}

// ParamShape returns the 2-D shape of a planned parameter.
func ParamShape(shape []int) (Shape, error) {
	switch len(shape) {
	case 1:
		return Shape{1, shape[0]}, nil
	case 2:
		return Shape{shape[0], shape[1]}, nil
	}
	return Shape{}, fmt.Errorf("parameter shape %v: only 1-D and 2-D parameters are supported", shape)
}

// Check validates a program against an environment and returns the shape
// of every node. forward says whether the input x may be used. Errors name
// the node and the problem.
func (p *Program) Check(env Env, forward bool) ([]Shape, error) {
	shapes := make([]Shape, len(p.Nodes))
	for i, n := range p.Nodes {
		want, ok := arity[n.Op]
		if !ok {
			return nil, fmt.Errorf("node %d: unknown op %q", i, n.Op)
		}
		if len(n.Args) != want {
			return nil, fmt.Errorf("node %d (%s): %d arguments, want %d", i, n.Op, len(n.Args), want)
		}
		var a, b, c Shape
		for k, arg := range n.Args {
			if arg < 0 || arg >= i {
				return nil, fmt.Errorf("node %d (%s): argument %d refers to node %d, not an earlier node", i, n.Op, k, arg)
			}
			switch k {
			case 0:
				a = shapes[arg]
			case 1:
				b = shapes[arg]
			default:
				c = shapes[arg]
			}
		}
		var s Shape
		switch n.Op {
		case OpInput:
			if !forward {
				return nil, fmt.Errorf("node %d: a merge program cannot use the input x", i)
			}
			s = Shape{T, env.In}
		case OpWeight:
			s = Shape{env.Out, env.In}
		case OpBias:
			s = Shape{1, env.Out}
		case OpParam:
			ps, ok := env.Params[n.Name]
			if !ok {
				return nil, fmt.Errorf("node %d: unknown parameter %q", i, n.Name)
			}
			var err error
			if s, err = ParamShape(ps); err != nil {
				return nil, fmt.Errorf("node %d: %w", i, err)
			}
		case OpConst:
			s = Shape{1, 1}
		case OpMatMul:
			if a[1] != b[0] {
				return nil, fmt.Errorf("node %d (matmul): %v x %v", i, a, b)
			}
			s = Shape{a[0], b[1]}
		case OpMatMulT:
			if a[1] != b[1] {
				return nil, fmt.Errorf("node %d (matmul_t): %v x %v^T", i, a, b)
			}
			s = Shape{a[0], b[0]}
		case OpAdd, OpSub, OpMul, OpDiv:
			var err error
			if s, err = broadcast(a, b); err != nil {
				return nil, fmt.Errorf("node %d (%s): %w", i, n.Op, err)
			}
		case OpScale, OpStopGrad:
			s = a
		case OpDropout:
			if n.Value < 0 || n.Value >= 1 {
				return nil, fmt.Errorf("node %d (dropout): probability %v outside [0,1)", i, n.Value)
			}
			s = a
		case OpLinear:
			if a[1] != env.In {
				return nil, fmt.Errorf("node %d (linear): input %v, the layer takes %d features", i, a, env.In)
			}
			s = Shape{a[0], env.Out}
		case OpLowRank:
			if a[1] != b[1] || c[1] != b[0] {
				return nil, fmt.Errorf("node %d (lowrank): x %v, A %v, B %v: want x [m,k], A [r,k], B [n,r]", i, a, b, c)
			}
			if n.Value2 < 0 || n.Value2 >= 1 {
				return nil, fmt.Errorf("node %d (lowrank): dropout probability %v outside [0,1)", i, n.Value2)
			}
			s = Shape{a[0], c[0]}
		case OpRowNorm:
			s = Shape{a[0], 1}
		case OpColNorm:
			if a[0] == T {
				return nil, fmt.Errorf("node %d (col_norm): cannot reduce over tokens", i)
			}
			s = Shape{1, a[1]}
		case OpT:
			if a[0] == T {
				return nil, fmt.Errorf("node %d (transpose): cannot transpose over tokens", i)
			}
			s = Shape{a[1], a[0]}
		}
		shapes[i] = s
	}
	out := func(name string, want Shape, required bool) error {
		id, ok := p.Outputs[name]
		if !ok {
			if required {
				return fmt.Errorf("missing output %q", name)
			}
			return nil
		}
		if id < 0 || id >= len(p.Nodes) {
			return fmt.Errorf("output %q refers to node %d of %d", name, id, len(p.Nodes))
		}
		if shapes[id] != want {
			return fmt.Errorf("output %q has shape %v, want %v", name, shapes[id], want)
		}
		return nil
	}
	if forward {
		if err := out("y", Shape{T, env.Out}, true); err != nil {
			return nil, err
		}
	} else {
		if err := out("weight", Shape{env.Out, env.In}, true); err != nil {
			return nil, err
		}
		if err := out("bias", Shape{1, env.Out}, false); err != nil {
			return nil, err
		}
	}
	for name := range p.Outputs {
		if name != "y" && name != "weight" && name != "bias" {
			return nil, fmt.Errorf("unknown output %q", name)
		}
	}
	return shapes, nil
}

func broadcast(a, b Shape) (Shape, error) {
	dim := func(x, y int) (int, bool) {
		switch {
		case x == y:
			return x, true
		case x == 1:
			return y, true
		case y == 1:
			return x, true
		}
		return 0, false
	}
	r, ok1 := dim(a[0], b[0])
	c, ok2 := dim(a[1], b[1])
	if !ok1 || !ok2 {
		return Shape{}, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
	}
	return Shape{r, c}, nil
}

// String renders the program one node per line, for errors and debugging.
func (p *Program) String() string {
	var sb strings.Builder
	for i, n := range p.Nodes {
		fmt.Fprintf(&sb, "%%%d = %s", i, n.Op)
		for _, a := range n.Args {
			fmt.Fprintf(&sb, " %%%d", a)
		}
		if n.Name != "" {
			fmt.Fprintf(&sb, " %q", n.Name)
		}
		if n.Op == OpScale || n.Op == OpConst || n.Op == OpDropout || n.Op == OpLowRank {
			fmt.Fprintf(&sb, " %g", n.Value)
		}
		if n.Op == OpLowRank && n.Value2 != 0 {
			fmt.Fprintf(&sb, " dropout %g", n.Value2)
		}
		sb.WriteByte('\n')
	}
	for k, v := range p.Outputs {
		fmt.Fprintf(&sb, "%s = %%%d\n", k, v)
	}
	return sb.String()
}

// Builder assembles a program with expressions.
type Builder struct {
	p Program
}

// Expr is a node of a program under construction.
type Expr struct {
	b  *Builder
	id int
}

// New starts an empty program.
func New() *Builder { return &Builder{p: Program{Outputs: map[string]int{}}} }

func (b *Builder) add(n Node) Expr {
	b.p.Nodes = append(b.p.Nodes, n)
	return Expr{b: b, id: len(b.p.Nodes) - 1}
}

// X is the layer input [T, in].
func (b *Builder) X() Expr { return b.add(Node{Op: OpInput}) }

// W is the frozen base weight [out, in].
func (b *Builder) W() Expr { return b.add(Node{Op: OpWeight}) }

// Bias is the frozen base bias [1, out] (zeros if the layer has none).
func (b *Builder) Bias() Expr { return b.add(Node{Op: OpBias}) }

// Param is an adapter parameter.
func (b *Builder) Param(name string) Expr { return b.add(Node{Op: OpParam, Name: name}) }

// Const is a scalar.
func (b *Builder) Const(v float64) Expr { return b.add(Node{Op: OpConst, Value: v}) }

// Output names an expression as a program output.
func (b *Builder) Output(name string, e Expr) *Builder {
	b.p.Outputs[name] = e.id
	return b
}

// Program returns the assembled program.
func (b *Builder) Program() *Program {
	p := b.p
	p.Nodes = append([]Node(nil), p.Nodes...)
	out := map[string]int{}
	for k, v := range p.Outputs {
		out[k] = v
	}
	p.Outputs = out
	return &p
}

func (e Expr) op2(op Op, o Expr) Expr { return e.b.add(Node{Op: op, Args: []int{e.id, o.id}}) }
func (e Expr) op1(op Op, v float64) Expr {
	return e.b.add(Node{Op: op, Args: []int{e.id}, Value: v})
}

// MatMul is e * o.
func (e Expr) MatMul(o Expr) Expr { return e.op2(OpMatMul, o) }

// MatMulT is e * o^T.
func (e Expr) MatMulT(o Expr) Expr { return e.op2(OpMatMulT, o) }

// Add is e + o.
func (e Expr) Add(o Expr) Expr { return e.op2(OpAdd, o) }

// Sub is e - o.
func (e Expr) Sub(o Expr) Expr { return e.op2(OpSub, o) }

// Mul is e * o elementwise.
func (e Expr) Mul(o Expr) Expr { return e.op2(OpMul, o) }

// Div is e / o elementwise.
func (e Expr) Div(o Expr) Expr { return e.op2(OpDiv, o) }

// Scale is s * e.
func (e Expr) Scale(s float64) Expr { return e.op1(OpScale, s) }

// RowNorm is the L2 norm of each row, [m,1].
func (e Expr) RowNorm() Expr { return e.op1(OpRowNorm, 0) }

// ColNorm is the L2 norm of each column, [1,n].
func (e Expr) ColNorm() Expr { return e.op1(OpColNorm, 0) }

// T is the transpose.
func (e Expr) T() Expr { return e.op1(OpT, 0) }

// StopGrad blocks gradients.
func (e Expr) StopGrad() Expr { return e.op1(OpStopGrad, 0) }

// Linear is the frozen base layer applied to e: e W^T + b.
func (e Expr) Linear() Expr { return e.b.add(Node{Op: OpLinear, Args: []int{e.id}}) }

// LowRank is the low-rank update scale * dropout(e) A^T B^T, with dropout
// probability p on e (0 for none). The host runs it fused; e.Linear().Add(
// e.LowRank(...)) runs as the fused LoRA layer.
func (e Expr) LowRank(a, b Expr, scale, p float64) Expr {
	return e.b.add(Node{Op: OpLowRank, Args: []int{e.id, a.id, b.id}, Value: scale, Value2: p})
}

// Dropout applies dropout with probability p during training.
func (e Expr) Dropout(p float64) Expr {
	if p == 0 {
		return e
	}
	return e.op1(OpDropout, p)
}
