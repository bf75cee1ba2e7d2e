package ops

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

// RotaryFreqs turns pairs (i, i+len(inv)) of the first 2*len(inv)
// features of each head by position*inv[i], scales them by the attention
// factor and passes the other features through; its gradient is the
// transposed map.
func TestRotaryFreqs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 9))
	const heads, dh = 2, 10
	inv := []float32{1, 0.3, 0.05} // 6 of 10 features turn
	pos := []int{0, 3, 7}
	for _, tc := range []struct {
		name  string
		inv   []float32
		scale float32
	}{
		{"partial", inv, 1},
		{"partial, attention factor", inv, 1.3},
		{"whole head", []float32{1, 0.5, 0.2, 0.1, 0.01}, 0.8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := randParam(r, len(pos), heads*dh, 1)
			var y []float32
			WithoutGrad(func() error { y = Data(RotaryFreqs(x, pos, heads, tc.inv, tc.scale)); return nil })
			xd, half := Data(x), len(tc.inv)
			for row, p := range pos {
				for h := 0; h < heads; h++ {
					o := row*heads*dh + h*dh
					for i := 0; i < dh; i++ {
						var want float64
						switch {
						case i < half:
							a := float64(float32(p) * tc.inv[i])
							want = float64(tc.scale) * (float64(xd[o+i])*math.Cos(a) - float64(xd[o+i+half])*math.Sin(a))
						case i < 2*half:
							a := float64(float32(p) * tc.inv[i-half])
							want = float64(tc.scale) * (float64(xd[o+i])*math.Cos(a) + float64(xd[o+i-half])*math.Sin(a))
						default:
							want = float64(xd[o+i])
						}
						if got := y[o+i]; math.Abs(float64(got)-want) > 1e-5 {
							t.Fatalf("row %d head %d feature %d: %v, want %v", row, h, i, got, want)
						}
					}
				}
			}
			gradCheck(t, tc.name, []*mat.Dense[float32]{x}, func(in []mat.Tensor) mat.Tensor {
				return RotaryFreqs(in[0], pos, heads, tc.inv, tc.scale)
			})
		})
	}
}

// The cached tables are only reused for the same frequencies and factor:
// feature 1 turns by 0.1 or 0.2 per position, doubles with the factor 2,
// and feature 4 passes through.
func TestRotaryFreqsCache(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	x := randParam(r, 2, 8, 1)
	pos := []int{2, 5}
	var first, second, third []float32
	WithoutGrad(func() error {
		first = Data(RotaryFreqs(x, pos, 1, []float32{1, 0.1}, 1))
		second = Data(RotaryFreqs(x, pos, 1, []float32{1, 0.2}, 1))
		third = Data(RotaryFreqs(x, pos, 1, []float32{1, 0.2}, 2))
		return nil
	})
	if first[1] == second[1] || second[1]*2 != third[1] || first[4] != second[4] {
		t.Fatalf("tables reused across frequencies or factors: %v %v %v", first, second, third)
	}
}
