// Package peft reads and writes Hugging Face PEFT adapter folders
// (adapter_config.json + adapter_model.safetensors) exactly as PEFT does, so
// adapters move between surgeon and the Hugging Face ecosystem both ways.
package peft

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
	"github.com/surgeon-ml/surgeon/internal/atomicfs"
)

// File names of an adapter folder.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
	// Prefix is prepended by PEFT to every saved key.
	Prefix = "base_model.model."
)

// Config is adapter_config.json. Fields surgeon acts on are typed; the
// rest are kept in Extra and written back unchanged.
type Config struct {
	PeftType          string             `json:"peft_type"`
	TaskType          string             `json:"task_type,omitempty"`
	BaseModel         string             `json:"base_model_name_or_path,omitempty"`
	R                 int                `json:"r,omitempty"`
	LoraAlpha         float64            `json:"lora_alpha,omitempty"`
	LoraDropout       float64            `json:"lora_dropout"`
	TargetModules     any                `json:"target_modules"`
	UseRSLoRA         bool               `json:"use_rslora"`
	UseDoRA           bool               `json:"use_dora"`
	FanInFanOut       bool               `json:"fan_in_fan_out"`
	RankPattern       map[string]int     `json:"rank_pattern"`
	AlphaPattern      map[string]float64 `json:"alpha_pattern"`
	ModulesToSave     []string           `json:"modules_to_save"`
	Bias              string             `json:"bias,omitempty"`
	InitLoraWeights   any                `json:"init_lora_weights,omitempty"`
	FeedforwardModule any                `json:"feedforward_modules,omitempty"`
	InferenceMode     bool               `json:"inference_mode"`
	// Extra holds keys not listed above.
	Extra map[string]any `json:"-"`
}

var knownKeys = map[string]bool{}

func init() {
	for _, k := range []string{"peft_type", "task_type", "base_model_name_or_path", "r", "lora_alpha", "lora_dropout",
		"target_modules", "use_rslora", "use_dora", "fan_in_fan_out", "rank_pattern", "alpha_pattern",
		"modules_to_save", "bias", "init_lora_weights", "feedforward_modules", "inference_mode"} {
		knownKeys[k] = true
	}
}

// UnmarshalJSON decodes the config keeping unknown keys.
func (c *Config) UnmarshalJSON(data []byte) error {
	type plain Config
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	var all map[string]any
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	*c = Config(p)
	c.Extra = map[string]any{}
	for k, v := range all {
		if !knownKeys[k] {
			c.Extra[k] = v
		}
	}
	return nil
}

