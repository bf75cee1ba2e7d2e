package ops

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/linalg"
)

// The generic operators below are what adapter programs compile to. They
// work on 2-D matrices; a 1-D vector of n values is a [1, n] row.

// matMulFn computes a*b for a [m,k] and b [k,n].
type matMulFn struct{ a, b mat.Tensor }

// MatMul returns a*b for a [m,k] and b [k,n].
func MatMul(a, b mat.Tensor) mat.Tensor {
	if Cols(a) != Rows(b) {
		panic(fmt.Sprintf("ops: MatMul: [%d,%d] x [%d,%d]", Rows(a), Cols(a), Rows(b), Cols(b)))
	}
	return run(&matMulFn{a: a, b: b})
}

func (f *matMulFn) Operands() []mat.Tensor { return []mat.Tensor{f.a, f.b} }

func (f *matMulFn) Forward() (mat.Tensor, error) {
	m, k, n := Rows(f.a), Cols(f.a), Cols(f.b)
	y := make([]float32, m*n)
	linalg.MatMulNN(y, Data(f.a), Data(f.b), m, n, k, false)
	return New(m, n, y), nil
}

func (f *matMulFn) Backward(gy mat.Tensor) error {
	m, k, n := Rows(f.a), Cols(f.a), Cols(f.b)
	g := Data(gy)
	if f.a.RequiresGrad() {
		ga := allocDirty(m * k)
		linalg.MatMulNT(ga, g, Data(f.b), m, k, n, false) // g [m,n] * b^T
		accGrad(f.a, m, k, ga)
	}
	if f.b.RequiresGrad() {
		gb := allocDirty(k * n)
		linalg.MatMulTN(gb, Data(f.a), g, k, n, m, false) // a^T [k,m] * g [m,n]
		accGrad(f.b, k, n, gb)
	}
	return nil
}

// transposeFn swaps rows and columns.
type transposeFn struct{ x mat.Tensor }

// Transpose returns x^T.
func Transpose(x mat.Tensor) mat.Tensor { return run(&transposeFn{x: x}) }

func (f *transposeFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func transpose(x []float32, r, c int) []float32 {
	y := make([]float32, len(x))
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			y[j*r+i] = x[i*c+j]
		}
	}
	return y
}

func (f *transposeFn) Forward() (mat.Tensor, error) {
	r, c := Rows(f.x), Cols(f.x)
	return New(c, r, transpose(Data(f.x), r, c)), nil
}

func (f *transposeFn) Backward(gy mat.Tensor) error {
	if f.x.RequiresGrad() {
		r, c := Rows(f.x), Cols(f.x)
		accGrad(f.x, r, c, transpose(Data(gy), c, r))
	}
	return nil
}

// BinaryKind selects an elementwise operation.
type BinaryKind int

// The elementwise operations of Binary.
const (
	AddOp BinaryKind = iota
	SubOp
	MulOp
	DivOp
)

// binaryFn is an elementwise operation with broadcasting of [1,c], [r,1]
// and [1,1] operands.
type binaryFn struct {
	kind BinaryKind
	a, b mat.Tensor
	r, c int
}

// BroadcastShape returns the result shape of an elementwise operation on
// [ar,ac] and [br,bc], or an error if they do not broadcast.
func BroadcastShape(ar, ac, br, bc int) (int, int, error) {
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
	r, ok1 := dim(ar, br)
	c, ok2 := dim(ac, bc)
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("shapes [%d,%d] and [%d,%d] do not broadcast", ar, ac, br, bc)
	}
	return r, c, nil
}

// Binary returns a op b elementwise, broadcasting rows or columns of size 1.
func Binary(kind BinaryKind, a, b mat.Tensor) mat.Tensor {
	r, c, err := BroadcastShape(Rows(a), Cols(a), Rows(b), Cols(b))
	if err != nil {
		panic("ops: Binary: " + err.Error())
	}
	return run(&binaryFn{kind: kind, a: a, b: b, r: r, c: c})
}

func (f *binaryFn) Operands() []mat.Tensor { return []mat.Tensor{f.a, f.b} }

// at returns element (i,j) of x [xr,xc] under broadcasting.
func at(x []float32, xr, xc, i, j int) float32 {
	if xr == 1 {
		i = 0
	}
	if xc == 1 {
		j = 0
	}
	return x[i*xc+j]
}

