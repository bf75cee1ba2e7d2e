package ops

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/linalg"
	"github.com/surgeon-ml/surgeon/core/vmath"
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

// rotaryFn rotates pairs of features (i, i+half) among the first 2*half
// features of every head by an angle proportional to the token position, in
// the Hugging Face "rotate half" convention, and passes the head's other
// features through (partial rotary embeddings). half is len(cos)/rows.
type rotaryFn struct {
	x        mat.Tensor
	cos, sin []float32 // [rows, half], already multiplied by the attention factor
	heads    int
}

// Rotary applies rotary position embeddings to x [rows, heads*headDim]
// given each row's position and the base theta, over the whole head
// (Hugging Face's default rope).
func Rotary(x mat.Tensor, positions []int, heads int, theta float64) mat.Tensor {
	n, d := Rows(x), Cols(x)
	if len(positions) != n || d%heads != 0 || (d/heads)%2 != 0 {
		panic("ops: Rotary: bad shape")
	}
	return RotaryFreqs(x, positions, heads, RopeInvFreq(d/heads, theta), 1)
}

// RotaryFreqs applies rotary position embeddings to x [rows,
// heads*headDim] with the given inverse frequencies, one per rotated pair:
// the first 2*len(inv) features of each head are rotated, pair (i,
// i+len(inv)) by the angle position*inv[i], and the rest pass unchanged, as
// transformers applies a partial_rotary_factor. cos and sin are multiplied
// by scale, the attention factor of YaRN and LongRoPE (1 otherwise).
func RotaryFreqs(x mat.Tensor, positions []int, heads int, inv []float32, scale float32) mat.Tensor {
	n, d := Rows(x), Cols(x)
	if len(positions) != n || d%heads != 0 || len(inv) == 0 || 2*len(inv) > d/heads {
		panic(fmt.Sprintf("ops: RotaryFreqs: %d positions, %d rows of %d features in %d heads, %d frequencies", len(positions), n, d, heads, len(inv)))
	}
	cos, sin := rotaryTables(positions, inv, scale)
	return run(&rotaryFn{x: x, cos: cos, sin: sin, heads: heads})
}

// RopeInvFreq returns the inverse frequencies of Hugging Face's default
// rotary embedding over dim features: 1/theta^(2i/dim) for i < dim/2,
// rounded to float32 as transformers computes them.
func RopeInvFreq(dim int, theta float64) []float32 {
	inv := make([]float32, dim/2)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(theta, float64(2*i)/float64(dim)))
	}
	return inv
}

// rotaryCache keeps the last cos and sin tables: a model's layers all
// rotate by the same positions, and a training loop's batches often have
// the same ones too. The tables are shared read-only.
var rotaryCache struct {
	sync.Mutex
	positions []int
	inv       []float32
	scale     float32
	cos, sin  []float32
}

// rotaryTables returns the cos and sin tables [rows, len(inv)] of the
// positions, from the cache when it holds them.
func rotaryTables(positions []int, inv []float32, scale float32) (cos, sin []float32) {
	c := &rotaryCache
	c.Lock()
	defer c.Unlock()
	if c.scale == scale && slices.Equal(c.inv, inv) && slices.Equal(c.positions, positions) {
		return c.cos, c.sin
	}
	cos, sin = computeRotaryFreqs(positions, inv, scale)
	c.positions, c.inv, c.scale, c.cos, c.sin = slices.Clone(positions), slices.Clone(inv), scale, cos, sin
	return cos, sin
}

// computeRotary returns the default rope's tables over dh features.
func computeRotary(positions []int, dh int, theta float64) (cos, sin []float32) {
	return computeRotaryFreqs(positions, RopeInvFreq(dh, theta), 1)
}

func computeRotaryFreqs(positions []int, inv []float32, scale float32) (cos, sin []float32) {
	n, half := len(positions), len(inv)
	cos = make([]float32, n*half)
	sin = make([]float32, n*half)
	for r, p := range positions {
		for i, f := range inv {
			// The angle is a float32 product, as in the reference
			// implementations; the attention factor scales cos and sin
			// in float32.
			a := float64(float32(p) * f)
			cos[r*half+i] = float32(math.Cos(a)) * scale
			sin[r*half+i] = float32(math.Sin(a)) * scale
		}
	}
	return cos, sin
}

func (f *rotaryFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *rotaryFn) apply(x []float32, rows int, inverse bool) []float32 {
	y := make([]float32, len(x))
	f.applyInto(y, x, rows, inverse)
	return y
}