// MarshalJSON encodes the config with its extra keys.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config
	b, err := json.Marshal(plain(c))
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range c.Extra {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// patternMatch reports whether a PEFT rank/alpha pattern key matches a
// module name: PEFT uses the regex `(.*\.)?(key)$`.
func patternMatch(key, name string) bool {
	re, err := regexp.Compile(`^(.*\.)?(` + key + `)$`)
	if err != nil {
		return key == name || strings.HasSuffix(name, "."+key)
	}
	return re.MatchString(name)
}

// firstPattern returns the first key (in sorted order, for determinism) of
// patterns that matches name.
func firstPattern[V any](patterns map[string]V, name string) (V, bool) {
	keys := make([]string, 0, len(patterns))
	for k := range patterns {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if patternMatch(k, name) {
			return patterns[k], true
		}
	}
	var zero V
	return zero, false
}

// RankFor returns the rank of a module, honouring rank_pattern.
func (c *Config) RankFor(module string) int {
	if r, ok := firstPattern(c.RankPattern, module); ok {
		return r
	}
	return c.R
}

// AlphaFor returns lora_alpha for a module, honouring alpha_pattern.
func (c *Config) AlphaFor(module string) float64 {
	if a, ok := firstPattern(c.AlphaPattern, module); ok {
		return a
	}
	return c.LoraAlpha
}

// Targets reports whether target_modules selects a module: a list matches
// the exact name or a suffix after a '.', a string is a regex that must
// match the whole name.
func (c *Config) Targets(module string) (bool, error) {
	switch t := c.TargetModules.(type) {
	case nil:
		return false, nil
	case string:
		re, err := regexp.Compile(`^(?:` + t + `)$`)
		if err != nil {
			return false, fmt.Errorf("target_modules regex %q: %w", t, err)
		}
		return re.MatchString(module), nil
	case []any:
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return false, fmt.Errorf("target_modules entry %v is not a string", e)
			}
			if module == s || strings.HasSuffix(module, "."+s) {
				return true, nil
			}
		}
		return false, nil
	case []string:
		for _, s := range t {
			if module == s || strings.HasSuffix(module, "."+s) {
				return true, nil
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("target_modules has type %T, want a list or a string", c.TargetModules)
}

// Adapter is a PEFT adapter folder in memory.
type Adapter struct {
	Config Config
	// Modules maps each adapted module path (without PEFT's prefix) to its
	// parameters by PEFT name ("lora_A.weight", "lora_B.weight",
	// "lora_magnitude_vector.weight", "ia3_l").
	Modules map[string]map[string]tensor.Tensor
	// Saved holds fully trained model tensors (modules_to_save and trained
	// biases) under their model names.
	Saved map[string]tensor.Tensor
	// Metadata is the safetensors __metadata__.
	Metadata map[string]string
	// Raw is adapter_config.json as decoded JSON. Read sets it; Write
	// writes it as is when set (the adapter plugin's own keys), else
	// Config.
	Raw map[string]any
}

// Tensors returns every tensor of the adapter by saved name without
// PEFT's prefix: module parameters as "<module>.<param>", and the fully
// trained tensors under their model names.
func (a *Adapter) Tensors() map[string]tensor.Tensor {
	out := map[string]tensor.Tensor{}
	for m, params := range a.Modules {
		for p, t := range params {
			out[m+"."+p] = t
		}
	}
	for n, t := range a.Saved {
		out[n] = t
	}
	return out
}

// paramSuffixes are the PEFT parameter names surgeon understands, longest first.
var paramSuffixes = []string{
	"lora_magnitude_vector.weight", "lora_magnitude_vector", "lora_A.weight", "lora_B.weight", "ia3_l",
	"lora_embedding_A", "lora_embedding_B",
}

// SplitKey splits a saved key into module path and PEFT parameter name for
// the LoRA and IA3 parameter names. ok is false for other keys (fully
// trained tensors, and the parameters of other adapter types, which their
// plugins tell apart: see surgery/attach).
func SplitKey(key string) (module, param string, ok bool) {
	k := strings.TrimPrefix(key, Prefix)
	for _, s := range paramSuffixes {
		if strings.HasSuffix(k, "."+s) {
			return strings.TrimSuffix(k, "."+s), s, true
		}
	}
	return k, "", false
}

// Read loads an adapter folder. Tensors are converted to F32 copies.
func Read(dir string) (*Adapter, error) {
	cfgPath := filepath.Join(dir, ConfigFile)
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("PEFT adapter: %w", err)
	}
	a := &Adapter{Modules: map[string]map[string]tensor.Tensor{}, Saved: map[string]tensor.Tensor{}}
	if err := json.Unmarshal(raw, &a.Config); err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	if err := json.Unmarshal(raw, &a.Raw); err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	if a.Config.PeftType == "" {
		return nil, fmt.Errorf("%s: no peft_type", cfgPath)
	}
	wPath := filepath.Join(dir, WeightsFile)
	f, err := safetensors.Open(wPath)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s: missing (adapter_model.bin pickles are read by 'surgeon convert')", wPath)
		}
		return nil, err
	}
	defer f.Close()
	a.Metadata = f.Metadata()
	for _, name := range f.Names() {
		t, err := f.Tensor(name)
		if err != nil {
			return nil, err
		}
		vals, err := t.Float32()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", wPath, err)
		}
		data, _ := tensor.FromFloat32(tensor.F32, vals)
		ft := tensor.Tensor{Name: name, DType: tensor.F32, Shape: append([]int(nil), t.Shape...), Data: data}
		if !strings.HasPrefix(name, Prefix) {
			return nil, fmt.Errorf("%s: tensor %q lacks PEFT's %q prefix", wPath, name, Prefix)
		}
		module, param, ok := SplitKey(name)
		if !ok {
			a.Saved[module] = ft
			continue
		}
		if strings.HasPrefix(param, "lora_embedding") {
			return nil, fmt.Errorf("%s: %s: LoRA on embeddings is not supported", wPath, name)
		}
		if param == "lora_magnitude_vector" {
			param = "lora_magnitude_vector.weight"
		}
		if a.Modules[module] == nil {
			a.Modules[module] = map[string]tensor.Tensor{}
		}
		a.Modules[module][param] = ft
	}
	if len(a.Modules) == 0 && len(a.Saved) == 0 {
		return nil, fmt.Errorf("%s: no adapter tensors", wPath)
	}
	return a, nil
}

// ModuleNames returns the adapted module paths, sorted.
func (a *Adapter) ModuleNames() []string {
	out := make([]string, 0, len(a.Modules))
	for m := range a.Modules {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// Write saves the adapter as a PEFT folder. The folder is assembled under a
// temporary name beside dir and renamed into place, so an interrupted write
// never leaves a folder that looks complete. An existing dir is replaced.
func Write(dir string, a *Adapter) (err error) {
	tmp, err := atomicfs.TempDir(dir)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	var cfg []byte
	if a.Raw != nil {
		cfg, err = json.MarshalIndent(a.Raw, "", "  ")
	} else {
		cfg, err = json.MarshalIndent(a.Config, "", "  ")
	}
	if err != nil {
		return fmt.Errorf("%s: %w", ConfigFile, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ConfigFile), append(cfg, '\n'), atomicfs.FilePerm); err != nil {
		return err
	}
	var ts []tensor.Tensor
	for _, m := range a.ModuleNames() {
		params := a.Modules[m]
		names := make([]string, 0, len(params))
		for n := range params {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			t := params[n]
			t.Name = Prefix + m + "." + n
			ts = append(ts, t)
		}
	}
	saved := make([]string, 0, len(a.Saved))
	for n := range a.Saved {
		saved = append(saved, n)
	}
	sort.Strings(saved)
	for _, n := range saved {
		t := a.Saved[n]
		t.Name = Prefix + n
		ts = append(ts, t)
	}
	md := map[string]string{"format": "pt"}
	for k, v := range a.Metadata {
		md[k] = v
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, WeightsFile), ts, md); err != nil {
		return err
	}
	return atomicfs.ReplaceDir(tmp, dir)
}

// ConfigMap returns adapter_config.json as decoded JSON: Raw when the
// adapter was read from a folder or composed by a plugin, else Config
// encoded and decoded (an adapter built in code).
func (a *Adapter) ConfigMap() (map[string]any, error) {
	if a.Raw != nil {
		return a.Raw, nil
	}
	raw, err := json.Marshal(a.Config)
	if err != nil {
		return nil, fmt.Errorf("adapter_config.json: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("adapter_config.json: %w", err)
	}
	return m, nil
}