func (f *binaryFn) Forward() (mat.Tensor, error) {
	a, b := Data(f.a), Data(f.b)
	ar, ac, br, bc := Rows(f.a), Cols(f.a), Rows(f.b), Cols(f.b)
	y := make([]float32, f.r*f.c)
	if len(a) == len(y) && len(b) == len(y) { // no broadcasting
		switch f.kind {
		case AddOp:
			for i := range y {
				y[i] = a[i] + b[i]
			}
			return New(f.r, f.c, y), nil
		case SubOp:
			for i := range y {
				y[i] = a[i] - b[i]
			}
			return New(f.r, f.c, y), nil
		case MulOp:
			for i := range y {
				y[i] = a[i] * b[i]
			}
			return New(f.r, f.c, y), nil
		}
	}
	for i := 0; i < f.r; i++ {
		for j := 0; j < f.c; j++ {
			x, z := at(a, ar, ac, i, j), at(b, br, bc, i, j)
			var v float32
			switch f.kind {
			case AddOp:
				v = x + z
			case SubOp:
				v = x - z
			case MulOp:
				v = x * z
			case DivOp:
				v = x / z
			}
			y[i*f.c+j] = v
		}
	}
	return New(f.r, f.c, y), nil
}

// reduceTo sums a full [r,c] gradient down to the operand's shape.
func reduceTo(g []float32, r, c, xr, xc int) []float32 {
	if xr == r && xc == c {
		return g
	}
	out := make([]float32, xr*xc)
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			ii, jj := i, j
			if xr == 1 {
				ii = 0
			}
			if xc == 1 {
				jj = 0
			}
			out[ii*xc+jj] += g[i*c+j]
		}
	}
	return out
}

func (f *binaryFn) Backward(gy mat.Tensor) error {
	a, b, g := Data(f.a), Data(f.b), Data(gy)
	ar, ac, br, bc := Rows(f.a), Cols(f.a), Rows(f.b), Cols(f.b)
	if f.a.RequiresGrad() {
		ga := allocDirty(f.r * f.c)
		for i := 0; i < f.r; i++ {
			for j := 0; j < f.c; j++ {
				gij := g[i*f.c+j]
				switch f.kind {
				case AddOp, SubOp:
					ga[i*f.c+j] = gij
				case MulOp:
					ga[i*f.c+j] = gij * at(b, br, bc, i, j)
				case DivOp:
					ga[i*f.c+j] = gij / at(b, br, bc, i, j)
				}
			}
		}
		accGrad(f.a, ar, ac, reduceTo(ga, f.r, f.c, ar, ac))
	}
	if f.b.RequiresGrad() {
		gb := allocDirty(f.r * f.c)
		for i := 0; i < f.r; i++ {
			for j := 0; j < f.c; j++ {
				gij := g[i*f.c+j]
				switch f.kind {
				case AddOp:
					gb[i*f.c+j] = gij
				case SubOp:
					gb[i*f.c+j] = -gij
				case MulOp:
					gb[i*f.c+j] = gij * at(a, ar, ac, i, j)
				case DivOp:
					z := at(b, br, bc, i, j)
					gb[i*f.c+j] = -gij * at(a, ar, ac, i, j) / (z * z)
				}
			}
		}
		accGrad(f.b, br, bc, reduceTo(gb, f.r, f.c, br, bc))
	}
	return nil
}

// scaleFn multiplies by a constant.
type scaleFn struct {
	x mat.Tensor
	s float32
}

// Scale returns s*x.
func Scale(x mat.Tensor, s float32) mat.Tensor { return run(&scaleFn{x: x, s: s}) }

func (f *scaleFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *scaleFn) Forward() (mat.Tensor, error) {
	x := Data(f.x)
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = v * f.s
	}
	return New(Rows(f.x), Cols(f.x), y), nil
}

func (f *scaleFn) Backward(gy mat.Tensor) error {
	if f.x.RequiresGrad() {
		g := Data(gy)
		gx := allocDirty(len(g))
		for i, v := range g {
			gx[i] = v * f.s
		}
		accGrad(f.x, Rows(f.x), Cols(f.x), gx)
	}
	return nil
}