// applyInto rotates every row of x into y (see applyRows).
func (f *rotaryFn) applyInto(y, x []float32, rows int, inverse bool) {
	d := len(x) / rows
	rowsParallel(rows, d, func(lo, hi int) { f.applyRows(y, x, lo, hi, d, rows, inverse) })
}

// applyRows rotates rows lo..hi-1 of x (width d, rows rows in all) into
// y; inverse applies the transposed rotation, for the backward pass.
func (f *rotaryFn) applyRows(y, x []float32, lo, hi, d, rows int, inverse bool) {
	dh := d / f.heads
	half := len(f.cos) / rows
	for r := lo; r < hi; r++ {
		c, s := f.cos[r*half:(r+1)*half], f.sin[r*half:(r+1)*half]
		for h := 0; h < f.heads; h++ {
			o := r*d + h*dh
			x1, x2 := x[o:o+half], x[o+half:o+2*half]
			y1, y2 := y[o:o+half], y[o+half:o+2*half]
			for i := 0; i < half; i++ {
				si := s[i]
				if inverse {
					si = -si
				}
				y1[i] = x1[i]*c[i] - x2[i]*si
				y2[i] = x2[i]*c[i] + x1[i]*si
			}
			copy(y[o+2*half:o+dh], x[o+2*half:o+dh])
		}
	}
}

func (f *rotaryFn) Forward() (mat.Tensor, error) {
	n := Rows(f.x)
	y := allocOutput(len(Data(f.x)))
	f.applyInto(y, Data(f.x), n, false)
	return New(n, Cols(f.x), y), nil
}

func (f *rotaryFn) Backward(gy mat.Tensor) error {
	if f.x.RequiresGrad() {
		n := Rows(f.x)
		accGrad(f.x, n, Cols(f.x), f.apply(Data(gy), n, true))
	}
	return nil
}

func (f *rotaryFn) backwardReads() []mat.Tensor { return nil }

// attentionFn is scaled dot-product attention over a batch layout with
// grouped-query heads.
type attentionFn struct {
	q, k, v   mat.Tensor
	lay       Layout
	heads, kv int
	causal    bool
	// window, when positive, limits a causal query i to the keys j with
	// i-j < window (Hugging Face's sliding_window); 0 means no limit.
	window int
	scale  float32
	// softcap, when positive, turns the scaled scores s into
	// softcap*tanh(s/softcap) before masking (Gemma 2's
	// attn_logit_softcapping); 0 leaves them as they are.
	softcap float32
	// Kept when backward needs them: the head-major copies of q [batch,
	// heads, len, dh] and of k and v [batch, kv, len, dh]. Backward
	// computes the probabilities again from them, head by head, rather
	// than keeping [batch, heads, len, len] of them for every block.
	qh, kh, vh []float32
}

// Attention computes softmax(Q K^T * scale + mask) V for every sequence of
// the layout and every head. q is [rows, heads*dh]; k and v are
// [rows, kvHeads*dh], and query head h reads key/value head h/(heads/kvHeads).
// Padding keys are masked, and so are future keys when causal is set.
func Attention(q, k, v mat.Tensor, lay Layout, heads, kvHeads int, causal bool) mat.Tensor {
	return attention(q, k, v, lay, heads, kvHeads, causal, AttentionOptions{})
}

// AttentionWindow is causal Attention with a sliding window, as Mistral's
// and Phi-3's sliding_window in Hugging Face transformers (masking_utils'
// sliding_window_overlay: kv_idx > q_idx - window): the query at index i of
// its sequence attends to the keys j with i-window < j <= i, that is at most
// window keys including itself, padding keys excluded. Indices count every
// row of the sequence, padding included, as HF's cache positions do. A
// window of 0 (or at least the sequence length) is plain causal attention.
func AttentionWindow(q, k, v mat.Tensor, lay Layout, heads, kvHeads, window int) mat.Tensor {
	if window < 0 {
		panic("ops: AttentionWindow: negative window")
	}
	if window >= lay.Len {
		window = 0
	}
	return attention(q, k, v, lay, heads, kvHeads, true, AttentionOptions{Window: window})
}

// AttentionOptions are the variants of causal attention a family may ask
// for. The zero value is plain causal attention scaled by 1/sqrt(head_dim).
type AttentionOptions struct {
	// Window is the sliding window of AttentionWindow; 0 means none.
	Window int
	// Scale multiplies the scores Q K^T; 0 means 1/sqrt(head_dim). Gemma 2
	// uses query_pre_attn_scalar^-0.5.
	Scale float32
	// Softcap, when positive, caps the scaled scores s to
	// Softcap*tanh(s/Softcap) before the causal, window and padding masks
	// are applied, as Gemma 2's attn_logit_softcapping does in Hugging Face
	// transformers' eager attention; 0 means no capping.
	Softcap float32
}

