package sweep

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/surgeon-ml/surgeon/surgery/recipe"
)

// ErrNoSweep is returned by Load for a recipe without a [sweep] table.
var ErrNoSweep = errors.New("the recipe has no [sweep] table")

// maxPoints bounds the size of a sweep, to catch a runaway grid.
const maxPoints = 10000

// Sweep is a recipe expanded into points.
type Sweep struct {
	// Recipe is the sweep recipe file, as given.
	Recipe string `json:"recipe"`
	// Hash is the recipe's hash (with the extra overrides applied).
	Hash string `json:"hash"`
	// Mode is ModeGrid or ModeZip.
	Mode string `json:"mode"`
	// Dir is the absolute sweep folder: manifest.json, report.*, logs/
	// and points/NAME/ (one run folder per point).
	Dir string `json:"dir"`
	// Sets are the extra overrides given when loading (the command
	// line's --set), applied to every point.
	Sets []string `json:"sets,omitempty"`
	// Points in expansion order: the axes' combinations (the first axis
	// varying slowest, seeds fastest), then the baselines.
	Points []Point `json:"points"`
}

// Point is one run of a sweep.
type Point struct {
	// Index is the point's position in expansion order (what --point and
	// the cluster job index refer to).
	Index int `json:"index"`
	// Name identifies the point, "r=8,seed=1" or "head,seed=1"; its run
	// folder is points/NAME.
	Name string `json:"name"`
	// Group is the name without the seed: points of a group are averaged
	// in the report.
	Group string `json:"group"`
	// Baseline is the baseline's name for a baseline point.
	Baseline string `json:"baseline,omitempty"`
	// Recipe is the recipe file the point runs.
	Recipe string `json:"recipe"`
	// Values are the axes' values at this point, in axis order.
	Values []Value `json:"values,omitempty"`
	// Seed is the point's train.seed when the sweep sets seeds.
	Seed *int64 `json:"seed,omitempty"`
	// Overrides are the point's own --set overrides (axes, seed,
	// baseline sets).
	Overrides []string `json:"overrides,omitempty"`
	// Sets are all the overrides `surgeon apply` runs the point with:
	// sweep.sets, the extra sets, Overrides and output.dir.
	Sets []string `json:"sets"`
	// Hash is the point recipe's hash; a point's report.json must carry it
	// to count as done.
	Hash string `json:"hash"`
}

// Value is an axis's value at a point.
type Value struct {
	Name    string `json:"name"`
	Key     string `json:"key"`
	Value   any    `json:"value"`
	Derived bool   `json:"derived,omitempty"`
}

// Load reads the sweep recipe at path with the overrides sets and expands
// it. dir is the sweep folder ("" for the recipe's sweep.dir, by default
// runs/<recipe name>-sweep next to the recipe).
func Load(path string, sets []string, dir string) (*Sweep, error) {
	rec, err := recipe.Load(path, sets)
	if err != nil {
		return nil, err
	}
	return Expand(rec, sets, dir)
}

// Has reports whether a recipe has a [sweep] table.
func Has(rec *recipe.Recipe) bool { return rec.Sweep != nil }

