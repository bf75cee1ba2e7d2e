// Package lora implements the LoRA family of adapters with Hugging Face
// PEFT's semantics: LoRA (with rsLoRA scaling, dropout, and default,
// gaussian or PiSSA initialisation), its merged form, and DoRA, with rank
// surgery (Resize for all three, Extract for lora). The surgeon-plugin-lora
// binary serves them.
package lora

import (
	"fmt"
	"math"
	"strings"

	"gonum.org/v1/gonum/mat"

	"github.com/surgeon-ml/surgeon/plugins/sdk"
)

// Parameter names, as PEFT names them in adapter_model.safetensors.
const (
	ParamA         = "lora_A.weight"
	ParamB         = "lora_B.weight"
	ParamMagnitude = "lora_magnitude_vector.weight"
)

// Keys are the configuration keys shared by lora, lora-merged and dora.
var Keys = []sdk.ConfigKey{
	{Name: "r", Type: "int", Default: 8, Doc: "rank of the update B*A"},
	{Name: "lora_alpha", Type: "float", Default: 8.0, Doc: "scaling numerator: scale = lora_alpha/r (or lora_alpha/sqrt(r) with use_rslora)"},
	{Name: "lora_dropout", Type: "float", Default: 0.0, Doc: "dropout probability on the adapter's input during training"},
	{Name: "use_rslora", Type: "bool", Default: false, Doc: "rank-stabilised scaling lora_alpha/sqrt(r)"},
	{Name: "init_lora_weights", Type: "any", Default: true, Doc: `true (kaiming-uniform A, zero B), "gaussian" (normal A with std 1/r, zero B), "pissa" (from the SVD of the base weight, which keeps the residual) or false (random B: not an identity at start)`},
}

// Config is a decoded configuration.
type Config struct {
	R       int
	Alpha   float64
	Dropout float64
	RSLoRA  bool
	Init    string // default, gaussian, pissa, random
}

// Scale returns the LoRA scaling factor.
func (c Config) Scale() float64 {
	if c.RSLoRA {
		return c.Alpha / math.Sqrt(float64(c.R))
	}
	return c.Alpha / float64(c.R)
}

func (c Config) summary() sdk.Summary {
	note := fmt.Sprintf("r=%d alpha=%g", c.R, c.Alpha)
	if c.RSLoRA {
		note += " rslora"
	}
	return sdk.Summary{Rank: c.R, Scale: c.Scale(), Alpha: c.Alpha, Note: note}
}

// Form is how the LoRA family is saved: PEFT's LORA type, rank_pattern and
// alpha_pattern for per-module ranks, use_dora for DoRA.
var Form = sdk.PEFTForm{
	Type:      "LORA",
	Params:    []string{ParamA, ParamB, ParamMagnitude},
	Aliases:   map[string]string{"lora_magnitude_vector": ParamMagnitude},
	Patterns:  map[string]string{"r": "rank_pattern", "lora_alpha": "alpha_pattern"},
	Flags:     map[string]string{"dora": "use_dora"},
	Component: "lora",
	Constant:  map[string]any{"bias": "none", "layers_to_transform": nil, "layers_pattern": nil},
	// PEFT adapts GPT-2's Conv1D layers with fan_in_fan_out: the same
	// A [r, in] and B [out, r], merged into the weight saved [in, out].
	KindFlags: map[string]string{"fan_in_fan_out": "conv1d"},
	// Trained values replace any initialisation (a PiSSA adapter's saved
	// A and B apply to the original weight like any LoRA's).
	LoadOverrides: map[string]any{"init_lora_weights": true},
}

// Decode reads and validates a configuration for a layer.
func Decode(c sdk.Config, l sdk.Layer) (Config, error) {
	cfg := Config{R: c.Int("r"), Alpha: c.Float("lora_alpha"), Dropout: c.Float("lora_dropout"), RSLoRA: c.Bool("use_rslora")}
	switch v := c.Value("init_lora_weights").(type) {
	case bool:
		cfg.Init = "default"
		if !v {
			cfg.Init = "random"
		}
	case string:
		switch s := strings.ToLower(v); {
		case s == "true" || s == "default":
			cfg.Init = "default"
		case s == "false":
			cfg.Init = "random"
		case s == "gaussian" || s == "pissa":
			cfg.Init = s
		default:
			return cfg, fmt.Errorf("init_lora_weights %q: want true, false, \"gaussian\" or \"pissa\"", v)
		}
	default:
		return cfg, fmt.Errorf("init_lora_weights %v: want a bool or a string", v)
	}
	switch {
	case cfg.R <= 0:
		return cfg, fmt.Errorf("r must be positive, got %d", cfg.R)
	case cfg.R > min(l.In, l.Out) && cfg.Init == "pissa":
		return cfg, fmt.Errorf("pissa: r %d exceeds the layer's rank bound min(%d,%d)", cfg.R, l.Out, l.In)
	case cfg.Dropout < 0 || cfg.Dropout >= 1:
		return cfg, fmt.Errorf("lora_dropout must be in [0,1), got %v", cfg.Dropout)
	case math.IsNaN(cfg.Alpha) || math.IsInf(cfg.Alpha, 0):
		return cfg, fmt.Errorf("lora_alpha must be finite")
	}
	return cfg, nil
}