// AttentionWith is causal Attention with the options o: a sliding window
// (as AttentionWindow), a score scale and logit soft-capping. Options left
// zero cost nothing: AttentionWith with the zero options runs the same
// kernel as Attention.
func AttentionWith(q, k, v mat.Tensor, lay Layout, heads, kvHeads int, o AttentionOptions) mat.Tensor {
	if o.Window < 0 || o.Softcap < 0 || o.Scale < 0 {
		panic("ops: AttentionWith: negative window, scale or softcap")
	}
	if o.Window >= lay.Len {
		o.Window = 0
	}
	return attention(q, k, v, lay, heads, kvHeads, true, o)
}

func attention(q, k, v mat.Tensor, lay Layout, heads, kvHeads int, causal bool, o AttentionOptions) mat.Tensor {
	n := Rows(q)
	if n != lay.Batch*lay.Len || Rows(k) != n || Rows(v) != n || heads%kvHeads != 0 ||
		Cols(q)%heads != 0 || Cols(k) != Cols(q)/heads*kvHeads || Cols(v) != Cols(k) {
		panic("ops: Attention: bad shapes")
	}
	dh := Cols(q) / heads
	scale := o.Scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(dh)))
	}
	return run(&attentionFn{q: q, k: k, v: v, lay: lay, heads: heads, kv: kvHeads, causal: causal, window: o.Window,
		scale: scale, softcap: o.Softcap})
}

func (f *attentionFn) Operands() []mat.Tensor { return []mat.Tensor{f.q, f.k, f.v} }

// parallel runs fn(i) for i in [0,n) on the worker pool, in contiguous
// ranges. Each range gets its own scratch slice of the given size, reused
// across its items; fn must not depend on what a previous item left in it.
func parallel(n, scratch int, fn func(i int, scratch []float32)) {
	linalg.ParallelRanges(n, 1, func(lo, hi int) {
		buf := make([]float32, scratch)
		for i := lo; i < hi; i++ {
			fn(i, buf)
		}
	})
}

// toHeads copies x [batch*T, nh*dh] into the head-major dst
// [batch, nh, T, dh].
func toHeads(dst, x []float32, batch, T, nh, dh int) { moveHeads(x, dst, batch, T, nh, dh, true) }

// fromHeads copies the head-major src [batch, nh, T, dh] into dst
// [batch*T, nh*dh]; it is the inverse of toHeads.
func fromHeads(dst, src []float32, batch, T, nh, dh int) {
	moveHeads(dst, src, batch, T, nh, dh, false)
}

// moveHeads copies between the token-major x [batch*T, nh*dh] and the
// head-major hm [batch, nh, T, dh], into hm when toHM is set and into x
// otherwise.
func moveHeads(x, hm []float32, batch, T, nh, dh int, toHM bool) {
	d := nh * dh
	rowsParallel(batch, T*d, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			for t := 0; t < T; t++ {
				row := x[(b*T+t)*d : (b*T+t+1)*d]
				for h := 0; h < nh; h++ {
					o := ((b*nh+h)*T + t) * dh
					if toHM {
						copyHead(hm[o:o+dh], row[h*dh:(h+1)*dh])
					} else {
						copyHead(row[h*dh:(h+1)*dh], hm[o:o+dh])
					}
				}
			}
		}
	})
}

// copyHead copies one head's features, len(dst) of them, from src. Small
// models have heads of 8 or 16 features, which the compiler copies in two
// or four moves where copy would call memmove for every head of every token.
func copyHead(dst, src []float32) {
	switch len(dst) {
	case 8:
		*(*[8]float32)(dst) = *(*[8]float32)(src)
	case 16:
		*(*[16]float32)(dst) = *(*[16]float32)(src)
	default:
		copy(dst, src)
	}
}

// padding returns, for every sequence, the ascending positions of its
// padding tokens (nil when it has none).
func (l Layout) padding() [][]int {
	pad := make([][]int, l.Batch)
	if l.Valid == nil {
		return pad
	}
	for b, v := range l.Valid {
		for t, ok := range v[:l.Len] {
			if !ok {
				pad[b] = append(pad[b], t)
			}
		}
	}
	return pad
}

