package ranks

import (
	"context"
	"fmt"
	"strings"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

// ExtractOptions control Extract.
type ExtractOptions struct {
	// Adapter is the adapter component that extracts (one offering the
	// extract capability).
	Adapter string
	// Select chooses each module's rank.
	Select rpc.RankSelection
	// SaveChanged saves modules that are not linear layers (embeddings,
	// norms) and linear biases that differ between the checkpoints as
	// fully trained tensors (PEFT modules_to_save, bias "all"), so that the
	// adapter reproduces them exactly; when false they are skipped with a
	// note.
	SaveChanged bool
	// BaseModel is written as base_model_name_or_path.
	BaseModel string
	// BaseFiller and TunedFiller, when set, fill each parameter of the base
	// and the fine-tuned model just before it is read and release it after
	// (models built by checkpoint.OpenSkeleton: one module in memory at a
	// time). Nil for models whose values are loaded.
	BaseFiller, TunedFiller Filler
}

// Filler fills a parameter's values from its checkpoint and releases them
// (checkpoint.Skeleton is one).
type Filler interface {
	Fill(p layer.Param) error
	Release(p layer.Param)
}

// filling fills params with f (if any) and returns the function that
// releases them.
func filling(f Filler, params ...layer.Param) (func(), error) {
	release := func() {}
	if f == nil {
		return release, nil
	}
	var done []layer.Param
	release = func() {
		for _, p := range done {
			f.Release(p)
		}
	}
	for _, p := range params {
		if p.Param == nil {
			continue
		}
		if err := f.Fill(p); err != nil {
			release()
			return nil, err
		}
		done = append(done, p)
	}
	return release, nil
}

// Extract computes a LoRA adapter from the difference of a fine-tuned
// model and its base, as mergekit-extract-lora does: for every linear
// layer whose weight changed, the plugin truncates the SVD of the delta
// (A = sqrt(S) V^T, B = U sqrt(S), lora_alpha = rank: scale 1). Unchanged
// layers are skipped; other changed tensors are saved or skipped as
// opts.SaveChanged says. Ranks that differ between modules go to
// rank_pattern, and target_modules lists the modules by full path.
func Extract(ctx context.Context, s Surgeon, base, tuned model.Model, opts ExtractOptions) (*peft.Adapter, []Stat, error) {
	if opts.Adapter == "" {
		return nil, nil, fmt.Errorf("extract: no adapter component named")
	}
	if err := opts.Select.Validate(); err != nil {
		return nil, nil, err
	}
	bslots, tslots := attach.Slots(base), attach.Slots(tuned)
	bparams, tparams := paramsByPath(base), paramsByPath(tuned)
	for _, p := range sortedKeys(tslots) {
		if _, ok := bslots[p]; !ok {
			return nil, nil, fmt.Errorf("linear layer %s of the fine-tuned model is not in the base", p)
		}
	}
	saved := map[string]tensor.Tensor{}
	var mods []attach.Module
	var stats []Stat
	biasSaved := false
	for _, path := range sortedKeys(bslots) {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		ts, ok := tslots[path]
		if !ok {
			return nil, nil, fmt.Errorf("linear layer %s of the base is not in the fine-tuned model", path)
		}
		bl, tl := bslots[path].Base(), ts.Base()
		if bl == nil || tl == nil {
			return nil, nil, fmt.Errorf("linear layer %s holds an adapter: extract needs plain models", path)
		}
		if bl.In() != tl.In() || bl.Out() != tl.Out() {
			return nil, nil, fmt.Errorf("linear layer %s: base [%d,%d], fine-tuned [%d,%d]", path, bl.Out(), bl.In(), tl.Out(), tl.In())
		}
		if (bl.Bias == nil) != (tl.Bias == nil) {
			return nil, nil, fmt.Errorf("linear layer %s: only one model has a bias", path)
		}
		releaseBase, err := filling(opts.BaseFiller, bparams[path+".weight"], bparams[path+".bias"])
		if err != nil {
			return nil, nil, fmt.Errorf("module %s: %w", path, err)
		}
		releaseTuned, err := filling(opts.TunedFiller, tparams[path+".weight"], tparams[path+".bias"])
		if err != nil {
			releaseBase()
			return nil, nil, fmt.Errorf("module %s: %w", path, err)
		}
		mod, st, bst, err := extractModule(ctx, s, opts, path, bl, tl)
		releaseTuned()
		releaseBase()
		if err != nil {
			return nil, nil, err
		}
		if bst != nil {
			stats = append(stats, bst.Stat)
			if bst.savedBias != nil {
				saved[bst.Module] = *bst.savedBias
				biasSaved = true
			}
		}
		stats = append(stats, st)
		if mod != nil {
			mods = append(mods, *mod)
		}
	}
	others, err := otherChanges(base, tuned, bslots, opts)
	if err != nil {
		return nil, nil, err
	}
	return finishExtract(ctx, s, opts, base, stats, mods, saved, biasSaved, others)
}

// extractModule extracts one linear layer whose values are in memory: the
// module's adapter tensors (nil when skipped), its stat, and a stat for a
// changed bias (with the bias to save when opts.SaveChanged).
func extractModule(ctx context.Context, s Surgeon, opts ExtractOptions, path string, bl, tl *layer.Linear) (*attach.Module, Stat, *biasStat, error) {
	var bst *biasStat
	{
		bw, tw := ops.Data(bl.Weight), ops.Data(tl.Weight)
		weightChanged := !equal(bw, tw)
		if bl.Bias != nil && !equal(ops.Data(bl.Bias), ops.Data(tl.Bias)) {
			// PEFT saves the bias of a LoRA-wrapped layer under base_layer.
			name := path + ".bias"
			if weightChanged {
				name = path + ".base_layer.bias"
			}
			bst = &biasStat{Stat: Stat{Module: name, Skipped: true}}
			if opts.SaveChanged {
				t := f32Tensor(ops.Data(tl.Bias), []int{tl.Out()})
				bst.savedBias = &t
				bst.Note = "bias changed: saved as a trained bias (PEFT bias \"all\")"
			} else {
				bst.Note = "bias changed: not saved"
			}
		}
		if !weightChanged {
			return nil, Stat{Module: path, Adapter: opts.Adapter, Skipped: true, Note: "unchanged"}, bst, nil
		}
		l := rpc.Layer{Path: path, Kind: bl.HFKind(), In: bl.In(), Out: bl.Out(), HasBias: bl.Bias != nil, DType: "F32"}
		r, err := s.Extract(ctx, rpc.RankRequest{Adapter: opts.Adapter, Layer: l, Config: map[string]any{}, Select: opts.Select}, bw, tw)
		if err != nil {
			return nil, Stat{}, nil, fmt.Errorf("module %s: %w", path, err)
		}
		st := Stat{Module: path, Adapter: opts.Adapter, NewRank: r.NewRank, Energy: r.Energy,
			SingularValues: r.SingularValues, Skipped: r.Skipped, Note: r.Note}
		if r.Skipped {
			return nil, st, bst, nil
		}
		mod, err := toTensors(r.Tensors)
		if err != nil {
			return nil, Stat{}, nil, fmt.Errorf("module %s: %w", path, err)
		}
		return &attach.Module{Path: path, Layer: l, Config: r.Config, Tensors: mod}, st, bst, nil
	}
}

// biasStat is the stat of a changed bias, with the bias to save.
type biasStat struct {
	Stat
	savedBias *tensor.Tensor
}

// paramsByPath indexes a model's parameters.
func paramsByPath(m model.Model) map[string]layer.Param {
	out := map[string]layer.Param{}
	for _, p := range layer.Params(m) {
		out[p.Path] = p
	}
	return out
}

// finishExtract adds the changed non-linear modules and composes the
// adapter.
func finishExtract(ctx context.Context, s Surgeon, opts ExtractOptions, base model.Model, stats []Stat, mods []attach.Module,
	saved map[string]tensor.Tensor, biasSaved bool, others map[string]map[string]tensor.Tensor) (*peft.Adapter, []Stat, error) {
	var toSave []string
	for _, mod := range sortedKeys(others) {
		st := Stat{Module: mod, Skipped: true}
		if opts.SaveChanged {
			for name, t := range others[mod] {
				saved[name] = t
			}
			toSave = append(toSave, mod)
			st.Note = "not a linear layer, changed: saved whole (modules_to_save)"
		} else {
			st.Note = "not a linear layer, changed: not saved"
		}
		stats = append(stats, st)
	}
	sortStats(stats)
	if len(mods) == 0 && len(saved) == 0 {
		return nil, stats, fmt.Errorf("the two models are identical: nothing to extract")
	}
	info := attach.Info{TaskType: "CAUSAL_LM", BaseModel: opts.BaseModel, Saved: saved, ModulesToSave: toSave,
		Metadata: map[string]string{"surgeon.extract": opts.Select.String()}}
	if base.Task() == model.SequenceClassification {
		info.TaskType = "SEQ_CLS"
	}
	if biasSaved {
		info.Extra = map[string]any{"bias": "all"}
	}
	out, err := attach.Compose(ctx, s, opts.Adapter, mods, info)
	if err != nil {
		return nil, nil, err
	}
	return out, stats, nil
}

// otherChanges returns, by module path, the parameters of modules that are
// not linear slots when any of the module's parameters changed. With
// fillers, one module's parameters are in memory at a time.
func otherChanges(base, tuned model.Model, slots map[string]*layer.Slot, opts ExtractOptions) (map[string]map[string]tensor.Tensor, error) {
	tp := paramsByPath(tuned)
	type pair struct{ b, t layer.Param }
	byModule := map[string][]pair{}
	var order []string
	for _, p := range layer.Params(base) {
		mod := p.Path
		if i := strings.LastIndexByte(mod, '.'); i >= 0 {
			mod = mod[:i]
		}
		if _, isSlot := slots[mod]; isSlot {
			continue
		}
		t, ok := tp[p.Path]
		if !ok {
			return nil, fmt.Errorf("parameter %s of the base is not in the fine-tuned model", p.Path)
		}
		if !sameShape(p.Shape, t.Shape) {
			return nil, fmt.Errorf("parameter %s: base %v, fine-tuned %v", p.Path, p.Shape, t.Shape)
		}
		if _, seen := byModule[mod]; !seen {
			order = append(order, mod)
		}
		byModule[mod] = append(byModule[mod], pair{p, t})
	}
	out := map[string]map[string]tensor.Tensor{}
	for _, mod := range order {
		var bs, ts []layer.Param
		for _, pr := range byModule[mod] {
			bs, ts = append(bs, pr.b), append(ts, pr.t)
		}
		releaseBase, err := filling(opts.BaseFiller, bs...)
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", mod, err)
		}
		releaseTuned, err := filling(opts.TunedFiller, ts...)
		if err != nil {
			releaseBase()
			return nil, fmt.Errorf("module %s: %w", mod, err)
		}
		changed := false
		for _, pr := range byModule[mod] {
			changed = changed || !equal(ops.Data(pr.b.Param), ops.Data(pr.t.Param))
		}
		if changed {
			out[mod] = map[string]tensor.Tensor{}
			for _, pr := range byModule[mod] {
				out[mod][pr.t.Path] = f32Tensor(ops.Data(pr.t.Param), pr.t.Shape)
			}
		}
		releaseTuned()
		releaseBase()
	}
	return out, nil
}

func f32Tensor(v []float32, shape []int) tensor.Tensor {
	data, _ := tensor.FromFloat32(tensor.F32, v)
	return tensor.Tensor{DType: tensor.F32, Shape: append([]int(nil), shape...), Data: data}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
