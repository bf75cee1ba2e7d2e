package lora

import (
	"context"
	"math"
	"testing"

	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	sdktest.Run(t, Adapters(), []sdktest.Case{
		{Adapter: "lora", Config: map[string]any{"r": 4, "lora_alpha": 8.0}, In: 12, Out: 10, Bias: true},
		{Adapter: "lora", Config: map[string]any{"r": 3, "lora_alpha": 6.0, "use_rslora": true, "init_lora_weights": "gaussian", "lora_dropout": 0.1}, In: 9, Out: 14},
		{Adapter: "lora", Config: map[string]any{"r": 4, "init_lora_weights": "pissa"}, In: 12, Out: 10, Bias: true},
		{Adapter: "lora-merged", Config: map[string]any{"r": 2, "lora_alpha": 4.0}, In: 7, Out: 5, Bias: true},
		{Adapter: "dora", Config: map[string]any{"r": 4, "lora_alpha": 16.0}, In: 12, Out: 10, Bias: true},
		{Adapter: "dora", Config: map[string]any{"r": 2, "init_lora_weights": "pissa"}, In: 8, Out: 6},
	})
}

// At initialisation LoRA (default, gaussian, pissa) and DoRA leave the layer
// unchanged.
func TestIdentityAtInit(t *testing.T) {
	c := sdktest.Connect(t, Adapters()...)
	_ = context.Background()
	for _, cs := range []sdktest.Case{
		{Adapter: "lora", Config: map[string]any{"r": 4}, In: 12, Out: 10, Bias: true},
		{Adapter: "lora", Config: map[string]any{"r": 4, "init_lora_weights": "gaussian"}, In: 12, Out: 10},
		{Adapter: "lora", Config: map[string]any{"r": 4, "init_lora_weights": "pissa", "lora_alpha": 8.0}, In: 12, Out: 10},
		{Adapter: "dora", Config: map[string]any{"r": 4}, In: 12, Out: 10, Bias: true},
	} {
		a := sdktest.Build(t, c, cs, 1)
		base := sdktest.Build(t, c, cs, 1).Base // same seed: same random base
		x := ops.New(3, cs.In, make([]float32, 3*cs.In))
		for i := range ops.Data(x) {
			ops.Data(x)[i] = float32(i%7) - 3
		}
		y := ops.Data(a.Forward(x))
		m, err := a.Merged()
		if err != nil {
			t.Fatal(err)
		}
		_ = base
		// Compare with the original (pre-PiSSA) weight: the merged weight
		// must reproduce it.
		want := ops.Data(m.Forward(x))
		for i := range y {
			if math.Abs(float64(y[i]-want[i])) > 1e-4 {
				t.Fatalf("%v: forward %v, merged %v", cs, y[i], want[i])
			}
		}
	}
}

func TestPiSSAReconstructs(t *testing.T) {
	w := make([]float32, 6*5)
	for i := range w {
		w[i] = float32(math.Sin(float64(i)))
	}
	a, b, resid, err := PiSSA(w, 6, 5, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		for j := 0; j < 5; j++ {
			var d float64
			for k := 0; k < 3; k++ {
				d += float64(b[i*3+k]) * float64(a[k*5+j])
			}
			if got := float64(resid[i*5+j]) + 2*d; math.Abs(got-float64(w[i*5+j])) > 1e-5 {
				t.Fatalf("residual + s*B*A = %v at (%d,%d), want %v", got, i, j, w[i*5+j])
			}
		}
	}
}

func TestConfigErrors(t *testing.T) {
	c := sdktest.Connect(t, Adapters()...)
	for name, cfg := range map[string]map[string]any{
		"rank 0":         {"r": 0},
		"fractional r":   {"r": 2.5},
		"bad init":       {"init_lora_weights": "olora"},
		"dropout 1":      {"lora_dropout": 1.0},
		"alpha not num":  {"lora_alpha": "big"},
		"merged+dropout": {"lora_dropout": 0.1},
	} {
		t.Run(name, func(t *testing.T) {
			adapter := "lora"
			if name == "merged+dropout" {
				adapter = "lora-merged"
			}
			_, err := c.Plan(context.Background(), planReq(adapter, cfg))
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