// keys returns how many leading keys query i may see before the padding
// mask: all of them, or i+1 when causal. Later keys have probability 0.
func (f *attentionFn) keys(i int) int {
	if f.causal {
		return i + 1
	}
	return f.lay.Len
}

// first returns the first key query i may see: 0, or the start of its
// sliding window.
func (f *attentionFn) first(i int) int {
	if f.window > 0 {
		return max(0, i-f.window+1)
	}
	return 0
}

// softmaxRow turns the scores of query i into probabilities in place: it
// scales the keys first(i)..keys(i)-1, masks the padding keys among those,
// and normalizes; the rest of the row is zeroed. A query with no key to
// attend to gets a zero row.
func (f *attentionFn) softmaxRow(row []float32, i int, pad []int) {
	n := f.keys(i)
	lo := 0
	if f.window > 0 {
		lo = f.first(i)
		clear(row[:lo])
	}
	r := row[lo:n]
	vmath.Scale(r, f.scale)
	if f.softcap > 0 {
		softcap(r, f.softcap)
	}
	for _, j := range pad {
		if j >= n {
			break
		}
		if j >= lo {
			r[j-lo] = float32(math.Inf(-1)) // exp gives 0
		}
	}
	clear(row[n:])
	mx := vmath.Max(r)
	if math.IsInf(float64(mx), -1) { // nothing to attend to
		clear(r)
		return
	}
	vmath.Scale(r, 1/vmath.ExpSum(r, r, mx))
}

// softcap replaces every score s of r by c*tanh(s/c).
func softcap(r []float32, c float32) {
	for j, s := range r {
		r[j] = c * float32(math.Tanh(float64(s/c)))
	}
}

// softcapGrad multiplies the gradients d of capped scores by the
// derivative of c*tanh(s/c), 1 - tanh(s/c)^2, where s = raw*scale are the
// scaled scores recomputed from the raw products raw.
func softcapGrad(d, raw []float32, scale, c float32) {
	for j, x := range raw[:len(d)] {
		t := math.Tanh(float64(x * scale / c))
		d[j] *= float32(1 - t*t)
	}
}

func (f *attentionFn) Forward() (mat.Tensor, error) {
	B, T, H, KV := f.lay.Batch, f.lay.Len, f.heads, f.kv
	dq := Cols(f.q)
	dh := dq / H
	group := H / KV
	qh := allocDirty(B * T * dq)
	kh := allocDirty(B * T * KV * dh)
	vh := allocDirty(B * T * KV * dh)
	toHeads(qh, Data(f.q), B, T, H, dh)
	toHeads(kh, Data(f.k), B, T, KV, dh)
	toHeads(vh, Data(f.v), B, T, KV, dh)
	pad := f.lay.padding()
	oh := allocDirty(B * T * dq)
	keep := requires(f.q, f.k, f.v)
	if keep {
		f.qh, f.kh, f.vh = qh, kh, vh
	}
	parallel(B*H, T*T, func(bh int, p []float32) {
		b := bh / H
		kv := (b*KV + bh%H/group) * T * dh
		f.probs(p, qh[bh*T*dh:(bh+1)*T*dh], kh[kv:kv+T*dh], pad[b])
		linalg.MatMulNN(oh[bh*T*dh:(bh+1)*T*dh], p, vh[kv:kv+T*dh], T, dh, T, false)
	})
	out := allocOutput(B * T * dq)
	fromHeads(out, oh, B, T, H, dh)
	recycle(oh)
	if !keep {
		recycle(qh, kh, vh)
	}
	return New(B*T, dq, out), nil
}

// probs computes one head's probabilities [len, len] into p from its
// queries q and keys k ([len, dh] each): the scores Q K^T, then softmaxRow
// on every row; pad lists the sequence's padding positions. Forward and
// Backward both go through it, so that Backward gets Forward's values bit
// for bit.
func (f *attentionFn) probs(p, q, k []float32, pad []int) {
	T := f.lay.Len
	linalg.MatMulNT(p, q, k, T, T, len(q)/T, false)
	f.softmaxRows(p, pad)
}

// softmaxRows turns the scores p [len, len] into probabilities, row by row.
func (f *attentionFn) softmaxRows(p []float32, pad []int) {
	T := f.lay.Len
	for i := 0; i < T; i++ {
		f.softmaxRow(p[i*T:(i+1)*T], i, pad)
	}
}

func (f *attentionFn) recycle() { recycle(f.qh, f.kh, f.vh) }

