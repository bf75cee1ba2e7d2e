// Package sweep expands a recipe's [sweep] table into points (one recipe
// run each: a rank, an alpha, a seed, a baseline...), runs them as separate
// `surgeon apply` processes several at a time with a resumable manifest,
// emits the same points as a Kubernetes Indexed Job or a Slurm job array,
// and turns the points' report.json files into one table and plots.
//
// recipes/README.md documents the [sweep] table.
package sweep

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/surgeon-ml/surgeon/surgery/recipe"
)

// Modes of combining axes (sweep.mode).
const (
	// ModeGrid runs every combination of the axes' values.
	ModeGrid = "grid"
	// ModeZip runs the i-th value of every axis together; the axes must
	// have the same number of values.
	ModeZip = "zip"
)

// Aliases are the short names expressions use for common recipe keys.
// An axis is also known by its key's last part (an adapter config key
// such as targets.0.config.rank is known as rank); surgeon itself knows no adapter's
// keys.
var Aliases = map[string]string{
	"lr":   "train.lr",
	"seed": "train.seed",
}

// seedKey is the recipe key seeds set.
const seedKey = "train.seed"

// Spec is a parsed [sweep] table.
type Spec struct {
	// Mode is ModeGrid or ModeZip.
	Mode string
	// Seeds are the values of train.seed every point runs with (crossed
	// with the other axes); nil when the sweep does not vary the seed.
	Seeds []int64
	// Axes are the swept keys in file order.
	Axes []Axis
	// Baselines are extra points in file order.
	Baselines []Baseline
	// Sets are overrides applied to every point, baselines included.
	Sets []string
	// Dir is the sweep folder, relative to the recipe ("" for the default
	// runs/<recipe name>-sweep).
	Dir string
}

// Axis is one swept recipe key.
type Axis struct {
	// Key is the dotted recipe key, as in --set ("targets.0.config.r").
	Key string
	// Name is the short name used in point names and expressions (the key's last part).
	Name string
	// Values are the values the key takes; nil for a derived axis.
	Values []any
	// Expr, for a derived axis, computes its value from other axes
	// ("2*r").
	Expr string

	expr expr
}

// Derived reports whether the axis is computed from other axes.
func (a *Axis) Derived() bool { return a.expr != nil }

// Baseline is an extra point added by name, such as "head" or "full".
type Baseline struct {
	// Name is the point's name.
	Name string
	// Recipe is the recipe file to run, relative to the sweep recipe; ""
	// runs the sweep recipe itself.
	Recipe string
	// Sets are overrides applied to this baseline after the sweep's.
	Sets []string
	// Seeds, when SeedsSet, replace the sweep's seeds for this baseline
	// (empty: one run with the recipe's own seed).
	Seeds    []int64
	SeedsSet bool
}