// normFn is the L2 norm of each row ([r,1]) or each column ([1,c]).
type normFn struct {
	x    mat.Tensor
	rows bool
	y    []float32
}

// RowNorm returns the L2 norm of each row of x as an [r,1] column.
func RowNorm(x mat.Tensor) mat.Tensor { return run(&normFn{x: x, rows: true}) }

// ColNorm returns the L2 norm of each column of x as a [1,c] row.
func ColNorm(x mat.Tensor) mat.Tensor { return run(&normFn{x: x}) }

func (f *normFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *normFn) Forward() (mat.Tensor, error) {
	r, c := Rows(f.x), Cols(f.x)
	x := Data(f.x)
	if f.rows {
		f.y = make([]float32, r)
		for i := 0; i < r; i++ {
			var s float64
			for _, v := range x[i*c : (i+1)*c] {
				s += float64(v) * float64(v)
			}
			f.y[i] = float32(math.Sqrt(s))
		}
		return New(r, 1, f.y), nil
	}
	acc := make([]float64, c)
	for i := 0; i < r; i++ {
		for j, v := range x[i*c : (i+1)*c] {
			acc[j] += float64(v) * float64(v)
		}
	}
	f.y = make([]float32, c)
	for j, s := range acc {
		f.y[j] = float32(math.Sqrt(s))
	}
	return New(1, c, f.y), nil
}

func (f *normFn) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	r, c := Rows(f.x), Cols(f.x)
	x, g := Data(f.x), Data(gy)
	gx := alloc(r * c)
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			k := j
			if f.rows {
				k = i
			}
			if f.y[k] != 0 {
				gx[i*c+j] = g[k] * x[i*c+j] / f.y[k]
			}
		}
	}
	accGrad(f.x, r, c, gx)
	return nil
}

// StopGrad returns x with gradients blocked.
func StopGrad(x mat.Tensor) mat.Tensor { return ag.StopGrad(x) }

// dropoutFn zeroes elements with probability p and scales the rest by 1/(1-p).
type dropoutFn struct {
	x    mat.Tensor
	mask []float32
}

// Dropout applies inverted dropout with probability p using rng. With p == 0
// or a nil rng (evaluation) it returns x unchanged.
func Dropout(x mat.Tensor, p float64, rng *rand.Rand) mat.Tensor {
	if p <= 0 || rng == nil {
		return x
	}
	n := x.Value().Size()
	mask := make([]float32, n)
	keep := float32(1 / (1 - p))
	for i := range mask {
		if rng.Float64() >= p {
			mask[i] = keep
		}
	}
	return run(&dropoutFn{x: x, mask: mask})
}

func (f *dropoutFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *dropoutFn) Forward() (mat.Tensor, error) {
	x := Data(f.x)
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = v * f.mask[i]
	}
	return New(Rows(f.x), Cols(f.x), y), nil
}

func (f *dropoutFn) Backward(gy mat.Tensor) error {
	if f.x.RequiresGrad() {
		g := Data(gy)
		gx := allocDirty(len(g))
		for i, v := range g {
			gx[i] = v * f.mask[i]
		}
		accGrad(f.x, Rows(f.x), Cols(f.x), gx)
	}
	return nil
}

// reshapeFn views x's row-major values as another shape.
type reshapeFn struct {
	x          mat.Tensor
	rows, cols int
}

// Reshape returns x's values, row-major, as a [rows, cols] matrix (for
// example [tokens, heads*dh] as [tokens*heads, dh] to normalise each head).
// rows*cols must equal x's size.
func Reshape(x mat.Tensor, rows, cols int) mat.Tensor {
	if rows*cols != Rows(x)*Cols(x) {
		panic("ops: Reshape: sizes do not match")
	}
	return run(&reshapeFn{x: x, rows: rows, cols: cols})
}

func (f *reshapeFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *reshapeFn) Forward() (mat.Tensor, error) {
	return New(f.rows, f.cols, append([]float32(nil), Data(f.x)...)), nil
}

func (f *reshapeFn) Backward(gy mat.Tensor) error {
	if f.x.RequiresGrad() {
		accGrad(f.x, Rows(f.x), Cols(f.x), append([]float32(nil), Data(gy)...))
	}
	return nil
}
