package lora

import (
	"fmt"

	"github.com/surgeon-ml/surgeon/plugins/sdk"
)

// Concat combines one module of several LoRA adapters into one LoRA
// module whose update is exactly sum_i w_i s_i B_i A_i: A' stacks the A_i
// (rows), B' the w_i s_i B_i (columns), r' = sum r_i and lora_alpha = r'
// (scale 1, no rsLoRA). It backs surgeon merge --method cat (and svd,
// which resizes the result).
func Concat(l sdk.Layer, parts []sdk.Config, weights []float64, params []map[string]sdk.Tensor) (*sdk.RankResult, error) {
	if len(parts) == 0 || len(parts) != len(weights) || len(parts) != len(params) {
		return nil, fmt.Errorf("%d parts, %d weights, %d parameter sets", len(parts), len(weights), len(params))
	}
	type part struct {
		a, b  []float32
		r     int
		scale float64
	}
	var ps []part
	out, in := -1, -1
	for i, c := range parts {
		cfg, err := Decode(c, l)
		if err != nil {
			return nil, fmt.Errorf("part %d: %w", i+1, err)
		}
		at, okA := params[i][ParamA]
		bt, okB := params[i][ParamB]
		if !okA || !okB || len(at.Shape) != 2 || len(bt.Shape) != 2 || at.Shape[0] != bt.Shape[1] {
			return nil, fmt.Errorf("part %d: want %s [r,in] and %s [out,r]", i+1, ParamA, ParamB)
		}
		if _, dora := params[i][ParamMagnitude]; dora {
			return nil, fmt.Errorf("part %d is DoRA: its update is not a sum of low-rank terms B*A", i+1)
		}
		if out >= 0 && (bt.Shape[0] != out || at.Shape[1] != in) {
			return nil, fmt.Errorf("part %d: update [%d,%d], part 1's is [%d,%d]", i+1, bt.Shape[0], at.Shape[1], out, in)
		}
		out, in = bt.Shape[0], at.Shape[1]
		if len(at.Data) != at.Shape[0]*in || len(bt.Data) != out*bt.Shape[1] {
			return nil, fmt.Errorf("part %d: tensor sizes do not match their shapes", i+1)
		}
		ps = append(ps, part{at.Data, bt.Data, at.Shape[0], weights[i] * cfg.Scale()})
	}
	r := 0
	for _, p := range ps {
		r += p.r
	}
	a := make([]float32, 0, r*in)
	b := make([]float32, out*r)
	col := 0
	for _, p := range ps {
		a = append(a, p.a...)
		for i := 0; i < out; i++ {
			for c := 0; c < p.r; c++ {
				b[i*r+col+c] = float32(p.scale * float64(p.b[i*p.r+c]))
			}
		}
		col += p.r
	}
	return &sdk.RankResult{
		Tensors: map[string]sdk.Tensor{ParamA: {Shape: []int{r, in}, Data: a}, ParamB: {Shape: []int{out, r}, Data: b}},
		Config:  map[string]any{"r": r, "lora_alpha": float64(r), "use_rslora": false, "init_lora_weights": true},
		NewRank: r, Energy: 1,
	}, nil
}
