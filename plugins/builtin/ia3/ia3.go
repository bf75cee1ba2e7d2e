// Package ia3 implements (IA)^3 with Hugging Face PEFT's semantics: a
// learned vector that rescales a layer's output (attention projections) or
// its input (feed-forward layers). The surgeon-plugin-ia3 binary serves it.
package ia3

import "github.com/surgeon-ml/surgeon/plugins/sdk"

// ParamL is PEFT's name of the scaling vector.
const ParamL = "ia3_l"

// Keys are the configuration keys.
var Keys = []sdk.ConfigKey{
	{Name: "feedforward", Type: "bool", Default: false, Doc: "scale the layer's input (PEFT feedforward_modules) instead of its output"},
}

// Plan returns the (IA)^3 plan. Output scaling: l [out,1],
// y = (x W^T + b) * l^T, merge W * l, b * l^T. Input scaling: l [1,in],
// y = (x * l) W^T + b, merge W * l.
func Plan(l sdk.Layer, c sdk.Config) (*sdk.Plan, error) {
	f, m := sdk.NewProgram(), sdk.NewProgram()
	if c.Bool("feedforward") {
		spec := sdk.ParamSpec{Name: ParamL, Shape: []int{1, l.In}, Trainable: true, Init: sdk.Ones}
		f.Output("y", f.X().Mul(f.Param(ParamL)).MatMulT(f.W()).Add(f.Bias()))
		m.Output("weight", m.W().Mul(m.Param(ParamL)))
		return &sdk.Plan{Params: []sdk.ParamSpec{spec}, Forward: f.Program(), Merge: m.Program()}, nil
	}
	spec := sdk.ParamSpec{Name: ParamL, Shape: []int{l.Out, 1}, Trainable: true, Init: sdk.Ones}
	f.Output("y", f.X().MatMulT(f.W()).Add(f.Bias()).Mul(f.Param(ParamL).T()))
	m.Output("weight", m.W().Mul(m.Param(ParamL)))
	m.Output("bias", m.Bias().Mul(m.Param(ParamL).T()))
	return &sdk.Plan{Params: []sdk.ParamSpec{spec}, Forward: f.Program(), Merge: m.Program()}, nil
}

// Adapters returns the component.
// Form is how IA3 is saved: PEFT's IA3 type, feedforward_modules listing
// the modules whose input is scaled.
var Form = sdk.PEFTForm{
	Type:      "IA3",
	Params:    []string{ParamL},
	Lists:     map[string]string{"feedforward": "feedforward_modules"},
	Component: "ia3",
	Constant:  map[string]any{"fan_in_fan_out": false, "init_ia3_weights": true},
}

// Adapters returns the IA3 component.
func Adapters() []any {
	return []any{sdk.NewAdapter("ia3", "(IA)^3: a learned vector scaling the output (or input) of a layer", Keys, Plan).WithPEFT(Form)}
}