func params(cfg Config, l sdk.Layer) []sdk.ParamSpec {
	a := sdk.ParamSpec{Name: ParamA, Shape: []int{cfg.R, l.In}, Trainable: true, Init: sdk.KaimingUniform(math.Sqrt(5))}
	b := sdk.ParamSpec{Name: ParamB, Shape: []int{l.Out, cfg.R}, Trainable: true, Init: sdk.Zeros}
	switch cfg.Init {
	case "gaussian":
		a.Init = sdk.Normal(1 / float64(cfg.R))
	case "pissa":
		a.Init, b.Init = sdk.Computed, sdk.Computed
	case "random":
		b.Init = sdk.KaimingUniform(math.Sqrt(5))
	}
	return []sdk.ParamSpec{a, b}
}

// PlanLoRA is the plan of a plain LoRA layer:
// y = x W^T + b + s * dropout(x) A^T B^T; merge W + s B A.
func PlanLoRA(c sdk.Config, l sdk.Layer) (*sdk.Plan, error) {
	cfg, err := Decode(c, l)
	if err != nil {
		return nil, err
	}
	s := cfg.Scale()
	f := sdk.NewProgram()
	x := f.X()
	f.Output("y", x.Linear().Add(x.LowRank(f.Param(ParamA), f.Param(ParamB), s, cfg.Dropout)))
	m := sdk.NewProgram()
	m.Output("weight", m.W().Add(m.Param(ParamB).MatMul(m.Param(ParamA)).Scale(s)))
	return &sdk.Plan{Params: params(cfg, l), Forward: f.Program(), Merge: m.Program(),
		NeedsInit: cfg.Init == "pissa", ReplacesBase: cfg.Init == "pissa", Summary: cfg.summary()}, nil
}

// PlanMerged is LoRA applied as one weight: y = x (W + s B A)^T + b. Same
// parameters and results as PlanLoRA; it costs a weight-sized product per
// step instead of two thin ones, and is the serving form after training.
// Dropout cannot be expressed in this form and is refused.
func PlanMerged(c sdk.Config, l sdk.Layer) (*sdk.Plan, error) {
	cfg, err := Decode(c, l)
	if err != nil {
		return nil, err
	}
	if cfg.Dropout != 0 {
		return nil, fmt.Errorf("lora-merged applies W + s*B*A as one weight and cannot apply lora_dropout %v to the adapter path alone; use lora", cfg.Dropout)
	}
	s := cfg.Scale()
	f := sdk.NewProgram()
	w := f.W().Add(f.Param(ParamB).MatMul(f.Param(ParamA)).Scale(s))
	f.Output("y", f.X().MatMulT(w).Add(f.Bias()))
	m := sdk.NewProgram()
	m.Output("weight", m.W().Add(m.Param(ParamB).MatMul(m.Param(ParamA)).Scale(s)))
	return &sdk.Plan{Params: params(cfg, l), Forward: f.Program(), Merge: m.Program(),
		NeedsInit: cfg.Init == "pissa", ReplacesBase: cfg.Init == "pissa", Summary: cfg.summary()}, nil
}

// PlanDoRA is weight-decomposed LoRA as PEFT computes it: with
// V = W + s B A and n = ||V||_row (no gradient), scale = m / n,
// y = x W^T + b + (scale - 1) * (x_d W^T) + scale * s * x_d A^T B^T where x_d
// is dropout(x); merge scale^T * V.
func PlanDoRA(c sdk.Config, l sdk.Layer) (*sdk.Plan, error) {
	cfg, err := Decode(c, l)
	if err != nil {
		return nil, err
	}
	s := cfg.Scale()
	ps := params(cfg, l)
	ps = append(ps, sdk.ParamSpec{Name: ParamMagnitude, Shape: []int{l.Out}, Trainable: true, Init: sdk.Computed})
	f := sdk.NewProgram()
	x := f.X()
	xd := x.Dropout(cfg.Dropout)
	v := f.W().Add(f.Param(ParamB).MatMul(f.Param(ParamA)).Scale(s))
	scale := f.Param(ParamMagnitude).Div(v.RowNorm().StopGrad().T()) // [1,out]
	base := x.MatMulT(f.W()).Add(f.Bias())
	wd := xd.MatMulT(f.W())
	lora := xd.LowRank(f.Param(ParamA), f.Param(ParamB), s, 0)
	f.Output("y", base.Add(scale.Sub(f.Const(1)).Mul(wd)).Add(scale.Mul(lora)))
	m := sdk.NewProgram()
	mv := m.W().Add(m.Param(ParamB).MatMul(m.Param(ParamA)).Scale(s))
	m.Output("weight", mv.Mul(m.Param(ParamMagnitude).T().Div(mv.RowNorm())))
	return &sdk.Plan{Params: ps, Forward: f.Program(), Merge: m.Program(), NeedsInit: true, ReplacesBase: cfg.Init == "pissa", Summary: cfg.summary()}, nil
}

