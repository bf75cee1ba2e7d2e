// Package target selects the modules of a model that a recipe's [[targets]]
// groups adapt, and the modules trained fully (train.modules_to_save).
//
// Selection is strict: every pattern must match some module (else the
// error lists the nearest paths), layer ranges must exist in the model, and
// two groups may not claim the same module. A recipe that selects nothing
// by mistake fails before any training starts.
package target

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/surgeon-ml/surgeon/surgery/recipe"
)

// Module is a candidate module, built by the caller from layer.Modules.
type Module struct {
	// Path is the dotted Hugging Face path, e.g. "model.layers.0.self_attn.q_proj".
	Path string
	// Kind is "linear", "embedding", "norm", or "" for containers.
	Kind string
	// In and Out are the feature sizes (for an embedding: vocabulary and
	// dimension).
	In, Out int
}

// Selection is one module to adapt.
type Selection struct {
	Path string
	// Group is the name of the target group that selected the module.
	Group   string
	Adapter string
	// Config is the group's adapter configuration with the matching
	// overrides merged in; each selection owns its copy.
	Config  map[string]any
	In, Out int
}

// layerSegments are the path segments followed by a layer index.
var layerSegments = map[string]bool{"layers": true, "layer": true, "h": true, "blocks": true}

// LayerIndex returns the index of the layer a module belongs to: the
// number after a "layers", "layer", "h" or "blocks" segment
// ("model.layers.3.mlp.up_proj" is in layer 3). ok is false for modules
// outside the layer list, such as embeddings and heads.
func LayerIndex(path string) (int, bool) {
	segs := strings.Split(path, ".")
	for i := 0; i+1 < len(segs); i++ {
		if layerSegments[segs[i]] {
			if n, err := strconv.Atoi(segs[i+1]); err == nil && n >= 0 && isDigits(segs[i+1]) {
				return n, true
			}
		}
	}
	return 0, false
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// ParseRanges parses a list of layer indices and inclusive ranges such as
// "0-3,5" into sorted, distinct indices (0, 1, 2, 3, 5).
func ParseRanges(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("layer ranges %q: empty", s)
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("layer ranges %q: empty part", s)
		}
		if strings.HasPrefix(part, "-") {
			return nil, fmt.Errorf("layer ranges %q: %q: negative index", s, part)
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := index(lo)
		if err != nil {
			return nil, fmt.Errorf("layer ranges %q: %q: %w", s, part, err)
		}
		b := a
		if isRange {
			if strings.HasPrefix(strings.TrimSpace(hi), "-") {
				return nil, fmt.Errorf("layer ranges %q: %q: negative index", s, part)
			}
			if b, err = index(hi); err != nil {
				return nil, fmt.Errorf("layer ranges %q: %q: %w", s, part, err)
			}
			if b < a {
				return nil, fmt.Errorf("layer ranges %q: %q: range ends before it starts", s, part)
			}
		}
		for i := a; i <= b; i++ {
			seen[i] = true
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

func index(s string) (int, error) {
	s = strings.TrimSpace(s)
	if !isDigits(s) {
		return 0, fmt.Errorf("%q is not a layer index", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	return n, nil
}

// Select returns the modules the groups adapt, in module order. A module
// is selected by a group when its kind is one of the group's kinds, it
// matches one of the group's globs or its regex (every module of those
// kinds when both are empty), its layer is in the group's layer ranges (if
// any), and it matches none of the group's exclusions.
//
// Every glob, the regex, every exclusion and every override pattern must
// match at least one module; layer ranges must exist in the model; every
// group must select something; and no two groups may select the same
// module. All problems are reported together.
func Select(mods []Module, groups []recipe.TargetGroup) ([]Selection, error) {
	mods = unique(mods)
	nLayers := 0
	for _, m := range mods {
		if i, ok := LayerIndex(m.Path); ok {
			nLayers = max(nLayers, i+1)
		}
	}
	var errs []error
	owner := map[string]string{} // path -> group name
	var out []Selection
	for gi, g := range groups {
		name := g.Name
		if name == "" {
			name = fmt.Sprintf("targets.%d", gi)
		}
		sel, err := selectGroup(mods, g, name, nLayers)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, s := range sel {
			if other, ok := owner[s.Path]; ok {
				errs = append(errs, fmt.Errorf("module %s is selected by target groups %q and %q: exclude it from one of them", s.Path, other, name))
				continue
			}
			owner[s.Path] = name
			out = append(out, s)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	order := map[string]int{}
	for i, m := range mods {
		if _, ok := order[m.Path]; !ok {
			order[m.Path] = i
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return order[out[i].Path] < order[out[j].Path] })
	return out, nil
}

// unique drops repeated paths (layer.Modules lists a slot and its content
// under one path), keeping the first.
func unique(mods []Module) []Module {
	seen := make(map[string]bool, len(mods))
	out := make([]Module, 0, len(mods))
	for _, m := range mods {
		if !seen[m.Path] {
			seen[m.Path] = true
			out = append(out, m)
		}
	}
	return out
}

func selectGroup(mods []Module, g recipe.TargetGroup, name string, nLayers int) ([]Selection, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("target group %q: %s", name, fmt.Sprintf(format, args...))
	}
	kinds := g.Kinds
	if len(kinds) == 0 {
		kinds = []string{"linear"}
	}
	adapter := g.Adapter
	if adapter == "" {
		adapter = recipe.DefaultAdapter
	}
	var cands []Module
	for _, m := range mods {
		if m.Kind != "" && slices.Contains(kinds, m.Kind) {
			cands = append(cands, m)
		}
	}
	kindDesc := strings.Join(kinds, " or ")
	var errs []error
	check := func(what, pat string, matches func(string) bool, g *glob, pool []Module) {
		for _, m := range pool {
			if matches(m.Path) {
				return
			}
		}
		msg := fmt.Sprintf("%s %q matches no %s module", what, pat, kindDesc)
		if hint := partialHint(what, pat, pool); hint != "" {
			errs = append(errs, fail("%s; %s", msg, hint))
			return
		}
		overriding := strings.HasPrefix(what, "override")
		if overriding {
			msg = fmt.Sprintf("%s %q matches no module the group selects", what, pat)
		}
		var other []string
		for _, m := range mods {
			if overriding {
				break
			}
			if m.Kind != "" && !slices.Contains(kinds, m.Kind) && matches(m.Path) {
				other = append(other, fmt.Sprintf("%s (%s)", m.Path, m.Kind))
			}
		}
		if len(other) > 0 {
			msg += fmt.Sprintf(" (it matches %s: set kinds to include their kind)", strings.Join(first(other, 3), ", "))
		} else if near := nearest(g, pool, 3); len(near) > 0 {
			msg += "; nearest: " + strings.Join(near, ", ")
		}
		errs = append(errs, fail("%s", msg))
	}

	var globs []*glob
	for _, p := range g.Modules {
		gl, err := compileGlob(p)
		if err != nil {
			errs = append(errs, fail("modules: %v", err))
			continue
		}
		globs = append(globs, gl)
		check("pattern", p, gl.match, gl, cands)
	}
	var re *regexp.Regexp
	if g.Regex != "" {
		var err error
		if re, err = regexp.Compile("^(?:" + g.Regex + ")$"); err != nil {
			errs = append(errs, fail("regex %q: %v", g.Regex, err))
		} else {
			check("regex", g.Regex, re.MatchString, regexGlob(g.Regex), cands)
		}
	}
	var layers map[int]bool
	if g.Layers != "" {
		idx, err := ParseRanges(g.Layers)
		switch {
		case err != nil:
			errs = append(errs, fail("%v", err))
		case nLayers == 0:
			errs = append(errs, fail("layers %q: the model has no numbered layers", g.Layers))
		case idx[len(idx)-1] >= nLayers:
			errs = append(errs, fail("layers %q: layer %d is past the last layer (the model has %d layers, 0-%d)", g.Layers, idx[len(idx)-1], nLayers, nLayers-1))
		default:
			layers = map[int]bool{}
			for _, i := range idx {
				layers[i] = true
			}
		}
	}
	var excl []*glob
	for _, p := range g.Exclude {
		gl, err := compileGlob(p)
		if err != nil {
			errs = append(errs, fail("exclude: %v", err))
			continue
		}
		excl = append(excl, gl)
		check("exclude pattern", p, gl.match, gl, cands)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	var picked []Module
	for _, m := range cands {
		ok := len(globs) == 0 && re == nil
		for _, gl := range globs {
			ok = ok || gl.match(m.Path)
		}
		ok = ok || (re != nil && re.MatchString(m.Path))
		if ok && layers != nil {
			i, in := LayerIndex(m.Path)
			ok = in && layers[i]
		}
		for _, gl := range excl {
			ok = ok && !gl.match(m.Path)
		}
		if ok {
			picked = append(picked, m)
		}
	}
	if len(picked) == 0 {
		return nil, fail("selects no module: its layers and exclusions remove every match")
	}

	var ovs []*glob
	for i, o := range g.Overrides {
		gl, err := compileGlob(o.Pattern)
		if err != nil {
			errs = append(errs, fail("overrides.%d: %v", i, err))
			continue
		}
		ovs = append(ovs, gl)
		check(fmt.Sprintf("override %d pattern", i), o.Pattern, gl.match, gl, picked)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := make([]Selection, len(picked))
	for i, m := range picked {
		cfg := merge(nil, g.Config)
		for j, gl := range ovs {
			if gl.match(m.Path) {
				cfg = merge(cfg, g.Overrides[j].Config)
			}
		}
		out[i] = Selection{Path: m.Path, Group: name, Adapter: adapter, Config: cfg, In: m.In, Out: m.Out}
	}
	return out, nil
}

// partialHint explains a pattern that matches only part of some path: a
// regex must match a whole path, and so must a glob with a dot.
func partialHint(what, pat string, pool []Module) string {
	var try string
	var partial func(string) bool
	switch {
	case what == "regex":
		re, err := regexp.Compile(pat)
		if err != nil {
			return ""
		}
		partial, try = re.MatchString, ".*"+pat
	case strings.Contains(pat, ".") && !strings.HasPrefix(pat, "**."):
		g, err := compileGlob("**." + pat)
		if err != nil {
			return ""
		}
		partial, try = g.match, "**."+pat
	default:
		return ""
	}
	for _, m := range pool {
		if partial(m.Path) {
			return fmt.Sprintf("it matches part of %s, but must match the whole path: try %q", m.Path, try)
		}
	}
	return ""
}

// merge returns dst with src deep-merged over it: nested tables merge,
// everything else is replaced. Values from src are copied.
func merge(dst, src map[string]any) map[string]any {
	if dst == nil {
		dst = map[string]any{}
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			dm, _ := dst[k].(map[string]any)
			dst[k] = merge(dm, sm)
			continue
		}
		dst[k] = clone(v)
	}
	return dst
}

func clone(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return merge(nil, v)
	case []any:
		c := make([]any, len(v))
		for i, e := range v {
			c[i] = clone(e)
		}
		return c
	}
	return v
}

// nearest returns up to n paths of pool closest to the glob, closest first.
func nearest(g *glob, pool []Module, n int) []string {
	type scored struct {
		path string
		d, i int
	}
	var s []scored
	for i, m := range pool {
		if m.Path != "" {
			s = append(s, scored{m.Path, g.distance(m.Path), i})
		}
	}
	sort.SliceStable(s, func(a, b int) bool { return s[a].d < s[b].d })
	var out []string
	for _, x := range s {
		if len(out) == n {
			break
		}
		out = append(out, x.path)
	}
	return out
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "...")
	}
	return s
}

// FullyTrained returns the modules matched by the patterns of
// train.modules_to_save (globs as in TargetGroup.Modules, of any kind), in
// module order, leaving out modules inside another returned module. Every
// pattern must match at least one module.
func FullyTrained(mods []Module, patterns []string) ([]string, error) {
	mods = unique(mods)
	hit := map[string]bool{}
	var errs []error
	for _, p := range patterns {
		g, err := compileGlob(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n := 0
		for _, m := range mods {
			if g.match(m.Path) {
				hit[m.Path] = true
				n++
			}
		}
		if n == 0 {
			msg := fmt.Sprintf("pattern %q matches no module", p)
			if near := nearest(g, mods, 3); len(near) > 0 {
				msg += "; nearest: " + strings.Join(near, ", ")
			}
			errs = append(errs, errors.New(msg))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var out []string
	for _, m := range mods {
		if !hit[m.Path] || insideAny(m.Path, hit) {
			continue
		}
		out = append(out, m.Path)
	}
	return out, nil
}

func insideAny(path string, set map[string]bool) bool {
	for i := strings.LastIndexByte(path, '.'); i > 0; i = strings.LastIndexByte(path[:i], '.') {
		if set[path[:i]] {
			return true
		}
	}
	return false
}
