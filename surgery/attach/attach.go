// Package attach swaps adapted layers into a model's linear slots, merges
// them back into plain linear layers, unloads them, and turns PEFT adapter
// folders into attachments.
package attach

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/internal/textdist"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/adapter"
)

// Planner is what attaching needs from adapter plugins; an rpc.Interface
// (in-process) and a host manager both provide it.
type Planner interface {
	Plan(ctx context.Context, req rpc.PlanRequest) (*rpc.Plan, error)
	Init(ctx context.Context, req rpc.InitRequest, base []float32) (map[string][]float32, error)
}

// Target is one module to adapt.
type Target struct {
	// Path is the module path, e.g. "model.layers.0.self_attn.q_proj".
	Path    string
	Adapter string
	Config  map[string]any
	// Values, when set, give parameter values (a saved adapter); otherwise
	// parameters are initialised by the plan.
	Values map[string][]float32
}

// Slots returns the model's linear slots by path.
func Slots(m nn.Model) map[string]*layer.Slot {
	out := map[string]*layer.Slot{}
	for _, mod := range layer.Modules(m) {
		if s, ok := mod.Model.(*layer.Slot); ok {
			out[mod.Path] = s
		}
	}
	return out
}

// Attach plans and attaches every target, returning the adapted layers in
// target order. On error nothing is attached.
func Attach(ctx context.Context, m nn.Model, p Planner, targets []Target, seed uint64) ([]*adapter.Adapted, error) {
	slots := Slots(m)
	type pending struct {
		slot *layer.Slot
		a    *adapter.Adapted
	}
	var done []pending
	seen := map[string]bool{}
	for _, t := range targets {
		if seen[t.Path] {
			return nil, fmt.Errorf("module %s targeted twice", t.Path)
		}
		seen[t.Path] = true
		slot, ok := slots[t.Path]
		if !ok {
			return nil, fmt.Errorf("module %s: no such linear layer in the model%s", t.Path, nearest(t.Path, slots))
		}
		base := slot.Base()
		if base == nil {
			return nil, fmt.Errorf("module %s already holds an adapter", t.Path)
		}
		l := rpc.Layer{Path: t.Path, Kind: base.HFKind(), In: base.In(), Out: base.Out(), HasBias: base.Bias != nil, DType: "F32"}
		req := rpc.PlanRequest{Adapter: t.Adapter, Layer: l, Config: t.Config}
		plan, err := p.Plan(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", t.Path, err)
		}
		values := t.Values
		if plan.NeedsInit && values == nil {
			if err := base.Materialize(); err != nil { // the plugin reads the values
				return nil, fmt.Errorf("module %s: %w", t.Path, err)
			}
			values, err = p.Init(ctx, rpc.InitRequest{PlanRequest: req, Seed: seed}, ops.Data(base.Weight))
			if err != nil {
				return nil, fmt.Errorf("module %s: %w", t.Path, err)
			}
		}
		a, err := adapter.New(base, t.Path, t.Adapter, t.Config, plan, values, seed)
		if err != nil {
			return nil, err
		}
		done = append(done, pending{slot, a})
	}
	out := make([]*adapter.Adapted, len(done))
	for i, d := range done {
		d.slot.Layer = d.a
		out[i] = d.a
	}
	return out, nil
}

