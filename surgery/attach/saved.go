package attach

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/adapter"
)

// Store is what saving and reading adapter folders needs from the adapter
// plugins: the host's router (plugins/host), or InProcess for one plugin
// implementation. The host never reads an adapter's configuration keys:
// the plugin that owns an adapter type says how it is saved and read.
type Store interface {
	Planner
	// SaveAdapter returns adapter_config.json's adapter keys for modules.
	SaveAdapter(ctx context.Context, req rpc.SaveRequest) (map[string]any, error)
	// LoadAdapter reads a saved config and tensor list back into modules.
	LoadAdapter(ctx context.Context, req rpc.LoadRequest) ([]rpc.LoadedModule, error)
	// Reader names the adapter component that reads folders of peftType.
	Reader(ctx context.Context, peftType string) (string, error)
}

// InProcess makes a Store of one plugin implementation (an sdk server or
// an rpc client), finding readers through its Describe.
func InProcess(impl rpc.Interface) Store { return inProcess{impl} }

type inProcess struct{ rpc.Interface }

func (p inProcess) Reader(ctx context.Context, peftType string) (string, error) {
	d, err := p.Describe(ctx)
	if err != nil {
		return "", err
	}
	for _, c := range d.Components {
		for _, t := range c.PEFTTypes {
			if strings.EqualFold(t, peftType) {
				return c.Name, nil
			}
		}
	}
	return "", fmt.Errorf("plugin %s reads no peft_type %q", d.Name, peftType)
}

