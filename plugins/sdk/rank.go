package sdk

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/surgeon-ml/surgeon/plugins/rpc"
)

// Rank surgery types, shared with the host.
type (
	// Tensor is a tensor's shape and float32 values, row-major.
	Tensor = rpc.Tensor
	// RankSelection says how to choose a module's new rank.
	RankSelection = rpc.RankSelection
	// RankResult is a module after rank surgery.
	RankResult = rpc.RankResult
)

// Resizer is implemented by adapters that offer rank surgery on trained
// modules (surgeon resize, and merge --method svd): given one module's
// parameters by name, return them at the rank sel chooses with the
// module's effective update kept as close as the new rank allows, the new
// configuration (r, lora_alpha...) and the retained energy. The host
// detects it by type assertion and advertises the "resize" capability.
type Resizer interface {
	Resize(l Layer, c Config, sel RankSelection, params map[string]Tensor) (*RankResult, error)
}

// Extractor is implemented by adapters that can be computed from the
// difference of a base and a fine-tuned weight, both [l.Out, l.In]
// row-major (surgeon extract). It advertises the "extract" capability.
type Extractor interface {
	Extract(l Layer, c Config, sel RankSelection, base, tuned []float32) (*RankResult, error)
}

// Concatenator is implemented by adapters whose trained modules combine
// exactly: given one module's configuration, weight and parameters in
// several adapters, return one module whose update is the weighted sum of
// theirs (surgeon merge --method cat and svd). It advertises the "concat"
// capability.
type Concatenator interface {
	Concat(l Layer, parts []Config, weights []float64, params []map[string]Tensor) (*RankResult, error)
}

// ConcatFunc implements Concatenator for a FuncAdapter.
type ConcatFunc func(l Layer, parts []Config, weights []float64, params []map[string]Tensor) (*RankResult, error)

// WithConcat adds exact combination of several adapters' modules.
func (a *FuncAdapter) WithConcat(f ConcatFunc) *FuncAdapter { a.concat = f; return a }

// Concat calls the concat function.
func (a *FuncAdapter) Concat(l Layer, parts []Config, weights []float64, params []map[string]Tensor) (*RankResult, error) {
	if a.concat == nil {
		return nil, fmt.Errorf("adapter %s offers no concat: %w", a.name, rpc.ErrUnsupported)
	}
	return a.concat(l, parts, weights, params)
}

// ResizeFunc implements Resizer for a FuncAdapter.
type ResizeFunc func(l Layer, c Config, sel RankSelection, params map[string]Tensor) (*RankResult, error)

// ExtractFunc implements Extractor for a FuncAdapter.
type ExtractFunc func(l Layer, c Config, sel RankSelection, base, tuned []float32) (*RankResult, error)

// WithResize adds rank surgery to the adapter.
func (a *FuncAdapter) WithResize(f ResizeFunc) *FuncAdapter { a.resize = f; return a }

// WithExtract adds extraction from weight differences to the adapter.
func (a *FuncAdapter) WithExtract(f ExtractFunc) *FuncAdapter { a.extract = f; return a }

// Resize calls the resize function.
func (a *FuncAdapter) Resize(l Layer, c Config, sel RankSelection, params map[string]Tensor) (*RankResult, error) {
	if a.resize == nil {
		return nil, fmt.Errorf("adapter %s offers no resize: %w", a.name, rpc.ErrUnsupported)
	}
	return a.resize(l, c, sel, params)
}

// Extract calls the extract function.
func (a *FuncAdapter) Extract(l Layer, c Config, sel RankSelection, base, tuned []float32) (*RankResult, error) {
	if a.extract == nil {
		return nil, fmt.Errorf("adapter %s offers no extract: %w", a.name, rpc.ErrUnsupported)
	}
	return a.extract(l, c, sel, base, tuned)
}

// offers reports the optional services a FuncAdapter was given.
func (a *FuncAdapter) offers(capability string) bool {
	switch capability {
	case rpc.CapResize:
		return a.resize != nil
	case rpc.CapExtract:
		return a.extract != nil
	case rpc.CapConcat:
		return a.concat != nil
	}
	return false
}

// capabilities returns the optional services an adapter offers.
func capabilities(a Adapter) []string {
	fa, isFunc := a.(*FuncAdapter)
	var out []string
	if _, ok := a.(Resizer); ok && (!isFunc || fa.offers(rpc.CapResize)) {
		out = append(out, rpc.CapResize)
	}
	if _, ok := a.(Extractor); ok && (!isFunc || fa.offers(rpc.CapExtract)) {
		out = append(out, rpc.CapExtract)
	}
	if _, ok := a.(Concatenator); ok && (!isFunc || fa.offers(rpc.CapConcat)) {
		out = append(out, rpc.CapConcat)
	}
	return out
}

func (s *server) rankAdapter(req rpc.RankRequest, capability string) (Adapter, Config, error) {
	a, c, err := s.adapter(req.Adapter, req.Config)
	if err != nil {
		return nil, Config{}, err
	}
	for _, x := range capabilities(a) {
		if x == capability {
			if capability == rpc.CapConcat {
				return a, c, nil
			}
			if err := req.Select.Validate(); err != nil {
				return nil, Config{}, fmt.Errorf("adapter %s, module %s: %w", req.Adapter, req.Layer.Path, err)
			}
			return a, c, nil
		}
	}
	return nil, Config{}, fmt.Errorf("plugin %s: adapter %s offers no %s: %w", s.name, req.Adapter, capability, rpc.ErrUnsupported)
}

