package apply

import (
	"context"
	"fmt"
	"sort"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/surgery/attach"
	"github.com/surgeon-ml/surgeon/surgery/recipe"
)

// PEFTAdapter returns the trained adapters (and fully trained modules) as
// a Hugging Face PEFT adapter: LoRA and DoRA as peft_type LORA (with
// rank_pattern / alpha_pattern where modules differ), IA3 as IA3 and LoHa as
// LOHA. Mixing adapter families in one run is not expressible in one PEFT
// folder and is an error.
func (r *Run) PEFTAdapter() (*peft.Adapter, error) {
	a := &peft.Adapter{Modules: map[string]map[string]tensor.Tensor{}, Saved: map[string]tensor.Tensor{}}
	c := &a.Config
	c.TaskType = "CAUSAL_LM"
	if r.Classifier() {
		c.TaskType = "SEQ_CLS"
	}
	c.BaseModel = r.Recipe.Model.Path
	c.Bias = "none"
	c.InferenceMode = true
	c.RankPattern = map[string]int{}
	c.AlphaPattern = map[string]float64{}
	c.Extra = map[string]any{"revision": nil, "layers_to_transform": nil, "layers_pattern": nil}
	family := ""
	var targets []string
	ranks := map[int]int{}
	alphas := map[float64]int{}
	type mod struct {
		path  string
		r     int
		alpha float64
	}
	var mods []mod
	for _, path := range sortedKeys(r.Adapters) {
		ad := r.Adapters[path]
		fam := map[string]string{"lora": "LORA", "dora": "LORA", "lora-merged": "LORA", "ia3": "IA3", "loha": "LOHA"}[ad.Type]
		if fam == "" {
			return nil, fmt.Errorf("adapter %q has no PEFT equivalent", ad.Type)
		}
		if family != "" && family != fam {
			return nil, fmt.Errorf("adapters of PEFT types %s and %s cannot share one PEFT folder", family, fam)
		}
		family = fam
		cfg := ad.Config()
		if ad.Type == "dora" {
			c.UseDoRA = true
		}
		if v, ok := cfg["use_rslora"].(bool); ok && v {
			c.UseRSLoRA = true
		}
		if v, ok := cfg["lora_dropout"]; ok {
			c.LoraDropout = toFloat(v)
		}
		m := mod{path: path, r: toInt(firstOf(cfg, "r")), alpha: toFloat(firstOf(cfg, "lora_alpha", "alpha"))}
		if fam == "LORA" {
			if m.r == 0 {
				m.r = 8
			}
			if _, ok := cfg["lora_alpha"]; !ok {
				m.alpha = 8
			}
		}
		ranks[m.r]++
		alphas[m.alpha]++
		mods = append(mods, m)
		targets = append(targets, path)
		params := map[string]tensor.Tensor{}
		for i, name := range ad.Names {
			data, _ := tensor.FromFloat32(tensor.F32, ops.Data(ad.Values[i]))
			params[name] = tensor.Tensor{Name: name, DType: tensor.F32, Shape: ad.Shapes[i], Data: data}
		}
		a.Modules[path] = params
		if fam == "IA3" {
			if ff, _ := cfg["feedforward"].(bool); ff {
				fm, _ := c.FeedforwardModule.([]string)
				c.FeedforwardModule = append(fm, path)
			}
		}
	}
	c.PeftType = family
	if family == "" {
		c.PeftType = "LORA"
	}
	// The most common rank and alpha are the defaults; others are patterns.
	c.R = mostCommon(ranks)
	c.LoraAlpha = mostCommonF(alphas)
	for _, m := range mods {
		if m.r != c.R {
			c.RankPattern[m.path] = m.r
		}
		if m.alpha != c.LoraAlpha {
			c.AlphaPattern[m.path] = m.alpha
		}
	}
	sort.Strings(targets)
	c.TargetModules = targets
	if family == "LOHA" {
		c.Extra["alpha"] = c.LoraAlpha
		c.LoraAlpha = 0
	}
	for _, p := range layer.Params(r.Model) {
		for _, s := range r.Saved {
			if p.Path == s || (len(p.Path) > len(s) && p.Path[:len(s)+1] == s+".") {
				data, _ := tensor.FromFloat32(tensor.F32, ops.Data(p.Param))
				a.Saved[p.Path] = tensor.Tensor{Name: p.Path, DType: tensor.F32, Shape: p.Shape, Data: data}
			}
		}
	}
	if len(r.Saved) > 0 {
		c.ModulesToSave = append([]string(nil), r.Saved...)
	}
	if r.Recipe.Train.Mode == recipe.ModeHead && len(a.Modules) == 0 {
		c.TargetModules = []string{}
	}
	return a, nil
}

func firstOf(m map[string]any, keys ...string) any {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v
		}
	}
	return nil
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int:
		return float64(x)
	case int64:
		return float64(x)
	}
	return 0
}

func mostCommon(m map[int]int) int {
	best, n := 0, -1
	for k, c := range m {
		if c > n || (c == n && k < best) {
			best, n = k, c
		}
	}
	return best
}

func mostCommonF(m map[float64]int) float64 {
	best, n := 0.0, -1
	for k, c := range m {
		if c > n || (c == n && k < best) {
			best, n = k, c
		}
	}
	return best
}

func writePEFT(dir string, a *peft.Adapter) error { return peft.Write(dir, a) }

// UseAdapter replaces the run's adapters with a saved PEFT adapter folder
// (its LoRA/DoRA/IA3 modules and its fully trained tensors), so that the
// recipe's data can evaluate it.
func (r *Run) UseAdapter(ctx context.Context, dir string) error {
	a, err := peft.Read(dir)
	if err != nil {
		return err
	}
	attach.Unload(r.Model)
	targets, err := attach.FromPEFT(a)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if _, err := attach.Attach(ctx, r.Model, r.Opts.Planner, targets, 0); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if err := attach.ApplySaved(r.Model, a.Saved, 1); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	r.Adapters = attach.Adapted(r.Model)
	return nil
}
