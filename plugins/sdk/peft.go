package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/surgeon-ml/surgeon/plugins/rpc"
)

// Types of the saved form, re-exported.
type (
	// SavedModule is one adapted module to save.
	SavedModule = rpc.SavedModule
	// LoadedModule is one module of a saved adapter.
	LoadedModule = rpc.LoadedModule
	// TensorInfo is a saved tensor's name and shape.
	TensorInfo = rpc.TensorInfo
)

// Saver is implemented by adapters that say how they are saved as a
// Hugging Face PEFT folder: Save returns adapter_config.json's keys (with
// peft_type) for the modules of one run. Each module's tensors are saved
// under its path and the parameter names the plan gave.
type Saver interface {
	Save(mods []SavedModule) (map[string]any, error)
}

// Loader is implemented by adapters that read PEFT folders back: Load turns
// a folder's adapter_config.json and tensor list into modules.
type Loader interface {
	PEFTTypes() []string
	Load(config map[string]any, tensors []TensorInfo) ([]LoadedModule, error)
}

// PEFTForm describes how an adapter is saved as a PEFT folder when its
// adapter_config.json holds each configuration key under its own name (the
// value most modules use), per-module differences in pattern keys, and
// whose saved tensors are the planned parameters. LoRA, IA3 and LoHa are
// all of this form; an adapter with another form implements Saver and
// Loader itself.
type PEFTForm struct {
	// Type is the peft_type, e.g. "LOHA".
	Type string
	// Params are the parameter names of a module as saved, e.g.
	// "hada_w1_a"; Aliases maps other saved names to them (older PEFT
	// versions' names).
	Params  []string
	Aliases map[string]string
	// Patterns maps configuration keys that may differ between modules to
	// the config key holding the per-module values ("r": "rank_pattern").
	Patterns map[string]string
	// Lists maps bool configuration keys to the config key listing the
	// modules where they are true ("feedforward": "feedforward_modules").
	Lists map[string]string
	// Flags maps other components of the same plugin saved in this form to
	// a bool config key set when a module uses them ("dora": "use_dora").
	// Loading picks the flagged component, else Component.
	Flags map[string]string
	// Component is the component a loaded module uses when no flag is set.
	Component string
	// Constant keys written into every config (e.g. "bias": "none").
	Constant map[string]any
	// KindFlags maps a bool config key to a layer kind (rpc.Layer.Kind):
	// the key is written true when a saved module's layer is of that kind
	// and left out otherwise, e.g. PEFT's "fan_in_fan_out" for "conv1d"
	// layers (GPT-2's Conv1D, whose weights are saved [in, out]).
	KindFlags map[string]string
	// LoadOverrides are configuration values forced on loaded modules
	// (e.g. an initialisation that does not apply to trained values).
	LoadOverrides map[string]any
}

// WithPEFT gives the adapter a saved form: it saves and loads PEFT folders
// of form.Type as form describes.
func (a *FuncAdapter) WithPEFT(form PEFTForm) *FuncAdapter { a.peft = &form; return a }

// Save writes the adapter's modules in its PEFT form.
func (a *FuncAdapter) Save(mods []SavedModule) (map[string]any, error) {
	if a.peft == nil {
		return nil, fmt.Errorf("adapter %s has no PEFT form", a.name)
	}
	return a.peft.save(a.name, a.keys, mods)
}

// PEFTTypes lists the peft_type the adapter reads, if it has a form.
func (a *FuncAdapter) PEFTTypes() []string {
	if a.peft == nil {
		return nil
	}
	return []string{a.peft.Type}
}

// Load reads modules saved in the adapter's PEFT form.
func (a *FuncAdapter) Load(config map[string]any, tensors []TensorInfo) ([]LoadedModule, error) {
	if a.peft == nil {
		return nil, fmt.Errorf("adapter %s has no PEFT form", a.name)
	}
	return a.peft.load(a.keys, config, tensors)
}