// Expand expands a loaded recipe's [sweep] table into points. sets are the
// overrides rec was loaded with; they apply to every point (baselines
// too). Every point's recipe is loaded and checked, so an unknown key or
// a bad value is reported before anything runs.
func Expand(rec *recipe.Recipe, sets []string, dir string) (*Sweep, error) {
	if rec.Sweep == nil {
		return nil, fmt.Errorf("%s: %w", rec.Path, ErrNoSweep)
	}
	spec, err := ParseSpec(rec.Path, rec.Sweep)
	if err != nil {
		return nil, err
	}
	if dir == "" {
		d := spec.Dir
		if d == "" {
			stem := strings.TrimSuffix(filepath.Base(rec.Path), filepath.Ext(rec.Path))
			d = filepath.Join("runs", stem+"-sweep")
		}
		dir = rec.Resolve(filepath.FromSlash(d))
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("sweep folder: %w", err)
	}
	s := &Sweep{Recipe: rec.Path, Hash: rec.Hash(), Mode: spec.Mode, Dir: dir, Sets: sets}
	if err := s.expand(rec, spec); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Sweep) expand(rec *recipe.Recipe, spec *Spec) error {
	var free []*Axis
	for i := range spec.Axes {
		if !spec.Axes[i].Derived() {
			free = append(free, &spec.Axes[i])
		}
	}
	derived, err := spec.derivedOrder()
	if err != nil {
		return err
	}
	// Combinations of the free axes, as value indices.
	combos := [][]int{{}}
	if len(free) > 0 && spec.Mode == ModeZip {
		combos = nil
		for i := range free[0].Values {
			c := make([]int, len(free))
			for j := range c {
				c[j] = i
			}
			combos = append(combos, c)
		}
	} else {
		for _, a := range free {
			var next [][]int
			for _, c := range combos {
				for i := range a.Values {
					next = append(next, append(append([]int(nil), c...), i))
				}
				if len(next) > maxPoints {
					return fmt.Errorf("%s: sweep: more than %d points", rec.Path, maxPoints)
				}
			}
			combos = next
		}
	}
	seeds := func(list []int64) []*int64 {
		if list == nil {
			return []*int64{nil}
		}
		out := make([]*int64, len(list))
		for i := range list {
			out[i] = &list[i]
		}
		return out
	}
	common := append(append([]string(nil), spec.Sets...), s.Sets...)
	for _, c := range combos {
		for _, seed := range seeds(spec.Seeds) {
			p := Point{Recipe: rec.Path}
			vals := map[*Axis]any{}
			var parts []string
			for j, a := range free {
				v := a.Values[c[j]]
				vals[a] = v
				parts = append(parts, a.Name+"="+display(v))
			}
			for _, a := range derived {
				v, err := a.expr.eval(func(name string) (number, error) { return lookupName(spec, rec, vals, seed, name) })
				if err != nil {
					return &recipe.Error{File: rec.Path, Key: "sweep.axes." + strconv.Quote(a.Key),
						Msg: fmt.Sprintf("sweep.axes.%q: expression %q: %v", a.Key, a.Expr, err)}
				}
				vals[a] = v.value()
			}
			for i := range spec.Axes {
				a := &spec.Axes[i]
				v := vals[a]
				p.Values = append(p.Values, Value{Name: a.Name, Key: a.Key, Value: v, Derived: a.Derived()})
				tv, err := tomlValue(v)
				if err != nil {
					return fmt.Errorf("%s: sweep.axes.%q: %w", rec.Path, a.Key, err)
				}
				p.Overrides = append(p.Overrides, a.Key+"="+tv)
			}
			p.Group = strings.Join(parts, ",")
			if p.Group == "" {
				p.Group = "base"
			}
			s.addPoint(p, common, seed)
		}
	}
	for _, b := range spec.Baselines {
		list := spec.Seeds
		if b.SeedsSet {
			list = b.Seeds
			if len(list) == 0 {
				list = nil
			}
		}
		for _, seed := range seeds(list) {
			p := Point{Recipe: resolveRecipe(rec.Path, b.Recipe), Baseline: b.Name, Group: b.Name}
			p.Overrides = append(p.Overrides, b.Sets...)
			s.addPoint(p, common, seed)
		}
	}
	if len(s.Points) > maxPoints {
		return fmt.Errorf("%s: sweep: %d points, more than %d", rec.Path, len(s.Points), maxPoints)
	}
	// Names must be unique (they are folder names), and every point's
	// recipe must load.
	var errs []error
	byName := map[string]int{}
	for i := range s.Points {
		p := &s.Points[i]
		if j, ok := byName[p.Name]; ok {
			errs = append(errs, fmt.Errorf("%s: sweep: points %d and %d are both named %q", rec.Path, j, i, p.Name))
			continue
		}
		byName[p.Name] = i
		r, err := recipe.Load(p.Recipe, p.Sets)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep point %d (%s): %w", i, p.Name, err))
			if len(errs) >= 5 {
				break
			}
			continue
		}
		p.Hash = r.Hash()
	}
	return errors.Join(errs...)
}

