package ops

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/mat"
	"github.com/surgeon-ml/surgeon/core/linalg"
	"github.com/surgeon-ml/surgeon/core/vmath"
)

// KVCache holds one attention layer's keys and values for incremental
// decoding: the rotated keys and the values of every token seen so far, so
// that a new token attends to them without recomputing the prefix. It is
// inference-only: nothing in it takes part in a backward pass.
type KVCache struct {
	kvHeads, dh int
	n, cap      int
	// k and v are head-major [kvHeads, cap, dh]: each head's keys are one
	// contiguous [n, dh] matrix, the operand of a matrix product.
	k, v []float32
}

// NewKVCache returns an empty cache for kvHeads key/value heads of headDim
// features.
func NewKVCache(kvHeads, headDim int) *KVCache {
	if kvHeads <= 0 || headDim <= 0 {
		panic("ops: NewKVCache: heads and head dimension must be positive")
	}
	return &KVCache{kvHeads: kvHeads, dh: headDim}
}

// Len returns the number of cached tokens.
func (c *KVCache) Len() int { return c.n }

// Truncate forgets every cached token from position n on (n <= Len), so a
// caller can roll back to a shorter prefix.
func (c *KVCache) Truncate(n int) {
	if n < 0 || n > c.n {
		panic(fmt.Sprintf("ops: KVCache.Truncate(%d) with %d cached tokens", n, c.n))
	}
	c.n = n
}

// grow makes room for need tokens, doubling the capacity.
func (c *KVCache) grow(need int) {
	if need <= c.cap {
		return
	}
	capacity := max(need, 2*c.cap, 64)
	k := make([]float32, c.kvHeads*capacity*c.dh)
	v := make([]float32, c.kvHeads*capacity*c.dh)
	for h := 0; h < c.kvHeads; h++ {
		copy(k[h*capacity*c.dh:], c.k[h*c.cap*c.dh:(h*c.cap+c.n)*c.dh])
		copy(v[h*capacity*c.dh:], c.v[h*c.cap*c.dh:(h*c.cap+c.n)*c.dh])
	}
	c.k, c.v, c.cap = k, v, capacity
}

// append adds rows tokens of keys and values, token-major [rows,
// kvHeads*dh].
func (c *KVCache) append(k, v []float32, rows int) {
	c.grow(c.n + rows)
	d := c.kvHeads * c.dh
	for t := 0; t < rows; t++ {
		for h := 0; h < c.kvHeads; h++ {
			o := (h*c.cap + c.n + t) * c.dh
			copy(c.k[o:o+c.dh], k[t*d+h*c.dh:t*d+(h+1)*c.dh])
			copy(c.v[o:o+c.dh], v[t*d+h*c.dh:t*d+(h+1)*c.dh])
		}
	}
	c.n += rows
}

// head returns key/value head h's cached keys and values [n, dh].
func (c *KVCache) head(h int) (k, v []float32) {
	o := h * c.cap * c.dh
	return c.k[o : o+c.n*c.dh], c.v[o : o+c.n*c.dh]
}

// decodeParallelWork is the number of multiply-adds from which
// CachedAttention splits its heads over the cores.
const decodeParallelWork = 1 << 16

// CachedAttention is causal attention for tokens that follow the ones in
// c: it appends the new keys k and values v [rows, kvHeads*dh] to c, then
// returns for each query row of q [rows, heads*dh] (the tokens at positions
// c.Len()..c.Len()+rows-1 before the call) softmax(q K^T / sqrt(dh)) V over
// the cached keys up to its own position. A positive window limits each
// query to its window latest keys, itself included, as AttentionWindow
// does. It computes what Attention / AttentionWindow compute for the same
// rows of the whole sequence, without a backward pass; on an empty cache it
// runs those very kernels, so a prompt gives bit-identical results.
func CachedAttention(q, k, v mat.Tensor, c *KVCache, heads, window int) mat.Tensor {
	T := Rows(q)
	if T == 0 || Rows(k) != T || Rows(v) != T || Cols(q) != heads*c.dh || heads%c.kvHeads != 0 ||
		Cols(k) != c.kvHeads*c.dh || Cols(v) != Cols(k) || window < 0 {
		panic("ops: CachedAttention: bad shapes")
	}
	p0 := c.n
	c.append(Data(k), Data(v), T)
	if p0 == 0 {
		lay := Layout{Batch: 1, Len: T}
		var y mat.Tensor
		if err := WithoutGrad(func() error {
			if window > 0 {
				y = AttentionWindow(q, k, v, lay, heads, c.kvHeads, window)
			} else {
				y = Attention(q, k, v, lay, heads, c.kvHeads, true)
			}
			return nil
		}); err != nil {
			panic(err)
		}
		return y
	}
	dh, n, group := c.dh, c.n, heads/c.kvHeads
	// Keys before lo are outside every row's window.
	lo := 0
	if window > 0 {
		lo = max(0, p0-window+1)
	}
	nk := n - lo
	scale := float32(1 / math.Sqrt(float64(dh)))
	qd := Data(q)
	out := make([]float32, T*heads*dh)
	one := func(h int, buf []float32) {
		qh, p, oh := buf[:T*dh], buf[T*dh:T*dh+T*nk], buf[T*dh+T*nk:]
		for t := 0; t < T; t++ {
			copy(qh[t*dh:(t+1)*dh], qd[(t*heads+h)*dh:(t*heads+h+1)*dh])
		}
		kh, vh := c.head(h / group)
		kh, vh = kh[lo*dh:], vh[lo*dh:]
		linalg.MatMulNT(p, qh, kh, T, nk, dh, false)
		for t := 0; t < T; t++ {
			row := p[t*nk : (t+1)*nk]
			pos := p0 + t
			first, last := 0, pos+1-lo // keys [first, last) of the row
			if window > 0 {
				first = max(0, pos-window+1-lo)
			}
			clear(row[:first])
			clear(row[last:])
			r := row[first:last]
			vmath.Scale(r, scale)
			vmath.Scale(r, 1/vmath.ExpSum(r, r, vmath.Max(r)))
		}
		linalg.MatMulNN(oh, p, vh, T, dh, nk, false)
		for t := 0; t < T; t++ {
			copy(out[(t*heads+h)*dh:(t*heads+h+1)*dh], oh[t*dh:(t+1)*dh])
		}
	}
	scratch := T*dh + T*nk + T*dh
	if heads*T*nk*dh < decodeParallelWork {
		buf := make([]float32, scratch)
		for h := 0; h < heads; h++ {
			one(h, buf)
		}
	} else {
		parallel(heads, scratch, one)
	}
	return New(T, heads*dh, out)
}
