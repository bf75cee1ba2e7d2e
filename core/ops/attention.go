package ops

import (
	"math"
	"runtime"
	"sync"

	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/linalg"
)

// Layout describes how the rows of an activation matrix group into a batch:
// Batch sequences of Len rows each (row b*Len+t is token t of sequence b),
// with Valid[b][t] false for padding. A nil Valid means no padding.
type Layout struct {
	Batch, Len int
	Valid      [][]bool
}

// valid reports whether token t of sequence b is a real token.
func (l Layout) valid(b, t int) bool { return l.Valid == nil || l.Valid[b][t] }

// Positions returns each row's position id: the number of real tokens
// before it in its sequence (so left and right padding give the same
// positions to the real tokens).
func (l Layout) Positions() []int {
	pos := make([]int, l.Batch*l.Len)
	for b := 0; b < l.Batch; b++ {
		p := 0
		for t := 0; t < l.Len; t++ {
			pos[b*l.Len+t] = p
			if l.valid(b, t) {
				p++
			}
		}
	}
	return pos
}

// rotaryFn rotates pairs of features (i, i+half) of every head by an angle
// proportional to the token position, in the Hugging Face "rotate half"
// convention.
type rotaryFn struct {
	x        mat.Tensor
	cos, sin []float32 // [rows, half]
	heads    int
}

// Rotary applies rotary position embeddings to x [rows, heads*headDim]
// given each row's position and the base theta.
func Rotary(x mat.Tensor, positions []int, heads int, theta float64) mat.Tensor {
	n, d := Rows(x), Cols(x)
	if len(positions) != n || d%heads != 0 || (d/heads)%2 != 0 {
		panic("ops: Rotary: bad shape")
	}
	dh := d / heads
	half := dh / 2
	cos := make([]float32, n*half)
	sin := make([]float32, n*half)
	inv := make([]float64, half)
	for i := range inv {
		// Computed in float32 as the reference implementations do.
		inv[i] = float64(float32(1 / math.Pow(theta, float64(2*i)/float64(dh))))
	}
	for r, p := range positions {
		for i := 0; i < half; i++ {
			a := float64(float32(float64(p) * inv[i]))
			cos[r*half+i] = float32(math.Cos(a))
			sin[r*half+i] = float32(math.Sin(a))
		}
	}
	return run(&rotaryFn{x: x, cos: cos, sin: sin, heads: heads})
}

func (f *rotaryFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *rotaryFn) apply(x []float32, rows int, inverse bool) []float32 {
	d := len(x) / rows
	dh := d / f.heads
	half := dh / 2
	y := make([]float32, len(x))
	for r := 0; r < rows; r++ {
		c, s := f.cos[r*half:(r+1)*half], f.sin[r*half:(r+1)*half]
		for h := 0; h < f.heads; h++ {
			o := r*d + h*dh
			x1, x2 := x[o:o+half], x[o+half:o+dh]
			y1, y2 := y[o:o+half], y[o+half:o+dh]
			for i := 0; i < half; i++ {
				si := s[i]
				if inverse {
					si = -si
				}
				y1[i] = x1[i]*c[i] - x2[i]*si
				y2[i] = x2[i]*c[i] + x1[i]*si
			}
		}
	}
	return y
}

func (f *rotaryFn) Forward() (mat.Tensor, error) {
	n := Rows(f.x)
	return New(n, Cols(f.x), f.apply(Data(f.x), n, false)), nil
}

func (f *rotaryFn) Backward(gy mat.Tensor) error {
	if f.x.RequiresGrad() {
		n := Rows(f.x)
		accGrad(f.x, n, Cols(f.x), f.apply(Data(gy), n, true))
	}
	return nil
}

// attentionFn is scaled dot-product attention over a batch layout with
// grouped-query heads.
type attentionFn struct {
	q, k, v   mat.Tensor
	lay       Layout
	heads, kv int
	causal    bool
	scale     float32
	probs     []float32 // [batch, heads, len, len], kept when backward needs it
}

// Attention computes softmax(Q K^T * scale + mask) V for every sequence of
// the layout and every head. q is [rows, heads*dh]; k and v are
// [rows, kvHeads*dh], and query head h reads key/value head h/(heads/kvHeads).
// Padding keys are masked, and so are future keys when causal is set.
func Attention(q, k, v mat.Tensor, lay Layout, heads, kvHeads int, causal bool) mat.Tensor {
	n := Rows(q)
	if n != lay.Batch*lay.Len || Rows(k) != n || Rows(v) != n || heads%kvHeads != 0 ||
		Cols(q)%heads != 0 || Cols(k) != Cols(q)/heads*kvHeads || Cols(v) != Cols(k) {
		panic("ops: Attention: bad shapes")
	}
	dh := Cols(q) / heads
	return run(&attentionFn{q: q, k: k, v: v, lay: lay, heads: heads, kv: kvHeads, causal: causal,
		scale: float32(1 / math.Sqrt(float64(dh)))})
}

func (f *attentionFn) Operands() []mat.Tensor { return []mat.Tensor{f.q, f.k, f.v} }

// parallel runs fn(i) for i in [0,n) on the machine's cores.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// gatherHead copies head h's dh columns of sequence b out of x (rows of
// width d) into a contiguous [T, dh] buffer.
func gatherHead(dst, x []float32, b, T, d, h, dh int) {
	for t := 0; t < T; t++ {
		o := (b*T+t)*d + h*dh
		copy(dst[t*dh:(t+1)*dh], x[o:o+dh])
	}
}

