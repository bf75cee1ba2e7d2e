package ia3

import (
	"testing"

	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
)

// IA3 on outputs and on inputs (feedforward_modules) survives training,
// saving as a PEFT folder and loading back.
func TestSavedForm(t *testing.T) {
	c := sdktest.Connect(t, Adapters()...)
	for name, cs := range map[string]sdktest.Case{
		"output":      {Adapter: "ia3", Config: map[string]any{}, In: 7, Out: 5, Bias: true},
		"feedforward": {Adapter: "ia3", Config: map[string]any{"feedforward": true}, In: 7, Out: 5},
	} {
		t.Run(name, func(t *testing.T) { sdktest.CheckSaved(t, c, cs) })
	}
}