// Resize serves rpc.RankSurgeon for adapters that implement Resizer.
func (s *server) Resize(_ context.Context, req rpc.RankRequest, params map[string]Tensor) (*RankResult, error) {
	a, c, err := s.rankAdapter(req, rpc.CapResize)
	if err != nil {
		return nil, err
	}
	r, err := a.(Resizer).Resize(req.Layer, c, req.Select, params)
	if err != nil {
		return nil, fmt.Errorf("adapter %s, module %s: resize: %w", req.Adapter, req.Layer.Path, err)
	}
	return r, nil
}

// Concat serves rpc.RankSurgeon for adapters that implement Concatenator:
// params are named rpc.PartName(i, name).
func (s *server) Concat(_ context.Context, req rpc.RankRequest, params map[string]Tensor) (*RankResult, error) {
	a, _, err := s.rankAdapter(req, rpc.CapConcat)
	if err != nil {
		return nil, err
	}
	parts := make([]Config, len(req.Parts))
	split := make([]map[string]Tensor, len(req.Parts))
	for i, pc := range req.Parts {
		if parts[i], err = NewConfig(a.Config(), pc); err != nil {
			return nil, fmt.Errorf("adapter %s, module %s, part %d: %w", req.Adapter, req.Layer.Path, i+1, err)
		}
		split[i] = map[string]Tensor{}
	}
	for name, t := range params {
		i, p, ok := strings.Cut(name, "/")
		k, err := strconv.Atoi(i)
		if !ok || err != nil || k < 0 || k >= len(parts) {
			return nil, fmt.Errorf("adapter %s, module %s: concat tensor %q is not named <part>/<name>", req.Adapter, req.Layer.Path, name)
		}
		split[k][p] = t
	}
	r, err := a.(Concatenator).Concat(req.Layer, parts, req.Weights, split)
	if err != nil {
		return nil, fmt.Errorf("adapter %s, module %s: concat: %w", req.Adapter, req.Layer.Path, err)
	}
	return r, nil
}

// Extract serves rpc.RankSurgeon for adapters that implement Extractor.
func (s *server) Extract(_ context.Context, req rpc.RankRequest, base, tuned []float32) (*RankResult, error) {
	a, c, err := s.rankAdapter(req, rpc.CapExtract)
	if err != nil {
		return nil, err
	}
	if n := req.Layer.In * req.Layer.Out; len(base) != n || len(tuned) != n {
		return nil, fmt.Errorf("adapter %s, module %s: extract: %d base and %d fine-tuned values for [%d,%d]",
			req.Adapter, req.Layer.Path, len(base), len(tuned), req.Layer.Out, req.Layer.In)
	}
	r, err := a.(Extractor).Extract(req.Layer, c, req.Select, base, tuned)
	if err != nil {
		return nil, fmt.Errorf("adapter %s, module %s: extract: %w", req.Adapter, req.Layer.Path, err)
	}
	return r, nil
}

// ChooseRank applies a rank selection to singular values s (descending,
// non-negative) and returns the new rank k, at most maxRank (and at least 1),
// and the retained energy sum(s[:k]^2)/sum(s^2) (1 for an all-zero s).
// Plugin authors implementing Resizer or Extractor use it so that every
// adapter reads --rank, --energy and kohya's dynamic methods the same way.
func ChooseRank(s []float64, sel RankSelection, maxRank int) (k int, energy float64, err error) {
	if err := sel.Validate(); err != nil {
		return 0, 0, err
	}
	maxRank = min(maxRank, len(s))
	if maxRank < 1 {
		return 0, 0, fmt.Errorf("no singular values to choose from")
	}
	var sq, sum float64
	for _, v := range s {
		sq += v * v
		sum += v
	}
	if sq == 0 || s[0] <= 0 {
		return 1, 1, nil
	}
	// tol absorbs the rounding of the cumulative sums, so that a fraction
	// of exactly 1 selects the numerical rank rather than one more.
	const tol = 1e-12
	firstAt := func(target float64, term func(float64) float64, total float64) int {
		var cum float64
		for i, v := range s {
			cum += term(v)
			if cum/total >= target-tol {
				return i + 1
			}
		}
		return len(s)
	}
	square := func(v float64) float64 { return v * v }
	switch sel.Method {
	case rpc.MethodRank:
		k = sel.Rank
	case rpc.MethodEnergy:
		k = firstAt(sel.Value, square, sq)
	case rpc.MethodSVFro:
		k = firstAt(sel.Value*sel.Value, square, sq)
	case rpc.MethodSVCumulative:
		k = firstAt(sel.Value, func(v float64) float64 { return v }, sum)
	case rpc.MethodSVRatio:
		floor := s[0] / sel.Value
		for _, v := range s {
			if v >= floor*(1-tol) {
				k++
			}
		}
	}
	if sel.Method != rpc.MethodRank && sel.Rank > 0 {
		k = min(k, sel.Rank)
	}
	k = max(1, min(k, maxRank))
	var kept float64
	for _, v := range s[:k] {
		kept += v * v
	}
	return k, math.Min(1, kept/sq), nil
}
