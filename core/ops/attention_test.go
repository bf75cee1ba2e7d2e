package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

// attentionRef is a float64 reference: every (sequence, head, query) row
// attends to the keys that are valid and, when causal, not in the future.
func attentionRef(q, k, v []float32, lay Layout, heads, kvHeads int, causal bool) []float64 {
	B, T := lay.Batch, lay.Len
	dq := len(q) / (B * T)
	dh := dq / heads
	dk := dh * kvHeads
	group := heads / kvHeads
	out := make([]float64, B*T*dq)
	for b := 0; b < B; b++ {
		for h := 0; h < heads; h++ {
			kh := h / group
			for i := 0; i < T; i++ {
				s := make([]float64, T)
				mx := math.Inf(-1)
				for j := 0; j < T; j++ {
					if !lay.valid(b, j) || (causal && j > i) {
						s[j] = math.Inf(-1)
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

func TestAttentionReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	left := [][]bool{{false, false, true, true, true, true, true}, {true, true, true, true, true, true, true}, {true, true, true, true, false, false, false}}
	cases := []struct {
		lay            Layout
		heads, kvHeads int
		dh             int
		causal         bool
	}{
		{Layout{Batch: 3, Len: 7}, 4, 2, 8, true},
		{Layout{Batch: 3, Len: 7, Valid: left}, 4, 2, 8, true}, // left padding: fully masked rows
		{Layout{Batch: 3, Len: 7, Valid: left}, 3, 3, 5, false},
		{Layout{Batch: 2, Len: 33}, 2, 1, 16, true},
		{Layout{Batch: 2, Len: 33}, 2, 2, 16, false},
	}
	for n, c := range cases {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rows := c.lay.Batch * c.lay.Len
			q := randParam(r, rows, c.heads*c.dh, 1)
			k := randParam(r, rows, c.kvHeads*c.dh, 1)
			v := randParam(r, rows, c.kvHeads*c.dh, 1)
			want := attentionRef(Data(q), Data(k), Data(v), c.lay, c.heads, c.kvHeads, c.causal)
			var got []float32
			for rep := 0; rep < 2; rep++ {
				var y []float32
				err := WithoutGrad(func() error {
					y = Data(Attention(q, k, v, c.lay, c.heads, c.kvHeads, c.causal))
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if rep == 1 {
					for i := range y {
						if y[i] != got[i] {
							t.Fatalf("run-to-run difference at %d", i)
						}
					}
				}
				got = y
			}
			// With gradients on, the forward keeps its state; same values.
			ResetTape()
			y := Data(Attention(q, k, v, c.lay, c.heads, c.kvHeads, c.causal))
			ResetTape()
			for i, w := range want {
				if math.Abs(float64(got[i])-w) > 1e-5 || y[i] != got[i] {
					t.Fatalf("element %d: got %v (%v with grad), want %v", i, got[i], y[i], w)
				}
			}
		})
	}
}

// TestAttentionDeterministic checks that gradients are bit-identical across
// runs, whatever the goroutine schedule.
func TestAttentionDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	lay := Layout{Batch: 4, Len: 16}
	q, k, v := randParam(r, 64, 32, 1), randParam(r, 64, 16, 1), randParam(r, 64, 16, 1)
	var first [][]float32
	for rep := 0; rep < 3; rep++ {
		for _, p := range []*mat.Dense[float32]{q, k, v} {
			p.ZeroGrad()
		}
		y := Attention(q, k, v, lay, 4, 2, true)
		if err := Backward(Scale(y, 1)); err != nil {
			t.Fatal(err)
		}
		var grads [][]float32
		for _, p := range []*mat.Dense[float32]{q, k, v} {
			grads = append(grads, append([]float32(nil), Data(p.Grad())...))
		}
		if first == nil {
			first = grads
			continue
		}
		for i := range grads {
			for j := range grads[i] {
				if grads[i][j] != first[i][j] {
					t.Fatalf("run %d: gradient %d differs at %d", rep, i, j)
				}
			}
		}
	}
}

// TestRotaryCache checks that cached tables are only reused for the same
// positions, head size and base.
func TestRotaryCache(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	x := randParam(r, 4, 8, 1)
	a, b := []int{0, 1, 2, 3}, []int{0, 1, 5, 9}
	fresh := func(pos []int, heads int, theta float64) []float32 {
		dh := 8 / heads
		cos, sin := computeRotary(pos, dh, theta)
		f := &rotaryFn{x: x, cos: cos, sin: sin, heads: heads}
		return f.apply(Data(x), 4, false)
	}
	for _, c := range []struct {
		pos   []int
		heads int
		theta float64
	}{{a, 2, 10000}, {b, 2, 10000}, {a, 2, 10000}, {a, 1, 10000}, {a, 1, 500000}, {a, 2, 10000}} {
		var got []float32
		WithoutGrad(func() error { got = Data(Rotary(x, c.pos, c.heads, c.theta)); return nil })
		want := fresh(c.pos, c.heads, c.theta)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("positions %v heads %d theta %v: element %d is %v, want %v", c.pos, c.heads, c.theta, i, got[i], want[i])
			}
		}
	}
}
