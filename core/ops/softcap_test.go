package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

// softcapRef is a float64 causal attention with Gemma 2's semantics
// (transformers' eager_attention_forward): scores (q.k)*scale, capped to
// c*tanh(s/c) when c > 0, then the causal, window and padding masks, then
// softmax. afterMask caps the masked scores too (a plausible mistake: the
// masked keys then get exp(-c) weight instead of none).
func softcapRef(q, k, v []float32, lay Layout, heads, kvHeads, window int, scale, c float64, afterMask bool) []float64 {
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
					var d float64
					for x := 0; x < dh; x++ {
						d += float64(q[(b*T+i)*dq+h*dh+x]) * float64(k[(b*T+j)*dk+kh*dh+x])
					}
					s[j] = d * scale
					if c > 0 && !afterMask {
						s[j] = c * math.Tanh(s[j]/c)
					}
					if !lay.valid(b, j) || j > i || (window > 0 && i-j >= window) {
						s[j] = -math.MaxFloat32
					}
					if c > 0 && afterMask {
						s[j] = c * math.Tanh(s[j]/c)
					}
					mx = max(mx, s[j])
				}
				if !afterMask && mx == -math.MaxFloat32 {
					continue // nothing to attend to: a zero row, as the kernel gives
				}
				var sum float64
				for j := range s {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				for j := range s {
					for x := 0; x < dh; x++ {
						out[(b*T+i)*dq+h*dh+x] += s[j] / sum * float64(v[(b*T+j)*dk+kh*dh+x])
					}
				}
			}
		}
	}
	return out
}

// TestAttentionSoftcap checks AttentionWith against the float64 reference
// with and without windows and padding, that capping after the mask or not
// at all gives other outputs, and that the zero options are Attention and
// AttentionWindow bit for bit.
func TestAttentionSoftcap(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 12))
	left := [][]bool{{false, false, true, true, true, true, true}, {true, true, true, true, true, true, true}, {true, true, true, true, false, false, false}}
	cases := []struct {
		lay            Layout
		heads, kvHeads int
		dh, window     int
		scale, cap     float32
	}{
		{Layout{Batch: 3, Len: 7}, 4, 2, 8, 0, 0.25, 1.5},
		{Layout{Batch: 3, Len: 7, Valid: left}, 4, 2, 8, 3, 0.2, 2},
		{Layout{Batch: 3, Len: 7, Valid: left}, 2, 1, 5, 0, 0, 1},
		{Layout{Batch: 2, Len: 33}, 2, 1, 16, 8, 0.125, 3},
		{Layout{Batch: 2, Len: 33}, 2, 2, 16, 0, 0.3, 50},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("T%d-w%d-cap%g", c.lay.Len, c.window, c.cap), func(t *testing.T) {
			rows := c.lay.Batch * c.lay.Len
			q := randParam(r, rows, c.heads*c.dh, 1.5)
			k := randParam(r, rows, c.kvHeads*c.dh, 1.5)
			v := randParam(r, rows, c.kvHeads*c.dh, 1)
			scale := float64(c.scale)
			if scale == 0 {
				scale = 1 / math.Sqrt(float64(c.dh))
			}
			want := softcapRef(Data(q), Data(k), Data(v), c.lay, c.heads, c.kvHeads, c.window, scale, float64(c.cap), false)
			uncapped := softcapRef(Data(q), Data(k), Data(v), c.lay, c.heads, c.kvHeads, c.window, scale, 0, false)
			after := softcapRef(Data(q), Data(k), Data(v), c.lay, c.heads, c.kvHeads, c.window, scale, float64(c.cap), true)
			o := AttentionOptions{Window: c.window, Scale: c.scale, Softcap: c.cap}
			var got, plain, window, plainWindow []float32
			WithoutGrad(func() error {
				got = Data(AttentionWith(q, k, v, c.lay, c.heads, c.kvHeads, o))
				plain = Data(AttentionWith(q, k, v, c.lay, c.heads, c.kvHeads, AttentionOptions{}))
				window = Data(AttentionWith(q, k, v, c.lay, c.heads, c.kvHeads, AttentionOptions{Window: c.window}))
				plainWindow = Data(AttentionWindow(q, k, v, c.lay, c.heads, c.kvHeads, c.window))
				return nil
			})
			causal := Data(Attention(q, k, v, c.lay, c.heads, c.kvHeads, true))
			ResetTape()
			withGrad := Data(AttentionWith(q, k, v, c.lay, c.heads, c.kvHeads, o))
			ResetTape()
			noCap, capAfter := 0.0, 0.0
			for i, w := range want {
				if math.Abs(float64(got[i])-w) > 2e-5 || withGrad[i] != got[i] {
					t.Fatalf("element %d: got %v (%v with grad), want %v", i, got[i], withGrad[i], w)
				}
				if plain[i] != causal[i] || window[i] != plainWindow[i] {
					t.Fatalf("element %d: zero options give %v/%v, Attention/AttentionWindow %v/%v", i, plain[i], window[i], causal[i], plainWindow[i])
				}
				noCap = max(noCap, math.Abs(uncapped[i]-w))
				capAfter = max(capAfter, math.Abs(after[i]-w))
			}
			if c.cap < 10 && noCap < 1e-2 {
				t.Errorf("cap %g and no cap are indistinguishable (%g)", c.cap, noCap)
			}
			if c.cap < 10 && capAfter < 1e-2 {
				t.Errorf("capping before and after the mask are indistinguishable (%g)", capAfter)
			}
		})
	}
}

func TestAttentionSoftcapGradients(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 13))
	lay := Layout{Batch: 2, Len: 6, Valid: [][]bool{{true, true, true, true, true, false}, {false, true, true, true, true, true}}}
	for _, c := range []struct {
		name      string
		heads, kv int
		dh        int
		o         AttentionOptions
	}{
		{"gqa-cap1", 4, 2, 2, AttentionOptions{Softcap: 1}},
		{"mha-w3-cap2-scale", 2, 2, 3, AttentionOptions{Window: 3, Softcap: 2, Scale: 0.4}},
		{"wide-heads-w2-cap0.5", 2, 1, 16, AttentionOptions{Window: 2, Softcap: 0.5}},
		{"scale-only", 2, 2, 4, AttentionOptions{Scale: 0.7}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows := lay.Batch * lay.Len
			in := []*mat.Dense[float32]{randParam(r, rows, c.heads*c.dh, 1.5), randParam(r, rows, c.kv*c.dh, 1.5), randParam(r, rows, c.kv*c.dh, 1)}
			gradCheck(t, c.name, in, func(in []mat.Tensor) mat.Tensor {
				return AttentionWith(in[0], in[1], in[2], lay, c.heads, c.kv, c.o)
			})
		})
	}
}