// scatterHead adds a contiguous [T, dh] buffer into head h of sequence b.
func scatterHead(dst, src []float32, b, T, d, h, dh int) {
	for t := 0; t < T; t++ {
		o := (b*T+t)*d + h*dh
		row := dst[o : o+dh]
		for i, v := range src[t*dh : (t+1)*dh] {
			row[i] += v
		}
	}
}

// masked reports whether key j is hidden from query i of sequence b.
func (f *attentionFn) masked(b, i, j int) bool {
	return !f.lay.valid(b, j) || (f.causal && j > i)
}

func (f *attentionFn) Forward() (mat.Tensor, error) {
	B, T, H := f.lay.Batch, f.lay.Len, f.heads
	dq := Cols(f.q)
	dh := dq / H
	dk := Cols(f.k)
	group := H / f.kv
	q, k, v := Data(f.q), Data(f.k), Data(f.v)
	out := make([]float32, B*T*dq)
	keep := requires(f.q, f.k, f.v)
	if keep {
		f.probs = make([]float32, B*H*T*T)
	}
	parallel(B*H, func(bh int) {
		b, h := bh/H, bh%H
		kh := h / group
		var p []float32
		if keep {
			p = f.probs[bh*T*T : (bh+1)*T*T]
		} else {
			p = make([]float32, T*T)
		}
		qb := make([]float32, T*dh)
		kb := make([]float32, T*dh)
		vb := make([]float32, T*dh)
		ob := make([]float32, T*dh)
		gatherHead(qb, q, b, T, dq, h, dh)
		gatherHead(kb, k, b, T, dk, kh, dh)
		gatherHead(vb, v, b, T, dk, kh, dh)
		linalg.MatMulNT(p, qb, kb, T, T, dh, false) // scores
		for i := 0; i < T; i++ {
			row := p[i*T : (i+1)*T]
			mx := float32(math.Inf(-1))
			for j := range row {
				if f.masked(b, i, j) {
					continue
				}
				row[j] *= f.scale
				mx = max(mx, row[j])
			}
			if math.IsInf(float64(mx), -1) { // nothing to attend to
				clear(row)
				continue
			}
			var sum float32
			for j, s := range row {
				if f.masked(b, i, j) {
					row[j] = 0
					continue
				}
				e := expf(s - mx)
				row[j] = e
				sum += e
			}
			inv := 1 / sum
			for j := range row {
				row[j] *= inv
			}
		}
		linalg.MatMulNN(ob, p, vb, T, dh, T, false)
		scatterHead(out, ob, b, T, dq, h, dh)
	})
	return New(B*T, dq, out), nil
}

func (f *attentionFn) Backward(gy mat.Tensor) error {
	B, T, H := f.lay.Batch, f.lay.Len, f.heads
	dq := Cols(f.q)
	dh := dq / H
	dk := Cols(f.k)
	group := H / f.kv
	q, k, v, g := Data(f.q), Data(f.k), Data(f.v), Data(gy)
	gq := make([]float32, len(q))
	// Key/value gradients are computed per query head, then summed over the
	// group in a fixed order, so that heads run in parallel deterministically.
	gkH := make([]float32, B*H*T*dh)
	gvH := make([]float32, B*H*T*dh)
	gqH := make([]float32, B*H*T*dh)
	parallel(B*H, func(bh int) {
		b, h := bh/H, bh%H
		kh := h / group
		p := f.probs[bh*T*T : (bh+1)*T*T]
		qb := make([]float32, T*dh)
		kb := make([]float32, T*dh)
		vb := make([]float32, T*dh)
		gb := make([]float32, T*dh)
		gatherHead(qb, q, b, T, dq, h, dh)
		gatherHead(kb, k, b, T, dk, kh, dh)
		gatherHead(vb, v, b, T, dk, kh, dh)
		gatherHead(gb, g, b, T, dq, h, dh)
		// dV = P^T dO
		linalg.MatMulTN(gvH[bh*T*dh:(bh+1)*T*dh], p, gb, T, dh, T, false)
		// dP = dO V^T, then dS = P * (dP - rowsum(dP * P)) * scale
		ds := make([]float32, T*T)
		linalg.MatMulNT(ds, gb, vb, T, T, dh, false)
		for i := 0; i < T; i++ {
			pr, dr := p[i*T:(i+1)*T], ds[i*T:(i+1)*T]
			var dot float32
			for j, pj := range pr {
				dot += pj * dr[j]
			}
			for j, pj := range pr {
				dr[j] = pj * (dr[j] - dot) * f.scale
			}
		}
		// dQ = dS K, dK = dS^T Q
		linalg.MatMulNN(gqH[bh*T*dh:(bh+1)*T*dh], ds, kb, T, dh, T, false)
		linalg.MatMulTN(gkH[bh*T*dh:(bh+1)*T*dh], ds, qb, T, dh, T, false)
	})
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			bh := b*H + h
			scatterHead(gq, gqH[bh*T*dh:(bh+1)*T*dh], b, T, dq, h, dh)
		}
	}
	accGrad(f.q, B*T, dq, gq)
	if f.k.RequiresGrad() || f.v.RequiresGrad() {
		gk := make([]float32, len(k))
		gv := make([]float32, len(v))
		for b := 0; b < B; b++ {
			for h := 0; h < H; h++ {
				bh := b*H + h
				scatterHead(gk, gkH[bh*T*dh:(bh+1)*T*dh], b, T, dk, h/group, dh)
				scatterHead(gv, gvH[bh*T*dh:(bh+1)*T*dh], b, T, dk, h/group, dh)
			}
		}
		accGrad(f.k, B*T, dk, gk)
		accGrad(f.v, B*T, dk, gv)
	}
	return nil
}