// Split asks the plugin that reads a's peft_type which of its tensors are
// module parameters, and returns the attachment targets with their saved
// values. a.Modules and a.Saved are rebuilt to match: tensors no module
// claims are fully trained model tensors.
func Split(ctx context.Context, s Store, a *peft.Adapter) ([]Target, error) {
	comp, err := s.Reader(ctx, a.Config.PeftType)
	if err != nil {
		return nil, err
	}
	all := a.Tensors()
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	cfg, err := a.ConfigMap()
	if err != nil {
		return nil, err
	}
	req := rpc.LoadRequest{Adapter: comp, Config: cfg}
	for _, n := range names {
		req.Tensors = append(req.Tensors, rpc.TensorInfo{Name: n, Shape: all[n].Shape})
	}
	mods, err := s.LoadAdapter(ctx, req)
	if err != nil {
		return nil, err
	}
	a.Modules = map[string]map[string]tensor.Tensor{}
	claimed := map[string]bool{}
	var out []Target
	for _, m := range mods {
		t := Target{Path: m.Path, Adapter: m.Adapter, Config: m.Config, Values: map[string][]float32{}}
		params := map[string]tensor.Tensor{}
		for saved, param := range m.Params {
			tt, ok := all[saved]
			if !ok {
				return nil, fmt.Errorf("module %s: the %s plugin named tensor %q, which the folder lacks", m.Path, comp, saved)
			}
			if claimed[saved] {
				return nil, fmt.Errorf("module %s: tensor %q claimed twice", m.Path, saved)
			}
			claimed[saved] = true
			v, err := tt.Float32()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", saved, err)
			}
			t.Values[param] = v
			params[param] = tt
		}
		a.Modules[m.Path] = params
		out = append(out, t)
	}
	a.Saved = map[string]tensor.Tensor{}
	for _, n := range names {
		if !claimed[n] {
			a.Saved[n] = all[n]
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Read reads a PEFT adapter folder through the plugins: the adapter, and
// its modules as attachment targets with their saved values.
func Read(ctx context.Context, s Store, dir string) (*peft.Adapter, []Target, error) {
	a, err := peft.Read(dir)
	if err != nil {
		return nil, nil, err
	}
	targets, err := Split(ctx, s, a)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	return a, targets, nil
}

// Load attaches an adapter already read (see Read) to a model: its modules
// through their plugins and its fully trained tensors. It returns the model
// the adapter expects (a causal LM becomes a classifier for a SEQ_CLS
// adapter with a new head).
func Load(ctx context.Context, m model.Model, s Store, a *peft.Adapter, targets []Target) (model.Model, error) {
	m = ForAdapter(m, a)
	if _, err := Attach(ctx, m, s, targets, 0); err != nil {
		return nil, err
	}
	if err := ApplySaved(m, a.Saved, 1); err != nil {
		return nil, err
	}
	return m, nil
}

// AttachFolder reads a saved adapter folder (or a llama.cpp LoRA adapter
// GGUF file) and attaches it to a model: the one path by which forward,
// generate, merge, eval and the rank commands load adapters.
func AttachFolder(ctx context.Context, m model.Model, s Store, dir string) (model.Model, error) {
	a, targets, err := readAdapter(ctx, s, m, dir)
	if err != nil {
		return nil, err
	}
	m, err = Load(ctx, m, s, a, targets)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return m, nil
}

// Info is what a saved adapter folder records beyond its modules.
type Info struct {
	// Adapter is the component asked for the saved form when no module is
	// adapted (a head-only run).
	Adapter string
	// TaskType is PEFT's task_type ("CAUSAL_LM", "SEQ_CLS").
	TaskType string
	// BaseModel is base_model_name_or_path.
	BaseModel string
	// Saved are fully trained model tensors, ModulesToSave their modules.
	Saved         map[string]tensor.Tensor
	ModulesToSave []string
	// Extra are further adapter_config.json keys (e.g. PEFT's bias "all"
	// when trained biases are saved).
	Extra map[string]any
	// Metadata is the safetensors __metadata__.
	Metadata map[string]string
	// Base, when set, is the config of the adapter this one replaces (a
	// resized adapter): its keys are kept unless the plugin sets them.
	Base map[string]any
}

// Module is one module of an adapter being composed: its layer, adapter
// configuration and parameter tensors by planned name.
type Module struct {
	Path    string
	Layer   rpc.Layer
	Config  map[string]any
	Tensors map[string]tensor.Tensor
}

// ToPEFT builds the PEFT adapter of a model's adapted layers: the plugin
// owning their adapter type writes the config; tensors are saved under the
// planned parameter names.
func ToPEFT(ctx context.Context, s Store, adapted map[string]*adapter.Adapted, info Info) (*peft.Adapter, error) {
	paths := make([]string, 0, len(adapted))
	for p := range adapted {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	comp := info.Adapter
	var mods []Module
	for i, p := range paths {
		ad := adapted[p]
		if i == 0 {
			comp = ad.Type
		} else if ad.Type != comp {
			return nil, fmt.Errorf("modules %s (%s) and %s (%s): one PEFT folder holds one adapter type", paths[0], comp, p, ad.Type)
		}
		m := Module{Path: p, Config: ad.Config(), Tensors: map[string]tensor.Tensor{},
			Layer: rpc.Layer{Path: p, Kind: ad.Base.HFKind(), In: ad.Base.In(), Out: ad.Base.Out(), HasBias: ad.Base.Bias != nil, DType: "F32"}}
		for k, name := range ad.Names {
			data, err := tensor.FromFloat32(tensor.F32, ops.Data(ad.Values[k]))
			if err != nil {
				return nil, err
			}
			m.Tensors[name] = tensor.Tensor{Name: name, DType: tensor.F32, Shape: ad.Shapes[k], Data: data}
		}
		mods = append(mods, m)
	}
	return Compose(ctx, s, comp, mods, info)
}

// Compose builds a PEFT adapter from modules of one adapter component:
// the component's plugin writes adapter_config.json's adapter keys, and
// info the common ones (task_type, base_model_name_or_path,
// modules_to_save, inference_mode, and Extra).
func Compose(ctx context.Context, s Store, comp string, mods []Module, info Info) (*peft.Adapter, error) {
	if comp == "" {
		return nil, fmt.Errorf("no adapted module and no adapter type to save")
	}
	req := rpc.SaveRequest{Adapter: comp}
	a := &peft.Adapter{Modules: map[string]map[string]tensor.Tensor{}, Saved: map[string]tensor.Tensor{}, Metadata: info.Metadata}
	for _, m := range mods {
		sm := rpc.SavedModule{Path: m.Path, Layer: m.Layer, Config: m.Config}
		names := make([]string, 0, len(m.Tensors))
		for n := range m.Tensors {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			sm.Params = append(sm.Params, rpc.TensorInfo{Name: n, Shape: m.Tensors[n].Shape})
		}
		a.Modules[m.Path] = m.Tensors
		req.Modules = append(req.Modules, sm)
	}
	raw, err := s.SaveAdapter(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("saving %s adapter: %w", comp, err)
	}
	if _, ok := raw["peft_type"].(string); !ok {
		return nil, fmt.Errorf("saving %s adapter: the plugin's adapter_config.json has no peft_type", comp)
	}
	for k, v := range info.Base {
		if _, set := raw[k]; !set {
			raw[k] = v
		}
	}
	raw["task_type"] = info.TaskType
	raw["base_model_name_or_path"] = info.BaseModel
	raw["inference_mode"] = true
	if _, ok := raw["revision"]; !ok {
		raw["revision"] = nil
	}
	if len(info.ModulesToSave) > 0 {
		raw["modules_to_save"] = append([]string(nil), info.ModulesToSave...)
	} else {
		raw["modules_to_save"] = nil
	}
	for k, v := range info.Extra {
		raw[k] = v
	}
	for n, t := range info.Saved {
		a.Saved[n] = t
	}
	a.Raw = raw
	js, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(js, &a.Config); err != nil {
		return nil, fmt.Errorf("saving %s adapter: adapter_config.json: %w", comp, err)
	}
	return a, nil
}

// SavedTensors returns the current values of the model parameters under
// the given module paths (fully trained modules), by parameter path.
func SavedTensors(m nn.Model, modules []string) map[string]tensor.Tensor {
	out := map[string]tensor.Tensor{}
	for _, p := range layer.Params(m) {
		for _, s := range modules {
			if p.Path == s || strings.HasPrefix(p.Path, s+".") {
				data, _ := tensor.FromFloat32(tensor.F32, p.Stored())
				out[p.Path] = tensor.Tensor{Name: p.Path, DType: tensor.F32, Shape: p.Shape, Data: data}
			}
		}
	}
	return out
}
