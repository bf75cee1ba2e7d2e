package lora

import (
	"testing"

	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
)

// Every LoRA variant survives training, saving as a PEFT folder and
// loading back (the saved form is the plugin's own).
func TestSavedForm(t *testing.T) {
	c := sdktest.Connect(t, Adapters()...)
	for _, cs := range []struct {
		name string
		cs   sdktest.Case
	}{
		{"lora", sdktest.Case{Adapter: "lora", Config: map[string]any{"r": 3, "lora_alpha": 6.0}, In: 7, Out: 5, Bias: true}},
		{"rslora", sdktest.Case{Adapter: "lora", Config: map[string]any{"r": 4, "lora_alpha": 8.0, "use_rslora": true}, In: 7, Out: 5}},
		{"dropout", sdktest.Case{Adapter: "lora", Config: map[string]any{"r": 2, "lora_dropout": 0.1}, In: 6, Out: 6}},
		{"dora", sdktest.Case{Adapter: "dora", Config: map[string]any{"r": 2, "lora_alpha": 4.0}, In: 7, Out: 5, Bias: true}},
		{"merged", sdktest.Case{Adapter: "lora-merged", Config: map[string]any{"r": 2}, In: 5, Out: 7}},
		{"pissa", sdktest.Case{Adapter: "lora", Config: map[string]any{"r": 2, "init_lora_weights": "pissa"}, In: 6, Out: 5}},
	} {
		t.Run(cs.name, func(t *testing.T) { sdktest.CheckSaved(t, c, cs.cs) })
	}
}