func (f *attentionFn) Backward(gy mat.Tensor) error {
	B, T, H, KV := f.lay.Batch, f.lay.Len, f.heads, f.kv
	dq := Cols(f.q)
	dh := dq / H
	dk := Cols(f.k)
	group := H / KV
	qh, kh, vh := f.qh, f.kh, f.vh
	gh := allocDirty(B * T * dq)
	toHeads(gh, Data(gy), B, T, H, dh)
	// Key/value gradients are computed per query head, then summed over the
	// group in a fixed order, so that heads run in parallel deterministically.
	gqH := allocDirty(B * H * T * dh)
	gkH := allocDirty(B * H * T * dh)
	gvH := allocDirty(B * H * T * dh)
	pad := f.lay.padding()
	scratch := 2 * T * T // the gradient of the scores, the probabilities
	if f.softcap > 0 {
		scratch += T * T // the raw scores
	}
	parallel(B*H, scratch, func(bh int, buf []float32) {
		b, h := bh/H, bh%H
		kv := (b*KV + h/group) * T * dh
		head := bh * T * dh
		ds, p := buf[:T*T], buf[T*T:2*T*T]
		var raw []float32
		if f.softcap > 0 {
			// The raw scores too: made once, kept, and turned into
			// probabilities as probs does.
			raw = buf[2*T*T:]
			linalg.MatMulNT(raw, qh[head:head+T*dh], kh[kv:kv+T*dh], T, T, dh, false)
			copy(p, raw)
			f.softmaxRows(p, pad[b])
		} else {
			f.probs(p, qh[head:head+T*dh], kh[kv:kv+T*dh], pad[b])
		}
		gb := gh[head : head+T*dh]
		// dV = P^T dO
		linalg.MatMulTN(gvH[head:head+T*dh], p, gb, T, dh, T, false)
		// dP = dO V^T, then dS = P * (dP - rowsum(dP * P)) * scale
		linalg.MatMulNT(ds, gb, vh[kv:kv+T*dh], T, T, dh, false)
		scale := f.scale
		for i := 0; i < T; i++ {
			n := f.keys(i) // p is zero past n and before lo
			lo := 0
			if f.window > 0 {
				lo = f.first(i)
				clear(ds[i*T : i*T+lo])
			}
			pr := p[i*T+lo : i*T+n]
			dr := ds[i*T+lo : i*T+n]
			dr = dr[:len(pr)]
			vmath.SoftmaxGrad(dr, pr, linalg.Dot(pr, dr), scale)
			if raw != nil {
				softcapGrad(dr, raw[i*T+lo:i*T+n], scale, f.softcap)
			}
			clear(ds[i*T+n : (i+1)*T])
		}
		// dQ = dS K, dK = dS^T Q
		linalg.MatMulNN(gqH[head:head+T*dh], ds, kh[kv:kv+T*dh], T, dh, T, false)
		linalg.MatMulTN(gkH[head:head+T*dh], ds, qh[head:head+T*dh], T, dh, T, false)
	})
	gq := allocDirty(B * T * dq)
	fromHeads(gq, gqH, B, T, H, dh)
	accGrad(f.q, B*T, dq, gq)
	if f.k.RequiresGrad() || f.v.RequiresGrad() {
		gk := allocDirty(B * T * dk)
		gv := allocDirty(B * T * dk)
		sk, sv := sumGroups(gkH, B, H, KV, T*dh), sumGroups(gvH, B, H, KV, T*dh)
		fromHeads(gk, sk, B, T, KV, dh)
		fromHeads(gv, sv, B, T, KV, dh)
		accGrad(f.k, B*T, dk, gk)
		accGrad(f.v, B*T, dk, gv)
		if H != KV {
			recycle(sk, sv)
		}
	}
	recycle(gh, gqH, gkH, gvH)
	return nil
}

// backwardReads: Backward reads the head-major copies of q, k and v that
// Forward keeps, not the operands.
func (f *attentionFn) backwardReads() []mat.Tensor { return nil }

// sumGroups sums the per-query-head blocks x [batch, H, size] over each
// group of H/KV consecutive heads, in head order, giving [batch, KV, size].
func sumGroups(x []float32, batch, H, KV, size int) []float32 {
	if H == KV {
		return x
	}
	group := H / KV
	out := alloc(batch * KV * size)
	for b := 0; b < batch; b++ {
		for h := 0; h < H; h++ {
			dst := out[(b*KV+h/group)*size : (b*KV+h/group+1)*size]
			for i, v := range x[(b*H+h)*size : (b*H+h+1)*size] {
				dst[i] += v
			}
		}
	}
	return out
}
