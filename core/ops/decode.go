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
	// k and v are feature-major [kvHeads, dh, cap]: feature i of head h
	// over the tokens is one contiguous row, so a query's scores are dh
	// long Axpys and its output dh long Dots, however short the heads.
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
	rows := c.kvHeads * c.dh
	k := make([]float32, rows*capacity)
	v := make([]float32, rows*capacity)
	for r := 0; r < rows; r++ {
		copy(k[r*capacity:], c.k[r*c.cap:r*c.cap+c.n])
		copy(v[r*capacity:], c.v[r*c.cap:r*c.cap+c.n])
	}
	c.k, c.v, c.cap = k, v, capacity
}

// append adds rows tokens of keys and values, token-major [rows,
// kvHeads*dh].
func (c *KVCache) append(k, v []float32, rows int) {
	c.grow(c.n + rows)
	d := c.kvHeads * c.dh
	for i := 0; i < d; i++ { // write each feature row in sequence
		kr, vr := c.k[i*c.cap+c.n:i*c.cap+c.n+rows], c.v[i*c.cap+c.n:i*c.cap+c.n+rows]
		for t := range kr {
			kr[t], vr[t] = k[t*d+i], v[t*d+i]
		}
	}
	c.n += rows
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
	return CachedAttentionWith(q, k, v, c, heads, AttentionOptions{Window: window})
}

// CachedAttentionWith is CachedAttention with AttentionWith's options: a
// sliding window, a score scale and logit soft-capping (Gemma 2). On an
// empty cache it runs AttentionWith's kernel, so a prompt gives
// bit-identical results.
func CachedAttentionWith(q, k, v mat.Tensor, c *KVCache, heads int, opt AttentionOptions) mat.Tensor {
	window := opt.Window
	T := Rows(q)
	if T == 0 || Rows(k) != T || Rows(v) != T || Cols(q) != heads*c.dh || heads%c.kvHeads != 0 ||
		Cols(k) != c.kvHeads*c.dh || Cols(v) != Cols(k) || window < 0 || opt.Scale < 0 || opt.Softcap < 0 {
		panic("ops: CachedAttention: bad shapes")
	}
	p0 := c.n
	c.append(Data(k), Data(v), T)
	if p0 == 0 {
		lay := Layout{Batch: 1, Len: T}
		var y mat.Tensor
		if err := WithoutGrad(func() error {
			switch {
			case opt.Scale != 0 || opt.Softcap != 0:
				y = AttentionWith(q, k, v, lay, heads, c.kvHeads, opt)
			case window > 0:
				y = AttentionWindow(q, k, v, lay, heads, c.kvHeads, window)
			default:
				y = Attention(q, k, v, lay, heads, c.kvHeads, true)
			}
			return nil
		}); err != nil {
			panic(err)
		}
		return y
	}
	dh, group := c.dh, heads/c.kvHeads
	// Keys before lo are outside every row's window.
	lo := 0
	if window > 0 {
		lo = max(0, p0-window+1)
	}
	nk := c.n - lo // the most keys a row sees
	scale := opt.Scale
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(dh)))
	}
	qd := Data(q)
	out := make([]float32, T*heads*dh)
	one := func(h int, p []float32) {
		kv := (h / group) * dh * c.cap // the head's first feature row
		for t := 0; t < T; t++ {
			pos := p0 + t
			first := lo
			if window > 0 {
				first = max(0, pos-window+1)
			}
			r := p[:pos+1-first] // scores of keys first..pos
			clear(r)
			qt := qd[(t*heads+h)*dh : (t*heads+h+1)*dh]
			for i, x := range qt {
				row := kv + i*c.cap
				linalg.Axpy(x, c.k[row+first:row+pos+1], r)
			}
			vmath.Scale(r, scale)
			if opt.Softcap > 0 {
				softcap(r, opt.Softcap)
			}
			vmath.Scale(r, 1/vmath.ExpSum(r, r, vmath.Max(r)))
			o := out[(t*heads+h)*dh : (t*heads+h+1)*dh]
			for i := range o {
				row := kv + i*c.cap
				o[i] = linalg.Dot(r, c.v[row+first:row+pos+1])
			}
		}
	}
	if heads*T*nk*dh < decodeParallelWork {
		buf := make([]float32, nk)
		for h := 0; h < heads; h++ {
			one(h, buf)
		}
	} else {
		parallel(heads, nk, one)
	}
	return New(T, heads*dh, out)
}
