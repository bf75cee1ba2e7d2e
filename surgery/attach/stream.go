package attach

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/surgery/adapter"
)

// ErrNeedsMemory is returned by a streaming merge that cannot stream: an
// adapter's merge adds a tensor the base checkpoint lacks (a bias on a
// layer without one), so the output's tensor list is not known before
// the merge. Merge the loaded model instead.
var ErrNeedsMemory = errors.New("the merge adds a tensor the checkpoint lacks and cannot be streamed")

// Step is one adapter of a streaming merge.
type Step struct {
	// Adapter is the PEFT adapter; its Saved tensors are applied too.
	Adapter *peft.Adapter
	// Targets are its modules (Read or Split).
	Targets []Target
	// Weight scales the adapter's update: base + Weight*(merged - base).
	Weight float64
}

// streamMerge is the editor of StreamMerge.
type streamMerge struct {
	sk      *checkpoint.Skeleton
	params  map[string]layer.Param
	slots   map[string]*layer.Slot
	steps   []Step
	adapted []map[string]*adapter.Adapted // per step, by module
	saved   []map[string]savedTensor      // per step, by parameter path
	pending map[string][]float32          // the other half of a merged module
	modules map[string]bool               // modules some step adapts
}

type savedTensor struct {
	name string
	t    tensor.Tensor
}

// StreamMerge prepares a merge of steps, in order, into the skeleton's
// weights as it streams (checkpoint.Skeleton.Stream): module by module,
// each adapter's update scaled by its weight, then its saved tensors,
// which is what attaching, merging (with the weight) and ApplySaved do on
// a loaded model, one module in memory at a time. A sequence-classification
// adapter with a new head turns the skeleton's model into a classifier
// first (ForAdapter). Every target and saved tensor is checked against the
// model before anything is written.
func StreamMerge(ctx context.Context, sk *checkpoint.Skeleton, p Planner, steps []Step) (checkpoint.Editor, error) {
	e := &streamMerge{sk: sk, steps: steps, pending: map[string][]float32{}, modules: map[string]bool{}}
	for _, st := range steps {
		sk.Model = ForAdapter(sk.Model, st.Adapter)
	}
	e.params = map[string]layer.Param{}
	for _, q := range layer.Params(sk.Model) {
		e.params[q.Path] = q
	}
	e.slots = Slots(sk.Model)
	for i, st := range steps {
		as, err := Attach(ctx, sk.Model, p, st.Targets, 0)
		if err != nil {
			return nil, fmt.Errorf("adapter %d: %w", i+1, err)
		}
		Unload(sk.Model)
		byPath := map[string]*adapter.Adapted{}
		for j, a := range as {
			path := st.Targets[j].Path
			byPath[path] = a
			e.modules[path] = true
			if e.hasOutput(a, "bias") && a.Base.Bias == nil {
				return nil, fmt.Errorf("module %s: %w", path, ErrNeedsMemory)
			}
		}
		e.adapted = append(e.adapted, byPath)
		saved := map[string]savedTensor{}
		for name, t := range st.Adapter.Saved {
			q, ok := savedParam(e.params, name)
			if !ok {
				return nil, fmt.Errorf("adapter %d: saved tensor %s: no such parameter in the model", i+1, name)
			}
			if tensor.NumElements(t.Shape) != q.Param.Size() {
				return nil, fmt.Errorf("adapter %d: saved tensor %s: shape %v, model has %v", i+1, name, t.Shape, q.Shape)
			}
			saved[q.Path] = savedTensor{name, t}
		}
		e.saved = append(e.saved, saved)
	}
	return e, nil
}

// hasOutput reports whether the adapter's merge program yields name.
func (e *streamMerge) hasOutput(a *adapter.Adapted, name string) bool {
	if a.Mrg == nil {
		return false
	}
	_, ok := a.Mrg.Outputs[name]
	return ok
}

// Edit merges the module of a weight or bias, or applies saved tensors.
func (e *streamMerge) Edit(ctx context.Context, p layer.Param, stored func() ([]float32, error)) ([]float32, error) {
	if v, ok := e.pending[p.Path]; ok {
		delete(e.pending, p.Path)
		return v, nil
	}
	if i := strings.LastIndexByte(p.Path, '.'); i > 0 && e.modules[p.Path[:i]] {
		return e.module(p.Path[:i], p.Path)
	}
	var v []float32
	for i := range e.steps {
		s, ok := e.saved[i][p.Path]
		if !ok {
			continue
		}
		if v == nil {
			base, err := stored()
			if err != nil {
				return nil, err
			}
			v = p.FromStored(base)
		}
		if err := e.applySaved(v, p, i, s); err != nil {
			return nil, err
		}
	}
	if v == nil {
		return nil, nil
	}
	return storedOf(p, v), nil
}

