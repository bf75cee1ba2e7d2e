package ranks

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sort"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

// Combining several adapters, as mergekit does for full models:
//
//   - Cat: the exact weighted sum of LoRA updates as one LoRA whose rank is
//     the sum of the ranks (A' stacks the A_i, B' the w_i s_i B_i).
//   - SVD: that sum truncated by SVD to a rank (Cat, then Resize).
//   - TIES and DARE: on the dense update of every parameter (any adapter
//     type), producing merged weights.

// Cat returns one adapter whose update is exactly the weighted sum of the
// adapters' updates, module by module: the plugin of their adapter type
// combines each module (capability concat; LoRA stacks the factors, so
// the rank is the sum of the ranks). The adapters must share one adapter
// type and carry no fully trained tensors.
func Cat(ctx context.Context, s Surgeon, adapters []*peft.Adapter, weights []float64) (*peft.Adapter, error) {
	if len(adapters) == 0 {
		return nil, fmt.Errorf("no adapters to concatenate")
	}
	if len(weights) != len(adapters) {
		return nil, fmt.Errorf("%d weights for %d adapters", len(weights), len(adapters))
	}
	type part struct {
		cfg    map[string]any
		weight float64
		params map[string]rpc.Tensor
	}
	parts := map[string][]part{}
	comp := ""
	for i, a := range adapters {
		targets, err := attach.Split(ctx, s, a)
		if err != nil {
			return nil, fmt.Errorf("adapter %d: %w", i+1, err)
		}
		if len(a.Saved) > 0 {
			return nil, fmt.Errorf("adapter %d carries fully trained tensors (%s): they cannot be concatenated into one adapter; merge the adapters into the model with --method linear, ties or dare instead", i+1, sortedKeys(a.Saved)[0])
		}
		for _, t := range targets {
			if comp == "" {
				comp = t.Adapter
			} else if t.Adapter != comp {
				return nil, fmt.Errorf("adapter %d, module %s is %s, adapter 1 is %s: one concatenated adapter holds one type", i+1, t.Path, t.Adapter, comp)
			}
			ps := map[string]rpc.Tensor{}
			for name, tt := range a.Modules[t.Path] {
				ps[name] = rpc.Tensor{Shape: tt.Shape, Data: t.Values[name]}
			}
			parts[t.Path] = append(parts[t.Path], part{t.Config, weights[i], ps})
		}
	}
	var mods []attach.Module
	for _, m := range sortedKeys(parts) {
		req := rpc.RankRequest{Adapter: comp, Layer: rpc.Layer{Path: m, Kind: "linear", DType: "F32"}, Config: parts[m][0].cfg}
		params := map[string]rpc.Tensor{}
		for j, p := range parts[m] {
			req.Parts = append(req.Parts, p.cfg)
			req.Weights = append(req.Weights, p.weight)
			for name, t := range p.params {
				params[rpc.PartName(j, name)] = t
			}
		}
		r, err := s.Concat(ctx, req, params)
		if err != nil {
			return nil, fmt.Errorf("module %s: %w (--method linear, ties and dare work with any adapter)", m, err)
		}
		ts, err := toTensors(r.Tensors)
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", m, err)
		}
		mods = append(mods, attach.Module{Path: m, Layer: req.Layer, Config: r.Config, Tensors: ts})
	}
	info, err := infoOf(adapters[0])
	if err != nil {
		return nil, err
	}
	info.Saved, info.ModulesToSave = nil, nil
	info.Metadata = map[string]string{"surgeon.merge": "cat"}
	return attach.Compose(ctx, s, comp, mods, info)
}