var baselineName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ParseSpec checks and parses the [sweep] table of the recipe file path.
// Keys of sweep.axes and sweep.baselines keep their order in the file
// (re-read from path); keys the file does not have (added with --set)
// come last, sorted.
func ParseSpec(path string, table map[string]any) (*Spec, error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &recipe.Error{File: path, Key: key, Msg: key + ": " + fmt.Sprintf(format, args...)})
	}
	order := fileOrder(path)
	s := &Spec{Mode: ModeGrid}
	for _, k := range sortedKeys(table) {
		v := table[k]
		key := "sweep." + k
		switch k {
		case "mode":
			m, ok := v.(string)
			if !ok || (m != ModeGrid && m != ModeZip) {
				bad(key, "want %q or %q, got %s", ModeGrid, ModeZip, show(v))
				continue
			}
			s.Mode = m
		case "seeds":
			seeds, err := parseSeeds(v)
			if err != nil {
				bad(key, "%v", err)
				continue
			}
			s.Seeds = seeds
		case "sets":
			sets, err := stringList(v)
			if err != nil {
				bad(key, "%v", err)
				continue
			}
			s.Sets = sets
		case "dir":
			d, ok := v.(string)
			if !ok || d == "" {
				bad(key, "want a folder name, got %s", show(v))
				continue
			}
			s.Dir = d
		case "axes":
			t, ok := v.(map[string]any)
			if !ok {
				bad(key, "want a table of recipe keys, got %s", show(v))
				continue
			}
			for _, name := range ordered(t, order["axes"]) {
				a, err := parseAxis(name, t[name])
				if err != nil {
					bad(fmt.Sprintf("sweep.axes.%q", name), "%v", err)
					continue
				}
				s.Axes = append(s.Axes, a)
			}
		case "baselines":
			t, ok := v.(map[string]any)
			if !ok {
				bad(key, "want a table of named baselines, got %s", show(v))
				continue
			}
			for _, name := range ordered(t, order["baselines"]) {
				b, err := parseBaseline(name, t[name])
				if err != nil {
					bad("sweep.baselines."+name, "%v", err)
					continue
				}
				s.Baselines = append(s.Baselines, b)
			}
		default:
			bad(key, "unknown key (want mode, seeds, axes, baselines, sets or dir)")
		}
	}
	if err := s.check(); err != nil {
		errs = append(errs, &recipe.Error{File: path, Key: "sweep", Msg: err.Error()})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// check validates the axes together: names, the seed axis, zip lengths,
// expression references and cycles.
func (s *Spec) check() error {
	var problems []string
	names := map[string]string{}
	for i := range s.Axes {
		a := &s.Axes[i]
		if other, ok := names[a.Name]; ok {
			problems = append(problems, fmt.Sprintf("axes %q and %q have the same short name %q: give one a name = \"...\"", other, a.Key, a.Name))
		}
		names[a.Name] = a.Key
		if a.Key == seedKey {
			if s.Seeds != nil {
				problems = append(problems, fmt.Sprintf("axis %q and sweep.seeds both set the seed: keep one", a.Key))
				continue
			}
			if a.Derived() {
				problems = append(problems, fmt.Sprintf("axis %q: the seed cannot be an expression", a.Key))
				continue
			}
			for _, v := range a.Values {
				n, ok := v.(int64)
				if !ok {
					problems = append(problems, fmt.Sprintf("axis %q: seeds must be integers, got %s", a.Key, show(v)))
					break
				}
				s.Seeds = append(s.Seeds, n)
			}
		}
	}
	// The seed axis becomes sweep.seeds so that points differing only in
	// seed are grouped.
	s.Axes = removeAxis(s.Axes, seedKey)
	if s.Mode == ModeZip {
		n, same := -1, true
		var lens []string
		for _, a := range s.Axes {
			if a.Derived() {
				continue
			}
			lens = append(lens, fmt.Sprintf("%s has %d", a.Name, len(a.Values)))
			if n >= 0 && len(a.Values) != n {
				same = false
			}
			n = len(a.Values)
		}
		if !same {
			problems = append(problems, "mode = \"zip\" needs axes with the same number of values: "+strings.Join(lens, ", "))
		}
	}
	if _, err := s.derivedOrder(); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func removeAxis(axes []Axis, key string) []Axis {
	out := axes[:0]
	for _, a := range axes {
		if a.Key != key {
			out = append(out, a)
		}
	}
	return out
}

// axisFor returns the axis a name in an expression refers to: by short
// name, by key, or by alias.
func (s *Spec) axisFor(name string) *Axis {
	for i := range s.Axes {
		if s.Axes[i].Name == name || s.Axes[i].Key == name {
			return &s.Axes[i]
		}
	}
	if key, ok := Aliases[name]; ok {
		for i := range s.Axes {
			if s.Axes[i].Key == key {
				return &s.Axes[i]
			}
		}
	}
	return nil
}

// derivedOrder returns the derived axes in an order where each comes
// after the derived axes it refers to, or an error naming a cycle.
func (s *Spec) derivedOrder() ([]*Axis, error) {
	var order []*Axis
	state := map[*Axis]int{} // 1 visiting, 2 done
	var visit func(a *Axis, path []string) error
	visit = func(a *Axis, path []string) error {
		switch state[a] {
		case 1:
			return fmt.Errorf("expressions refer to each other: %s", strings.Join(append(path, a.Name), " -> "))
		case 2:
			return nil
		}
		state[a] = 1
		for _, n := range a.expr.names(nil) {
			if b := s.axisFor(n); b != nil && b.Derived() {
				if err := visit(b, append(path, a.Name)); err != nil {
					return err
				}
			}
		}
		state[a] = 2
		order = append(order, a)
		return nil
	}
	for i := range s.Axes {
		if a := &s.Axes[i]; a.Derived() {
			if err := visit(a, nil); err != nil {
				return nil, err
			}
		}
	}
	return order, nil
}

// parseAxis reads one entry of sweep.axes: a list of values, a range
// string, an expression string, or a table {values, expr, name}.
func parseAxis(key string, v any) (Axis, error) {
	a := Axis{Key: key, Name: shortName(key)}
	if strings.TrimSpace(key) == "" || strings.Contains(key, "=") {
		return a, fmt.Errorf("want a recipe key such as \"targets.0.config.r\"")
	}
	if key == "output.dir" {
		return a, fmt.Errorf("the sweep sets output.dir itself (one folder per point)")
	}
	if t, ok := v.(map[string]any); ok {
		for _, k := range sortedKeys(t) {
			switch k {
			case "name":
				n, ok := t[k].(string)
				if !ok || !baselineName.MatchString(n) || strings.ContainsAny(n, ".") {
					return a, fmt.Errorf("name: want a short name of letters, digits, '_' or '-', got %s", show(t[k]))
				}
				a.Name = n
			case "values", "expr":
			default:
				return a, fmt.Errorf("unknown key %q (want values, expr or name)", k)
			}
		}
		vals, hasVals := t["values"]
		ex, hasExpr := t["expr"]
		switch {
		case hasVals == hasExpr:
			return a, fmt.Errorf("want one of values or expr")
		case hasExpr:
			s, ok := ex.(string)
			if !ok {
				return a, fmt.Errorf("expr: want a string, got %s", show(ex))
			}
			e, err := parseExpr(s)
			if err != nil {
				return a, fmt.Errorf("bad expression %q: %v", s, err)
			}
			a.Expr, a.expr = s, e
			return a, nil
		}
		v = vals
	}
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			return a, fmt.Errorf("empty list of values")
		}
		for _, e := range x {
			if _, err := tomlValue(e); err != nil {
				return a, err
			}
		}
		a.Values = x
		return a, nil
	case []map[string]any:
		return a, fmt.Errorf("tables are not supported as values")
	case string:
		vals, rerr := parseRange(x)
		if rerr == nil {
			a.Values = vals
			return a, nil
		}
		e, eerr := parseExpr(x)
		if eerr != nil {
			if strings.IndexFunc(x, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }) < 0 {
				return a, fmt.Errorf("bad range %q: %v", x, rerr)
			}
			return a, fmt.Errorf("bad expression %q: %v", x, eerr)
		}
		if len(e.names(nil)) == 0 {
			return a, fmt.Errorf("bad range %q: %v", x, rerr)
		}
		a.Expr, a.expr = x, e
		return a, nil
	}
	return a, fmt.Errorf("want a list of values, a range string such as \"1,2,4..32\" or an expression such as \"2*r\", got %s", show(v))
}