// module merges every step into one module and returns the values of
// want (its weight or bias); the other waits in pending.
func (e *streamMerge) module(mod, want string) ([]float32, error) {
	base := e.slots[mod].Base()
	wp, ok := e.params[mod+".weight"]
	if !ok || base == nil {
		return nil, fmt.Errorf("module %s: no plain linear weight to merge into", mod)
	}
	bp, hasBias := e.params[mod+".bias"]
	if err := e.sk.Fill(wp); err != nil {
		return nil, err
	}
	defer e.sk.Release(wp)
	if hasBias {
		if err := e.sk.Fill(bp); err != nil {
			return nil, err
		}
	}
	for i, st := range e.steps {
		if a := e.adapted[i][mod]; a != nil {
			l, err := a.Merged()
			if err != nil {
				return nil, fmt.Errorf("module %s: %w", mod, err)
			}
			if l.Bias != nil && base.Bias == nil {
				return nil, fmt.Errorf("module %s: %w", mod, ErrNeedsMemory)
			}
			if v, ok := e.whole(i, st, l, wp, bp, hasBias, want); ok {
				return v, nil
			}
			blend(ops.Data(base.Weight), ops.Data(l.Weight), st.Weight)
			if l.Bias != nil {
				blend(ops.Data(base.Bias), ops.Data(l.Bias), st.Weight)
			}
		}
		for _, q := range []layer.Param{wp, bp} {
			if s, ok := e.saved[i][q.Path]; ok && q.Param != nil {
				if err := e.applySaved(ops.Data(q.Param), q, i, s); err != nil {
					return nil, err
				}
			}
		}
	}
	out := map[string][]float32{wp.Path: storedCopy(wp)}
	if hasBias {
		out[bp.Path] = storedCopy(bp)
	}
	v, ok := out[want]
	if !ok {
		return nil, fmt.Errorf("module %s: no parameter %s", mod, want)
	}
	delete(out, want)
	for k, x := range out {
		e.pending[k] = x
	}
	return v, nil
}

// whole returns, when step i is the only one, with weight 1, and saves no
// tensor of the module, the merged layer l's own values for want (the
// other parameter waits in pending): they are the module's result as they
// are, so the base need not take a copy of them and give another.
func (e *streamMerge) whole(i int, st Step, l *layer.Linear, wp, bp layer.Param, hasBias bool, want string) ([]float32, bool) {
	if len(e.steps) != 1 || st.Weight != 1 || wp.Transposed {
		return nil, false
	}
	if _, ok := e.saved[i][wp.Path]; ok {
		return nil, false
	}
	vals := map[string][]float32{wp.Path: ops.Data(l.Weight)}
	if hasBias {
		if _, ok := e.saved[i][bp.Path]; ok || bp.Transposed {
			return nil, false
		}
		if l.Bias != nil {
			vals[bp.Path] = ops.Data(l.Bias)
		} else {
			vals[bp.Path] = storedCopy(bp)
		}
	}
	v, ok := vals[want]
	if !ok {
		return nil, false
	}
	for k, x := range vals {
		if k != want {
			e.pending[k] = x
		}
	}
	return v, true
}

// applySaved applies step i's saved tensor to v, p's values in its own
// layout: v = v + w*(saved - v).
func (e *streamMerge) applySaved(v []float32, p layer.Param, i int, s savedTensor) error {
	sv, err := savedValues(p, s.name, s.t)
	if err != nil {
		return err
	}
	blend(v, sv, e.steps[i].Weight)
	return nil
}

// blend sets dst = dst + w*(src - dst).
func blend(dst, src []float32, w float64) {
	if w == 1 {
		copy(dst, src)
		return
	}
	for i := range dst {
		dst[i] += float32(w) * (src[i] - dst[i])
	}
}

// storedOf returns v, p's values in its own layout, in the stored layout.
func storedOf(p layer.Param, v []float32) []float32 {
	if !p.Transposed {
		return v
	}
	own := nn.NewParam(ops.New(p.Shape[1], p.Shape[0], v))
	return layer.Param{Param: own, Shape: p.Shape, Transposed: true}.Stored()
}

// storedCopy returns a copy of p's values in the stored layout.
func storedCopy(p layer.Param) []float32 {
	if p.Transposed {
		return p.Stored()
	}
	return append([]float32(nil), ops.Data(p.Param)...)
}