// addPoint completes a point with its seed, name, sets and folder.
func (s *Sweep) addPoint(p Point, common []string, seed *int64) {
	p.Index = len(s.Points)
	p.Name = p.Group
	if seed != nil {
		p.Seed = seed
		p.Overrides = append(p.Overrides, seedKey+"="+strconv.FormatInt(*seed, 10))
		if p.Name == "base" {
			p.Name = ""
		}
		p.Name = strings.TrimPrefix(p.Name+",seed="+strconv.FormatInt(*seed, 10), ",")
	}
	p.Name = safeName(p.Name)
	p.Sets = append(append(append([]string(nil), common...), p.Overrides...), "output.dir="+s.PointDir(p.Name))
	s.Points = append(s.Points, p)
}

// PointDir is the run folder of the named point.
func (s *Sweep) PointDir(name string) string { return filepath.Join(s.Dir, "points", name) }

// lookupName resolves a name in an expression at one point: an axis (by
// short name, key or alias), the seed, or the base recipe's value of the
// key (or of the alias's key).
func lookupName(spec *Spec, rec *recipe.Recipe, vals map[*Axis]any, seed *int64, name string) (number, error) {
	if a := spec.axisFor(name); a != nil {
		v, ok := vals[a]
		if !ok {
			return number{}, fmt.Errorf("%q is not computed yet", name)
		}
		n, ok := numberOf(v)
		if !ok {
			return number{}, fmt.Errorf("%s = %s is not a number", name, show(v))
		}
		return n, nil
	}
	key := name
	if k, ok := Aliases[name]; ok {
		key = k
	}
	if key == seedKey && seed != nil {
		return number{float64(*seed), true}, nil
	}
	if strings.Contains(key, ".") {
		if v, ok := recipeValue(rec, key); ok {
			n, ok := numberOf(v)
			if !ok {
				return number{}, fmt.Errorf("%s = %s in the recipe is not a number", key, show(v))
			}
			return n, nil
		}
	}
	var known []string
	for _, a := range spec.Axes {
		known = append(known, a.Name)
	}
	return number{}, fmt.Errorf("unknown name %q (axes: %s; aliases: "+aliasList()+"; or a recipe key such as train.lr)",
		name, strings.Join(known, ", "))
}

// recipeValue returns the value of a dotted key in a loaded recipe.
func recipeValue(rec *recipe.Recipe, key string) (any, bool) {
	v := reflect.ValueOf(rec).Elem()
	for _, seg := range strings.Split(key, ".") {
		for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
			if v.IsNil() {
				return nil, false
			}
			v = v.Elem()
		}
		switch v.Kind() {
		case reflect.Struct:
			found := false
			for i := 0; i < v.NumField(); i++ {
				if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("toml"), ","); tag == seg && tag != "-" {
					v, found = v.Field(i), true
					break
				}
			}
			if !found {
				return nil, false
			}
		case reflect.Map:
			e := v.MapIndex(reflect.ValueOf(seg))
			if !e.IsValid() {
				return nil, false
			}
			v = e
		case reflect.Slice:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= v.Len() {
				return nil, false
			}
			v = v.Index(i)
		default:
			return nil, false
		}
	}
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil, false
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return v.Int(), true
	case reflect.Float64, reflect.Float32:
		return v.Float(), true
	}
	return v.Interface(), true
}

// WriteTable writes the points as a table: index, name, recipe and the
// point's own overrides.
func (s *Sweep) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "sweep %s (%s): %d points in %s\n", s.Recipe, s.Mode, len(s.Points), s.Dir)
	fmt.Fprintln(tw, "#\tPOINT\tRECIPE\tOVERRIDES")
	for _, p := range s.Points {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", p.Index, p.Name, p.Recipe, strings.Join(p.Overrides, " "))
	}
	return tw.Flush()
}

// aliasList lists the expression aliases, sorted.
func aliasList() string {
	names := make([]string, 0, len(Aliases))
	for k := range Aliases {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
