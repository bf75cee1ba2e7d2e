package target

import (
	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/layer"
)

// Modules lists the candidate modules of m, in model order, each path once
// (layer.Modules reports a slot and its content under the same path). In
// and Out are filled for linear layers (and adapted ones exposing their
// sizes) and for embeddings (vocabulary, dimension).
func Modules(m nn.Model) []Module {
	var out []Module
	seen := map[string]bool{}
	for _, mod := range layer.Modules(m) {
		if seen[mod.Path] {
			continue
		}
		seen[mod.Path] = true
		tm := Module{Path: mod.Path, Kind: mod.Kind()}
		v := any(mod.Model)
		if s, ok := v.(*layer.Slot); ok {
			v = s.Layer
		}
		switch l := v.(type) {
		case interface {
			In() int
			Out() int
		}:
			tm.In, tm.Out = l.In(), l.Out()
		case *layer.Embedding:
			if sh := l.Weight.Shape(); len(sh) == 2 {
				tm.In, tm.Out = sh[0], sh[1]
			}
		}
		out = append(out, tm)
	}
	return out
}
