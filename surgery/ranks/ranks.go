// Package ranks is rank surgery on adapters: resizing trained PEFT
// adapters by SVD (as kohya's resize_lora.py does), extracting a LoRA from
// the difference of two checkpoints (as mergekit-extract-lora does), and
// combining several adapters (cat, svd, ties, dare, as mergekit does). The
// linear algebra on adapter parameters runs in the adapter plugins (through
// Surgeon); this package reads and writes PEFT folders and models around it.
package ranks

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

// Surgeon is what rank surgery needs from the adapter plugins (rank
// surgery, and their saved forms); a host Router provides it.
type Surgeon interface {
	attach.Store
	Resize(ctx context.Context, req rpc.RankRequest, params map[string]rpc.Tensor) (*rpc.RankResult, error)
	Extract(ctx context.Context, req rpc.RankRequest, base, tuned []float32) (*rpc.RankResult, error)
	Concat(ctx context.Context, req rpc.RankRequest, params map[string]rpc.Tensor) (*rpc.RankResult, error)
}

// Stat is one module's outcome.
type Stat struct {
	Module  string `json:"module"`
	Adapter string `json:"adapter"`
	// OldRank is the rank before (0 when extracted), NewRank after (0 when
	// skipped).
	OldRank int `json:"old_rank"`
	NewRank int `json:"new_rank"`
	// Energy is the retained fraction of the squared Frobenius norm of the
	// module's update.
	Energy float64 `json:"energy"`
	// SingularValues of the full update, descending; the first NewRank are kept.
	SingularValues []float64 `json:"singular_values,omitempty"`
	Skipped        bool      `json:"skipped,omitempty"`
	Note           string    `json:"note,omitempty"`
}

// Resize reduces the rank of every module of a PEFT adapter through the
// plugin providing its adapter type and returns the new adapter, saved in
// the plugin's form (for LoRA: the effective scale of each module is kept,
// and ranks and alphas that differ between modules go to rank_pattern and
// alpha_pattern). Fully trained tensors (modules_to_save) are kept as
// they are.
func Resize(ctx context.Context, s Surgeon, a *peft.Adapter, sel rpc.RankSelection) (*peft.Adapter, []Stat, error) {
	if err := sel.Validate(); err != nil {
		return nil, nil, err
	}
	targets, err := attach.Split(ctx, s, a)
	if err != nil {
		return nil, nil, err
	}
	var mods []attach.Module
	comp := ""
	var stats []Stat
	for _, t := range targets {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if comp != "" && t.Adapter != comp {
			return nil, nil, fmt.Errorf("modules of adapter types %s and %s in one folder", comp, t.Adapter)
		}
		comp = t.Adapter
		params := map[string]rpc.Tensor{}
		for name, tt := range a.Modules[t.Path] {
			params[name] = rpc.Tensor{Shape: tt.Shape, Data: t.Values[name]}
		}
		l := rpc.Layer{Path: t.Path, Kind: "linear", DType: "F32"}
		r, err := s.Resize(ctx, rpc.RankRequest{Adapter: t.Adapter, Layer: l, Config: t.Config, Select: sel}, params)
		if err != nil {
			return nil, nil, fmt.Errorf("module %s: %w", t.Path, err)
		}
		if r.Skipped {
			return nil, nil, fmt.Errorf("module %s: the plugin skipped it (%s); resize keeps every module", t.Path, r.Note)
		}
		mod, err := toTensors(r.Tensors)
		if err != nil {
			return nil, nil, fmt.Errorf("module %s: %w", t.Path, err)
		}
		mods = append(mods, attach.Module{Path: t.Path, Layer: l, Config: r.Config, Tensors: mod})
		stats = append(stats, Stat{Module: t.Path, Adapter: t.Adapter, OldRank: r.OldRank, NewRank: r.NewRank,
			Energy: r.Energy, SingularValues: r.SingularValues, Note: r.Note})
	}
	info, err := infoOf(a)
	if err != nil {
		return nil, nil, err
	}
	out, err := attach.Compose(ctx, s, comp, mods, info)
	if err != nil {
		return nil, nil, err
	}
	out.Metadata = withNote(a.Metadata, "surgeon.resize", sel.String())
	sortStats(stats)
	return out, stats, nil
}

// infoOf keeps an adapter's common keys and fully trained tensors for a
// composed replacement.
func infoOf(a *peft.Adapter) (attach.Info, error) {
	base, err := a.ConfigMap()
	if err != nil {
		return attach.Info{}, err
	}
	return attach.Info{TaskType: a.Config.TaskType, BaseModel: a.Config.BaseModel, Saved: a.Saved,
		ModulesToSave: a.Config.ModulesToSave, Metadata: a.Metadata, Base: base}, nil
}

// toTensors turns plugin tensors into F32 PEFT tensors.
func toTensors(ts map[string]rpc.Tensor) (map[string]tensor.Tensor, error) {
	out := map[string]tensor.Tensor{}
	for name, t := range ts {
		data, err := tensor.FromFloat32(tensor.F32, t.Data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = tensor.Tensor{Name: name, DType: tensor.F32, Shape: append([]int(nil), t.Shape...), Data: data}
	}
	return out, nil
}

// withNote copies metadata adding key = value.
func withNote(md map[string]string, key, value string) map[string]string {
	out := map[string]string{}
	for k, v := range md {
		out[k] = v
	}
	out[key] = value
	return out
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sortStats orders results by module path with numbers compared as numbers
// (layers.2 before layers.10).
func sortStats(stats []Stat) {
	sort.SliceStable(stats, func(i, j int) bool { return NaturalLess(stats[i].Module, stats[j].Module) })
}

// NaturalLess compares strings with runs of digits compared by value.
func NaturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
