// Command surgeon-plugin-loha is the example custom adapter plugin: LoHa
// (low-rank Hadamard product, as in LyCORIS and PEFT's LoHaConfig), written
// against plugins/sdk only. Its update is
//
//	dW = (w1_a * w1_b) ⊙ (w2_a * w2_b) * alpha/r
//
// applied as y = x (W + dW)^T + b. Build it with `make` (it lands in
// bin/plugins/surgeon-plugin-loha), then use adapter = "loha" in a recipe.
package main

import "github.com/surgeon-ml/surgeon/plugins/sdk"

var keys = []sdk.ConfigKey{
	{Name: "r", Type: "int", Default: 8, Doc: "rank of each factor"},
	{Name: "alpha", Type: "float", Default: 8.0, Doc: "scale numerator: dW is multiplied by alpha/r"},
}

func plan(l sdk.Layer, c sdk.Config) (*sdk.Plan, error) {
	r, s := c.Int("r"), c.Float("alpha")/float64(c.Int("r"))
	params := []sdk.ParamSpec{
		{Name: "hada_w1_a", Shape: []int{l.Out, r}, Trainable: true, Init: sdk.Normal(0.1)},
		{Name: "hada_w1_b", Shape: []int{r, l.In}, Trainable: true, Init: sdk.Normal(1)},
		{Name: "hada_w2_a", Shape: []int{l.Out, r}, Trainable: true, Init: sdk.Zeros}, // dW starts at 0
		{Name: "hada_w2_b", Shape: []int{r, l.In}, Trainable: true, Init: sdk.Normal(1)},
	}
	weight := func(p *sdk.Builder) sdk.Expr {
		w1 := p.Param("hada_w1_a").MatMul(p.Param("hada_w1_b"))
		w2 := p.Param("hada_w2_a").MatMul(p.Param("hada_w2_b"))
		return p.W().Add(w1.Mul(w2).Scale(s))
	}
	f, m := sdk.NewProgram(), sdk.NewProgram()
	f.Output("y", f.X().MatMulT(weight(f)).Add(f.Bias()))
	m.Output("weight", weight(m))
	return &sdk.Plan{Params: params, Forward: f.Program(), Merge: m.Program(),
		Summary: sdk.Summary{Rank: r, Alpha: c.Float("alpha"), Scale: s}}, nil
}

// form is how LoHa is saved: PEFT's LOHA type, rank_pattern/alpha_pattern.
var form = sdk.PEFTForm{Type: "LOHA", Component: "loha",
	Params:   []string{"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"},
	Patterns: map[string]string{"r": "rank_pattern", "alpha": "alpha_pattern"},
	Constant: map[string]any{"rank_dropout": 0.0, "module_dropout": 0.0, "use_effective_conv2d": false, "init_weights": true}}

// Adapter is the LoHa component (exported for the conformance test).
var Adapter = sdk.NewAdapter("loha", "LoHa: W + (w1_a w1_b) ⊙ (w2_a w2_b) * alpha/r (example plugin)", keys, plan).WithPEFT(form)

func main() { sdk.Serve("loha", "0.1.0", Adapter) }