// SVD returns one LoRA adapter whose update is the weighted sum of the
// adapters' updates truncated by SVD as sel says (per module): Cat, then
// Resize through the plugins, which is exact (the SVD of the concatenated
// factors is the SVD of the sum).
func SVD(ctx context.Context, s Surgeon, adapters []*peft.Adapter, weights []float64, sel rpc.RankSelection) (*peft.Adapter, []Stat, error) {
	if err := sel.Validate(); err != nil {
		return nil, nil, err
	}
	cat, err := Cat(ctx, s, adapters, weights)
	if err != nil {
		return nil, nil, err
	}
	out, stats, err := Resize(ctx, s, cat, sel)
	if err != nil {
		return nil, nil, err
	}
	out.Metadata["surgeon.merge"] = "svd " + sel.String()
	delete(out.Metadata, "surgeon.resize")
	return out, stats, nil
}

// Deltas returns an adapter's dense update of a model by parameter name:
// merged - base for the weight (and bias) of every adapted layer, and
// saved - current for its fully trained tensors. It attaches the adapter
// through the plugins, merges each layer with the adapter's merge program
// and restores the model, so any adapter type works.
func Deltas(ctx context.Context, m model.Model, p attach.Store, a *peft.Adapter) (map[string][]float32, error) {
	targets, err := attach.Split(ctx, p, a)
	if err != nil {
		return nil, err
	}
	adapted, err := attach.Attach(ctx, m, p, targets, 0)
	if err != nil {
		return nil, err
	}
	defer attach.Unload(m)
	out := map[string][]float32{}
	for i, ad := range adapted {
		path := targets[i].Path
		merged, err := ad.Merged()
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", path, err)
		}
		out[path+".weight"] = sub(ops.Data(merged.Weight), ops.Data(ad.Base.Weight))
		if merged.Bias != nil {
			var base []float32
			if ad.Base.Bias != nil {
				base = ops.Data(ad.Base.Bias)
			}
			out[path+".bias"] = sub(ops.Data(merged.Bias), base)
		}
	}
	attach.Unload(m)
	if len(a.Saved) > 0 {
		// Let attach resolve the saved names, then take the difference and
		// restore the parameters.
		before := map[string][]float32{}
		params := layer.Params(m)
		for _, p := range params {
			before[p.Path] = append([]float32(nil), ops.Data(p.Param)...)
		}
		if err := attach.ApplySaved(m, a.Saved, 1); err != nil {
			return nil, err
		}
		for _, p := range params {
			d := ops.Data(p.Param)
			if !equal(d, before[p.Path]) {
				out[p.Path] = sub(d, before[p.Path])
				copy(d, before[p.Path])
			}
		}
	}
	return out, nil
}

// sub returns a - b (b nil: a copy of a).
func sub(a, b []float32) []float32 {
	out := make([]float32, len(a))
	for i := range a {
		out[i] = a[i]
		if b != nil {
			out[i] -= b[i]
		}
	}
	return out
}

// Combine adds to m's parameters the combination of several adapters'
// deltas (from Deltas) by method "ties" or "dare" with the given weights,
// density and seed (dare). A parameter missing from an adapter's deltas
// counts as an unchanged one.
func Combine(m model.Model, deltas []map[string][]float32, weights []float64, method string, density float64, seed uint64) error {
	if len(weights) != len(deltas) {
		return fmt.Errorf("%d weights for %d adapters", len(weights), len(deltas))
	}
	if !(density > 0 && density <= 1) {
		return fmt.Errorf("density must be in (0,1], got %v", density)
	}
	params := map[string]layer.Param{}
	for _, p := range layer.Params(m) {
		params[p.Path] = p
	}
	names := map[string]bool{}
	for _, d := range deltas {
		for n := range d {
			names[n] = true
		}
	}
	keys := make([]string, 0, len(names))
	for n := range names {
		keys = append(keys, n)
	}
	sort.Strings(keys)
	for _, name := range keys {
		p, ok := params[name]
		if !ok {
			return fmt.Errorf("delta for %s: no such parameter in the model", name)
		}
		ds := make([][]float32, len(deltas))
		for i, d := range deltas {
			ds[i] = d[name]
			if ds[i] != nil && len(ds[i]) != p.Param.Size() {
				return fmt.Errorf("delta for %s: %d values, the parameter has %d", name, len(ds[i]), p.Param.Size())
			}
		}
		var c []float32
		switch method {
		case "ties":
			c = TIES(ds, weights, density)
		case "dare":
			c = DARE(ds, weights, density, seed, name)
		default:
			return fmt.Errorf("unknown combination method %q (ties, dare)", method)
		}
		d := ops.Data(p.Param)
		for i := range d {
			d[i] += c[i]
		}
	}
	return nil
}

