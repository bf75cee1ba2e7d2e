package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

// windowRef is a float64 causal attention where query i sees the valid keys
// j with i-window < j <= i (Hugging Face's sliding_window_overlay).
func windowRef(q, k, v []float32, lay Layout, heads, kvHeads, window int) []float64 {
	B, T := lay.Batch, lay.Len
	dq := len(q) / (B * T)
	dh := dq / heads
	dk := dh * kvHeads
	out := make([]float64, B*T*dq)
	for b := 0; b < B; b++ {
		for h := 0; h < heads; h++ {
			kh := h / (heads / kvHeads)
			for i := 0; i < T; i++ {
				s := make([]float64, T)
				mx := math.Inf(-1)
				for j := range s {
					s[j] = math.Inf(-1)
					if !lay.valid(b, j) || j > i || i-j >= window {
						continue
					}
					var d float64
					for c := 0; c < dh; c++ {
						d += float64(q[(b*T+i)*dq+h*dh+c]) * float64(k[(b*T+j)*dk+kh*dh+c])
					}
					s[j] = d / math.Sqrt(float64(dh))
					mx = max(mx, s[j])
				}
				if math.IsInf(mx, -1) {
					continue
				}
				var sum float64
				for j := range s {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				for j := range s {
					for c := 0; c < dh; c++ {
						out[(b*T+i)*dq+h*dh+c] += s[j] / sum * float64(v[(b*T+j)*dk+kh*dh+c])
					}
				}
			}
		}
	}
	return out
}

// TestAttentionWindow checks the sliding window against the reference,
// that a window of at least the sequence length is plain causal attention
// bit for bit, and that the window is not off by one.
func TestAttentionWindow(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	left := [][]bool{{false, false, true, true, true, true, true}, {true, true, true, true, true, true, true}, {true, true, true, true, false, false, false}}
	cases := []struct {
		lay            Layout
		heads, kvHeads int
		dh, window     int
	}{
		{Layout{Batch: 3, Len: 7}, 4, 2, 8, 3},
		{Layout{Batch: 3, Len: 7, Valid: left}, 4, 2, 8, 2},
		{Layout{Batch: 3, Len: 7, Valid: left}, 2, 2, 5, 1},
		{Layout{Batch: 2, Len: 33}, 2, 1, 16, 8},
		{Layout{Batch: 2, Len: 33}, 2, 2, 16, 32},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("T%d-w%d-h%d", c.lay.Len, c.window, c.heads), func(t *testing.T) {
			rows := c.lay.Batch * c.lay.Len
			q := randParam(r, rows, c.heads*c.dh, 1)
			k := randParam(r, rows, c.kvHeads*c.dh, 1)
			v := randParam(r, rows, c.kvHeads*c.dh, 1)
			want := windowRef(Data(q), Data(k), Data(v), c.lay, c.heads, c.kvHeads, c.window)
			offByOne := windowRef(Data(q), Data(k), Data(v), c.lay, c.heads, c.kvHeads, c.window+1)
			var got, full, causal []float32
			WithoutGrad(func() error {
				got = Data(AttentionWindow(q, k, v, c.lay, c.heads, c.kvHeads, c.window))
				full = Data(AttentionWindow(q, k, v, c.lay, c.heads, c.kvHeads, c.lay.Len))
				causal = Data(Attention(q, k, v, c.lay, c.heads, c.kvHeads, true))
				return nil
			})
			ResetTape()
			withGrad := Data(AttentionWindow(q, k, v, c.lay, c.heads, c.kvHeads, c.window))
			ResetTape()
			moved := 0.0
			for i, w := range want {
				if math.Abs(float64(got[i])-w) > 1e-5 || withGrad[i] != got[i] {
					t.Fatalf("element %d: got %v (%v with grad), want %v", i, got[i], withGrad[i], w)
				}
				if full[i] != causal[i] {
					t.Fatalf("element %d: window >= length gives %v, causal %v", i, full[i], causal[i])
				}
				moved = max(moved, math.Abs(offByOne[i]-w))
			}
			if c.window < c.lay.Len-1 && moved < 1e-2 {
				t.Errorf("window %d and %d are indistinguishable (%g)", c.window, c.window+1, moved)
			}
		})
	}
}

func TestAttentionWindowGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	lay := Layout{Batch: 2, Len: 6, Valid: [][]bool{{true, true, true, true, true, false}, {false, true, true, true, true, true}}}
	for _, c := range []struct {
		name       string
		heads, kv  int
		dh, window int
	}{
		{"gqa-w2", 4, 2, 2, 2},
		{"mha-w3", 2, 2, 3, 3},
		{"wide-heads-w4", 2, 1, 16, 4},
		{"w1", 2, 2, 4, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows := lay.Batch * lay.Len
			in := []*mat.Dense[float32]{randParam(r, rows, c.heads*c.dh, 1), randParam(r, rows, c.kv*c.dh, 1), randParam(r, rows, c.kv*c.dh, 1)}
			gradCheck(t, c.name, in, func(in []mat.Tensor) mat.Tensor {
				return AttentionWindow(in[0], in[1], in[2], lay, c.heads, c.kv, c.window)
			})
		})
	}
}

func TestFamilyOpsGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	for _, c := range []struct {
		name   string
		inputs []*mat.Dense[float32]
		op     func(in []mat.Tensor) mat.Tensor
	}{
		{"slicecols", []*mat.Dense[float32]{randParam(r, 3, 7, 1)},
			func(in []mat.Tensor) mat.Tensor { return SliceCols(in[0], 2, 5) }},
		{"slicecols-sum", []*mat.Dense[float32]{randParam(r, 3, 6, 1)},
			func(in []mat.Tensor) mat.Tensor { return Add(SliceCols(in[0], 0, 3), SliceCols(in[0], 3, 6)) }},
		{"gelu-tanh-gate", []*mat.Dense[float32]{randParam(r, 3, 5, 2), randParam(r, 3, 5, 1)},
			func(in []mat.Tensor) mat.Tensor { return GELUTanhGate(in[0], in[1]) }},
	} {
		t.Run(c.name, func(t *testing.T) { gradCheck(t, c.name, c.inputs, c.op) })
	}
}

// TestGELUTanh checks gelu_tanh against values of PyTorch's
// gelu(x, approximate="tanh") in float32.
func TestGELUTanh(t *testing.T) {
	for _, c := range []struct{ x, want float64 }{
		{-3, -0.0036374331}, {-1, -0.15880799}, {-0.5, -0.154286}, {0, 0}, {0.5, 0.345714}, {1, 0.84119201}, {2.5, 2.4849157},
	} {
		y, _ := geluTanh(c.x)
		if math.Abs(y-c.want) > 1e-6 {
			t.Errorf("gelu_tanh(%v) = %v, want %v", c.x, y, c.want)
		}
	}
}