// canonical renders a value for comparison and counting.
func canonical(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (f *PEFTForm) save(component string, keys []ConfigKey, mods []SavedModule) (map[string]any, error) {
	out := map[string]any{"peft_type": f.Type}
	for k, v := range f.Constant {
		out[k] = v
	}
	for comp, flag := range f.Flags {
		out[flag] = comp == component
	}
	for key, kind := range f.KindFlags {
		for _, m := range mods {
			if m.Layer.Kind == kind {
				out[key] = true
			}
		}
	}
	targets := []string{}
	for _, m := range mods {
		targets = append(targets, m.Path)
	}
	sort.Strings(targets)
	out["target_modules"] = targets
	for _, k := range keys {
		values := map[string]any{}
		count := map[string]int{}
		for _, m := range mods {
			v, ok := m.Config[k.Name]
			if !ok {
				v = k.Default
			}
			c := canonical(v)
			values[c] = v
			count[c]++
		}
		if list, ok := f.Lists[k.Name]; ok {
			var on []string
			for _, m := range mods {
				if b, _ := m.Config[k.Name].(bool); b {
					on = append(on, m.Path)
				}
			}
			sort.Strings(on)
			if on == nil {
				on = []string{}
			}
			out[list] = on
			continue
		}
		best := canonical(k.Default)
		values[best] = k.Default
		for c := range count {
			if count[best] == 0 || count[c] > count[best] || count[c] == count[best] && less(values[c], values[best]) {
				best = c
			}
		}
		out[k.Name] = values[best]
		pat, ok := f.Patterns[k.Name]
		if !ok {
			if len(count) > 1 {
				return nil, fmt.Errorf("modules differ in %s, which a PEFT %s config holds once for all modules", k.Name, f.Type)
			}
			continue
		}
		p := map[string]any{}
		for _, m := range mods {
			v, ok := m.Config[k.Name]
			if !ok {
				v = k.Default
			}
			if canonical(v) != best {
				p[m.Path] = v
			}
		}
		out[pat] = p
	}
	return out, nil
}

// less orders values for a deterministic choice between equally common
// ones: numbers numerically, the rest by their JSON form.
func less(a, b any) bool {
	fa, okA := toFloat(a)
	fb, okB := toFloat(b)
	if okA && okB {
		return fa < fb
	}
	return canonical(a) < canonical(b)
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// patternMatch reports whether a PEFT pattern key matches a module path:
// PEFT matches `(.*\.)?(key)$`.
func patternMatch(key, path string) bool {
	re, err := regexp.Compile(`^(.*\.)?(` + key + `)$`)
	if err != nil {
		return key == path || strings.HasSuffix(path, "."+key)
	}
	return re.MatchString(path)
}

// listed reports whether a PEFT module list (a list of names matched as
// suffixes, or a regex string) selects path.
func listed(list any, path string) (bool, error) {
	switch t := list.(type) {
	case nil:
		return false, nil
	case string:
		re, err := regexp.Compile(`^(?:` + t + `)$`)
		if err != nil {
			return false, fmt.Errorf("regex %q: %w", t, err)
		}
		return re.MatchString(path), nil
	case []any:
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return false, fmt.Errorf("entry %v is not a string", e)
			}
			if path == s || strings.HasSuffix(path, "."+s) {
				return true, nil
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("%T is neither a list nor a string", list)
}

func (f *PEFTForm) load(keys []ConfigKey, config map[string]any, tensors []TensorInfo) ([]LoadedModule, error) {
	if t, _ := config["peft_type"].(string); !strings.EqualFold(t, f.Type) {
		return nil, fmt.Errorf("peft_type %q is not %s", t, f.Type)
	}
	names := map[string]string{} // saved suffix -> param name
	for _, p := range f.Params {
		names[p] = p
	}
	for alias, p := range f.Aliases {
		names[alias] = p
	}
	suffixes := make([]string, 0, len(names))
	for s := range names {
		suffixes = append(suffixes, s)
	}
	sort.Slice(suffixes, func(i, j int) bool { return len(suffixes[i]) > len(suffixes[j]) })
	mods := map[string]map[string]string{}
	for _, t := range tensors {
		for _, s := range suffixes {
			if strings.HasSuffix(t.Name, "."+s) {
				path := strings.TrimSuffix(t.Name, "."+s)
				if mods[path] == nil {
					mods[path] = map[string]string{}
				}
				mods[path][t.Name] = names[s]
				break
			}
		}
	}
	paths := make([]string, 0, len(mods))
	for p := range mods {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	component := f.Component
	for comp, flag := range f.Flags {
		if b, _ := config[flag].(bool); b {
			component = comp
		}
	}
	known := map[string]bool{}
	for _, k := range keys {
		known[k.Name] = true
	}
	var out []LoadedModule
	for _, path := range paths {
		cfg := map[string]any{}
		for _, k := range keys {
			if list, ok := f.Lists[k.Name]; ok {
				on, err := listed(config[list], path)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", list, err)
				}
				cfg[k.Name] = on
				continue
			}
			v, ok := config[k.Name]
			if pat, isPat := f.Patterns[k.Name]; isPat {
				if m, _ := config[pat].(map[string]any); m != nil {
					pk := make([]string, 0, len(m))
					for key := range m {
						pk = append(pk, key)
					}
					sort.Strings(pk)
					for _, key := range pk {
						if patternMatch(key, path) {
							v, ok = m[key], true
							break
						}
					}
				}
			}
			if ok && v != nil {
				cfg[k.Name] = fromJSON(k.Type, v)
			}
		}
		for k, v := range f.LoadOverrides {
			if known[k] {
				cfg[k] = v
			}
		}
		if _, err := NewConfig(keys, cfg); err != nil {
			return nil, fmt.Errorf("module %s: %w", path, err)
		}
		out = append(out, LoadedModule{Path: path, Adapter: component, Config: cfg, Params: mods[path]})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s tensors (want names ending in %s)", f.Type, strings.Join(f.Params, ", "))
	}
	return out, nil
}

// fromJSON types a value decoded from JSON (numbers are float64) for a key
// of the given type: integral numbers of int keys become int.
func fromJSON(typ string, v any) any {
	if f, ok := v.(float64); ok && typ == "int" {
		if c, err := coerce("int", f); err == nil {
			return c
		}
	}
	return v
}

func (s *server) component(name string) (Adapter, error) {
	a, ok := s.adapters[name]
	if !ok {
		return nil, fmt.Errorf("plugin %s has no adapter %q", s.name, name)
	}
	return a, nil
}

func (s *server) SaveAdapter(_ context.Context, req rpc.SaveRequest) (out map[string]any, err error) {
	a, err := s.component(req.Adapter)
	if err != nil {
		return nil, err
	}
	sv, ok := a.(Saver)
	if !ok || sv == nil {
		return nil, fmt.Errorf("adapter %s has no saved form (its plugin implements no sdk.Saver)", req.Adapter)
	}
	for i, m := range req.Modules {
		c, err := NewConfig(a.Config(), m.Config)
		if err != nil {
			return nil, fmt.Errorf("adapter %s, module %s: %w", req.Adapter, m.Path, err)
		}
		req.Modules[i].Config = c.Map()
	}
	defer guard(req.Adapter, &err)
	return sv.Save(req.Modules)
}

func (s *server) LoadAdapter(_ context.Context, req rpc.LoadRequest) (out []rpc.LoadedModule, err error) {
	a, err := s.component(req.Adapter)
	if err != nil {
		return nil, err
	}
	l, ok := a.(Loader)
	if !ok {
		return nil, fmt.Errorf("adapter %s reads no PEFT folders (its plugin implements no sdk.Loader)", req.Adapter)
	}
	defer guard(req.Adapter, &err)
	return l.Load(req.Config, req.Tensors)
}