// shortName is an axis's default name: its key's last part.
func shortName(key string) string {
	i := strings.LastIndexByte(key, '.')
	return key[i+1:]
}

func parseBaseline(name string, v any) (Baseline, error) {
	b := Baseline{Name: name}
	if !baselineName.MatchString(name) {
		return b, fmt.Errorf("a baseline name is letters, digits, '_', '-' or '.'")
	}
	t, ok := v.(map[string]any)
	if !ok {
		return b, fmt.Errorf("want a table such as { recipe = \"other.toml\" } or { sets = [\"train.mode=head\"] }, got %s", show(v))
	}
	for _, k := range sortedKeys(t) {
		switch k {
		case "recipe":
			r, ok := t[k].(string)
			if !ok || r == "" {
				return b, fmt.Errorf("recipe: want a recipe file, got %s", show(t[k]))
			}
			b.Recipe = r
		case "sets":
			sets, err := stringList(t[k])
			if err != nil {
				return b, fmt.Errorf("sets: %v", err)
			}
			b.Sets = sets
		case "seeds":
			seeds, err := parseSeeds(t[k])
			if err != nil {
				return b, fmt.Errorf("seeds: %v", err)
			}
			b.Seeds, b.SeedsSet = seeds, true
		default:
			return b, fmt.Errorf("unknown key %q (want recipe, sets or seeds)", k)
		}
	}
	if b.Recipe == "" && len(b.Sets) == 0 {
		return b, fmt.Errorf("want a recipe, sets, or both")
	}
	return b, nil
}

// parseSeeds reads a list of integers or a range string.
func parseSeeds(v any) ([]int64, error) {
	var vals []any
	switch x := v.(type) {
	case []any:
		vals = x
	case string:
		var err error
		if vals, err = parseRange(x); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("want a list of integers or a range such as \"1-3\", got %s", show(v))
	}
	seeds := []int64{}
	seen := map[int64]bool{}
	for _, e := range vals {
		n, ok := e.(int64)
		if !ok {
			return nil, fmt.Errorf("seeds must be integers, got %s", show(e))
		}
		if seen[n] {
			return nil, fmt.Errorf("seed %d appears twice", n)
		}
		seen[n] = true
		seeds = append(seeds, n)
	}
	return seeds, nil
}

func stringList(v any) ([]string, error) {
	x, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list of \"key=value\" strings, got %s", show(v))
	}
	out := make([]string, len(x))
	for i, e := range x {
		s, ok := e.(string)
		if !ok || !strings.Contains(s, "=") {
			return nil, fmt.Errorf("want \"key=value\" strings, got %s", show(e))
		}
		out[i] = s
	}
	return out, nil
}

// show describes a TOML value in an error.
func show(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case nil:
		return "nothing"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprint(v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ordered returns the keys of t in the order given (file order), then
// the others sorted.
func ordered(t map[string]any, order []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range order {
		if _, ok := t[k]; ok && !seen[k] {
			out = append(out, k)
			seen[k] = true
		}
	}
	for _, k := range sortedKeys(t) {
		if !seen[k] {
			out = append(out, k)
		}
	}
	return out
}

// fileOrder returns the keys of sweep.axes and sweep.baselines in the
// order the recipe file writes them (nothing if it cannot be read).
func fileOrder(path string) map[string][]string {
	order := map[string][]string{}
	src, err := os.ReadFile(path)
	if err != nil {
		return order
	}
	var doc map[string]any
	md, err := toml.Decode(string(src), &doc)
	if err != nil {
		return order
	}
	for _, k := range md.Keys() {
		if len(k) == 3 && k[0] == "sweep" && (k[1] == "axes" || k[1] == "baselines") {
			order[k[1]] = append(order[k[1]], k[2])
		}
	}
	return order
}

// resolveRecipe returns a baseline's recipe path relative to the sweep
// recipe's folder (absolute paths unchanged).
func resolveRecipe(sweepRecipe, p string) string {
	if p == "" {
		return sweepRecipe
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(sweepRecipe), filepath.FromSlash(p))
}