// nearest suggests the closest module paths for an error message.
func nearest(path string, slots map[string]*layer.Slot) string {
	paths := make([]string, 0, len(slots))
	for p := range slots {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	names := textdist.Nearest(path, paths, 3)
	if len(names) == 0 {
		return ""
	}
	return " (nearest: " + strings.Join(names, ", ") + ")"
}

// Adapted returns the adapted layers of a model by path.
func Adapted(m nn.Model) map[string]*adapter.Adapted {
	out := map[string]*adapter.Adapted{}
	for p, s := range Slots(m) {
		if a, ok := s.Layer.(*adapter.Adapted); ok {
			out[p] = a
		}
	}
	return out
}

// Merge folds every adapter into its base weights, leaving plain linear
// layers.
func Merge(m nn.Model) error {
	for p, s := range Slots(m) {
		a, ok := s.Layer.(*adapter.Adapted)
		if !ok {
			continue
		}
		l, err := a.Merged()
		if err != nil {
			return fmt.Errorf("module %s: %w", p, err)
		}
		s.Layer = l
	}
	return nil
}

// Unload removes every adapter, restoring the original linear layers.
func Unload(m nn.Model) {
	for _, s := range Slots(m) {
		if a, ok := s.Layer.(*adapter.Adapted); ok {
			s.Layer = a.Base
		}
	}
}

// ApplySaved copies a PEFT adapter's fully trained tensors
// (modules_to_save, biases) into the model, scaled by weight relative to the
// current values: p = p + weight*(saved - p), exactly saved for weight 1.
func ApplySaved(m nn.Model, saved map[string]tensor.Tensor, weight float64) error {
	params := map[string]layer.Param{}
	for _, p := range layer.Params(m) {
		params[p.Path] = p
	}
	stored := layer.Storables(m)
	for name, t := range saved {
		p, ok := savedParam(params, name)
		if !ok {
			return fmt.Errorf("saved tensor %s: no such parameter in the model", name)
		}
		v, err := savedValues(p, name, t)
		if err != nil {
			return err
		}
		// A weight still where it is stored (weights "stored") is read in
		// first: the blend starts from its values, and the layer must
		// compute with the new ones, not the file's.
		if l := stored[strings.TrimSuffix(p.Path, ".weight")]; l != nil && l.WeightParam() == p.Param {
			if err := l.Materialize(); err != nil {
				return fmt.Errorf("saved tensor %s: %w", name, err)
			}
		}
		blend(ops.Data(p.Param), v, weight)
	}
	return nil
}

// savedParam finds the parameter a saved tensor replaces: by its name, a
// modules_to_save copy, a trained bias of an adapted layer (PEFT
// bias="all" or "lora_only"), or a base_layer name applied to a merged
// (plain) layer.
func savedParam(params map[string]layer.Param, name string) (layer.Param, bool) {
	p, ok := params[name]
	if !ok {
		p, ok = params[strings.Replace(name, ".modules_to_save.", ".", 1)]
	}
	if !ok {
		if i := strings.LastIndexByte(name, '.'); i > 0 {
			p, ok = params[name[:i]+".base_layer"+name[i:]]
		}
	}
	if !ok {
		p, ok = params[strings.Replace(name, ".base_layer.", ".", 1)]
	}
	return p, ok
}

// savedValues decodes a saved tensor in p's own layout.
func savedValues(p layer.Param, name string, t tensor.Tensor) ([]float32, error) {
	v, err := t.Float32()
	if err != nil {
		return nil, fmt.Errorf("saved tensor %s: %w", name, err)
	}
	if len(v) != p.Param.Size() {
		return nil, fmt.Errorf("saved tensor %s: shape %v, model has %v", name, t.Shape, p.Shape)
	}
	return p.FromStored(v), nil
}

// ForAdapter returns the model a PEFT adapter expects: a causal LM becomes
// a sequence classifier when the adapter is SEQ_CLS and carries a new head
// (the weight of the family's head module; its row count gives the number
// of labels).
func ForAdapter(m model.Model, a *peft.Adapter) model.Model {
	c, ok := m.(model.Classifier)
	if !ok || m.Task() != model.CausalLM || !strings.EqualFold(a.Config.TaskType, "SEQ_CLS") {
		return m
	}
	heads := c.HeadModules()
	if len(heads) == 0 {
		return m
	}
	head, ok := a.Saved[heads[0]+".weight"]
	if !ok {
		head, ok = a.Saved[heads[0]+".modules_to_save.default.weight"]
	}
	if !ok || len(head.Shape) != 2 {
		return m
	}
	labels := make([]string, head.Shape[0])
	for i := range labels {
		labels[i] = fmt.Sprintf("LABEL_%d", i)
	}
	cm, err := c.ClassifierFor(labels, 0)
	if err != nil {
		return m
	}
	return cm
}