// TIES combines deltas as TIES-merging (Yadav et al. 2023; mergekit's
// "ties"): each delta is trimmed to its top density fraction of entries by
// magnitude (at least one), a sign is elected per entry as the sign of the
// weighted sum (ties go to +), and the result is the disjoint weighted mean
// of the weighted entries agreeing with it:
// sum_i w_i t_i [agree] / sum_i w_i [agree]. Nil deltas are zeros.
func TIES(ds [][]float32, w []float64, density float64) []float32 {
	n := length(ds)
	trimmed := make([][]float32, len(ds))
	for i, d := range ds {
		if d != nil {
			trimmed[i] = TopK(d, density)
		}
	}
	out := make([]float32, n)
	for j := 0; j < n; j++ {
		var sum float64
		for i, t := range trimmed {
			if t != nil {
				sum += w[i] * float64(t[j])
			}
		}
		positive := sum >= 0
		var num, den float64
		for i, t := range trimmed {
			if t == nil {
				continue
			}
			v := w[i] * float64(t[j])
			if v != 0 && (v > 0) == positive {
				num += v
				den += w[i]
			}
		}
		if den == 0 {
			den = 1
		}
		out[j] = float32(num / den)
	}
	return out
}

// TopK keeps the floor(density*len) entries of d largest in magnitude (at
// least one; equal magnitudes are kept in index order) and zeroes the rest.
func TopK(d []float32, density float64) []float32 {
	out := make([]float32, len(d))
	if density >= 1 {
		copy(out, d)
		return out
	}
	k := max(1, int(density*float64(len(d))))
	idx := make([]int, len(d))
	for i := range idx {
		idx[i] = i
	}
	abs := func(x float32) float32 {
		if x < 0 {
			return -x
		}
		return x
	}
	sort.SliceStable(idx, func(a, b int) bool { return abs(d[idx[a]]) > abs(d[idx[b]]) })
	for _, i := range idx[:min(k, len(d))] {
		out[i] = d[i]
	}
	return out
}

// DARE combines deltas as DARE (Yu et al. 2023; mergekit's "dare_linear"):
// every entry of each delta is kept with probability density and rescaled
// by 1/density, then the weighted sum is taken. The random masks come from
// seed, the parameter name and the adapter's index, so a result does not
// depend on the order parameters are visited in.
func DARE(ds [][]float32, w []float64, density float64, seed uint64, name string) []float32 {
	n := length(ds)
	out := make([]float64, n)
	for i, d := range ds {
		if d == nil {
			continue
		}
		keep := Mask(n, density, seed, name, i)
		for j, v := range d {
			if keep[j] {
				out[j] += w[i] * float64(v) / density
			}
		}
	}
	res := make([]float32, n)
	for j, v := range out {
		res[j] = float32(v)
	}
	return res
}

// Mask returns DARE's keep-mask of n entries for adapter index i of the
// parameter name: each entry is kept with probability density.
func Mask(n int, density float64, seed uint64, name string, i int) []bool {
	h := fnv.New64a()
	h.Write([]byte(name))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()+uint64(i)))
	keep := make([]bool, n)
	for j := range keep {
		keep[j] = rng.Float64() < density
	}
	return keep
}

func length(ds [][]float32) int {
	for _, d := range ds {
		if d != nil {
			return len(d)
		}
	}
	return 0
}