// Init computes PiSSA's A and B (and the residual base weight) and DoRA's
// magnitude from the base weight.
func Init(dora bool) sdk.InitFunc {
	return func(l sdk.Layer, c sdk.Config, base []float32, seed uint64) (map[string][]float32, error) {
		cfg, err := Decode(c, l)
		if err != nil {
			return nil, err
		}
		out := map[string][]float32{}
		w := base
		if cfg.Init == "pissa" {
			a, b, resid, err := PiSSA(base, l.Out, l.In, cfg.R, cfg.Scale())
			if err != nil {
				return nil, err
			}
			out[ParamA], out[ParamB], out["base.weight"] = a, b, resid
		}
		if dora {
			// With PiSSA, W_residual + s*B*A equals the original weight, whose
			// row norms are the magnitude; otherwise B*A starts at zero.
			mag := make([]float32, l.Out)
			for i := range mag {
				var ss float64
				for _, v := range w[i*l.In : (i+1)*l.In] {
					ss += float64(v) * float64(v)
				}
				mag[i] = float32(math.Sqrt(ss))
			}
			if cfg.Init == "random" {
				return nil, fmt.Errorf("dora with init_lora_weights=false is not supported: the magnitude would need B*A")
			}
			out[ParamMagnitude] = mag
		}
		return out, nil
	}
}

// PiSSA splits W [out,in] by its SVD W = U S V^T into A = sqrt(S_r/s) V_r^T
// [r,in], B = U_r sqrt(S_r/s) [out,r] and the residual W - s B A, as PEFT's
// init_lora_weights="pissa" does.
func PiSSA(w []float32, out, in, r int, s float64) (a, b, resid []float32, err error) {
	m := mat.NewDense(out, in, nil)
	for i := 0; i < out; i++ {
		for j := 0; j < in; j++ {
			m.Set(i, j, float64(w[i*in+j]))
		}
	}
	var svd mat.SVD
	if !svd.Factorize(m, mat.SVDThin) {
		return nil, nil, nil, fmt.Errorf("pissa: SVD of the %dx%d base weight did not converge", out, in)
	}
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	sv := svd.Values(nil)
	a = make([]float32, r*in)
	b = make([]float32, out*r)
	for k := 0; k < r; k++ {
		root := math.Sqrt(sv[k] / s)
		for j := 0; j < in; j++ {
			a[k*in+j] = float32(root * v.At(j, k))
		}
		for i := 0; i < out; i++ {
			b[i*r+k] = float32(u.At(i, k) * root)
		}
	}
	resid = make([]float32, out*in)
	for i := 0; i < out; i++ {
		for j := 0; j < in; j++ {
			var d float64
			for k := 0; k < r; k++ {
				d += float64(b[i*r+k]) * float64(a[k*in+j])
			}
			resid[i*in+j] = float32(float64(w[i*in+j]) - s*d)
		}
	}
	return a, b, resid, nil
}

// Adapters returns the family's components.
func Adapters() []any {
	return []any{
		sdk.NewAdapter("lora", "LoRA: y = xW^T + b + s*x A^T B^T (PEFT LoraLayer)", Keys,
			func(l sdk.Layer, c sdk.Config) (*sdk.Plan, error) { return PlanLoRA(c, l) }).WithInit(Init(false)).
			WithResize(Resize).WithExtract(Extract).WithConcat(Concat).WithPEFT(Form),
		sdk.NewAdapter("lora-merged", "LoRA applied as one weight W + s*B*A (same results as lora, the serving form)", Keys,
			func(l sdk.Layer, c sdk.Config) (*sdk.Plan, error) { return PlanMerged(c, l) }).WithInit(Init(false)).
			WithResize(Resize).WithConcat(Concat).WithPEFT(Form),
		sdk.NewAdapter("dora", "DoRA: magnitude * (W + s*B*A)/||W + s*B*A||_row (PEFT use_dora)", Keys,
			func(l sdk.Layer, c sdk.Config) (*sdk.Plan, error) { return PlanDoRA(c, l) }).WithInit(Init(true)).
			WithResize(Resize).WithPEFT(Form),
	}
}
