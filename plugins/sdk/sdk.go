// Package sdk is what a plugin author uses to write a surgeon plugin: an
// adapter (a parameter plan and two programs per layer) or a converter, in
// plain Go. It hides protobuf and go-plugin. A complete adapter plugin:
//
//	func main() {
//		sdk.Serve("myadapter", "0.1.0", sdk.NewAdapter("myadapter", "what it does",
//			[]sdk.ConfigKey{{Name: "r", Type: "int", Default: 8, Doc: "rank"}},
//			func(l sdk.Layer, c sdk.Config) (*sdk.Plan, error) { ... }).
//			WithPEFT(sdk.PEFTForm{Type: "MYTYPE", Component: "myadapter", Params: []string{"my_A", "my_B"}}))
//	}
//
// The plan function reads its configuration with typed accessors
// (c.Int("r")); values arrive typed, and a key the adapter did not declare
// is reported to the host as an error. It returns the parameters, the
// forward and merge programs (write a low-rank update with Expr.LowRank to
// get the fused kernel) and a Summary (rank, alpha, scale) for reports.
// WithPEFT gives the adapter a saved form, so that surgeon writes and reads
// its Hugging Face PEFT folders; an adapter with an unusual form
// implements Saver and Loader itself. plugins/examples/loha is a complete
// example, and plugins/sdk/sdktest the conformance suite to run against it.
//
// The host discovers the binary when it is named surgeon-plugin-NAME and lies
// in bin/plugins next to the surgeon binary or on SURGEON_PLUGIN_PATH.
package sdk

import (
	"context"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/surgeon-ml/surgeon/plugins/program"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
)

// Types shared with the host, re-exported so authors import one package.
type (
	// Layer is the target layer of a plan.
	Layer = rpc.Layer
	// ConfigKey documents a configuration key.
	ConfigKey = rpc.ConfigKey
	// Plan is an adapter's parameters and programs for one layer.
	Plan = rpc.Plan
	// Summary is what reports show of a planned module (rank, scale).
	Summary = rpc.Summary
	// ParamSpec is one adapter parameter.
	ParamSpec = rpc.ParamSpec
	// InitRule says how the host initialises a parameter.
	InitRule = rpc.InitRule
	// Program is an adapter program; build one with NewProgram.
	Program = program.Program
	// Expr is a node of a program under construction.
	Expr = program.Expr
	// Builder assembles a program.
	Builder = program.Builder
)

// NewProgram starts a program (see package program for the operations).
func NewProgram() *program.Builder { return program.New() }

// Initialisation rules.
var (
	Zeros    = InitRule{Rule: "zeros"}
	Ones     = InitRule{Rule: "ones"}
	Computed = InitRule{Rule: "computed"}
)

// Normal draws from N(0, std^2).
func Normal(std float64) InitRule { return InitRule{Rule: "normal", Std: std} }

// KaimingUniform is PyTorch's kaiming_uniform_ with negative slope a.
func KaimingUniform(a float64) InitRule { return InitRule{Rule: "kaiming_uniform", A: a} }

// Constant fills with v.
func Constant(v float64) InitRule { return InitRule{Rule: "constant", Value: v} }

// Adapter is implemented by adapter components.
type Adapter interface {
	Name() string
	Doc() string
	Config() []ConfigKey
	Plan(l Layer, c Config) (*Plan, error)
}

// Initializer is implemented by adapters with computed parameters; base is
// the layer's weight [out*in] row-major.
type Initializer interface {
	Init(l Layer, c Config, base []float32, seed uint64) (map[string][]float32, error)
}

// Converter is implemented by converter components. progress may be called
// any number of times.
type Converter interface {
	Name() string
	Doc() string
	Config() []ConfigKey
	From() []string
	To() []string
	Convert(ctx context.Context, src, dst, to string, c Config, progress func(done, total int64, msg string)) error
}

// PlanFunc plans an adapter for one layer.
type PlanFunc func(l Layer, c Config) (*Plan, error)

// InitFunc computes parameter values from the base weight.
type InitFunc func(l Layer, c Config, base []float32, seed uint64) (map[string][]float32, error)

// FuncAdapter is an Adapter made from functions; see NewAdapter.
type FuncAdapter struct {
	name, doc string
	keys      []ConfigKey
	plan      PlanFunc
	init      InitFunc
	resize    ResizeFunc
	extract   ExtractFunc
	concat    ConcatFunc
	peft      *PEFTForm
}

// NewAdapter returns an adapter called name with the given configuration
// keys and planning function.
func NewAdapter(name, doc string, keys []ConfigKey, plan PlanFunc) *FuncAdapter {
	return &FuncAdapter{name: name, doc: doc, keys: keys, plan: plan}
}

// WithInit adds a function computing parameters with the Computed rule.
func (a *FuncAdapter) WithInit(f InitFunc) *FuncAdapter { a.init = f; return a }

// Name returns the component name.
func (a *FuncAdapter) Name() string { return a.name }

// Doc returns the component documentation.
func (a *FuncAdapter) Doc() string { return a.doc }

// Config returns the configuration keys.
func (a *FuncAdapter) Config() []ConfigKey { return a.keys }

// Plan calls the planning function.
func (a *FuncAdapter) Plan(l Layer, c Config) (*Plan, error) { return a.plan(l, c) }

// Init calls the init function.
func (a *FuncAdapter) Init(l Layer, c Config, base []float32, seed uint64) (map[string][]float32, error) {
	if a.init == nil {
		return nil, fmt.Errorf("adapter %s computes no parameters", a.name)
	}
	return a.init(l, c, base, seed)
}

// Config is a component's configuration: the values given, checked against
// the declared keys, with defaults for the rest. Values arrive typed (an
// integer key holds an int). Its accessors are for declared keys only: a
// misspelt or mistyped key in plugin code is a bug that the SDK reports to
// the host as an error naming the key and the declared ones (the accessor
// panics with a *ConfigError, which the plugin server recovers).
type Config struct {
	values map[string]any
	known  []string
	types  map[string]string
}

// ConfigError reports a configuration accessor used with an undeclared key
// or the wrong type.
type ConfigError struct {
	Key   string
	Want  string
	Have  string // the declared type, empty when the key is undeclared
	Known []string
}

func (e *ConfigError) Error() string {
	if e.Have == "" {
		return fmt.Sprintf("config key %q is not declared (declared: %s)", e.Key, strings.Join(e.Known, ", "))
	}
	return fmt.Sprintf("config key %q is declared %s, read as %s (declared: %s)", e.Key, e.Have, e.Want, strings.Join(e.Known, ", "))
}

// NewConfig validates values against keys: unknown keys and values of the
// wrong type are errors; missing keys take their defaults.
func NewConfig(keys []ConfigKey, values map[string]any) (Config, error) {
	out := map[string]any{}
	known := map[string]ConfigKey{}
	types := map[string]string{}
	var names []string
	for _, k := range keys {
		known[k.Name] = k
		types[k.Name] = k.Type
		names = append(names, k.Name)
		def, err := coerce(k.Type, k.Default)
		if err != nil && k.Default != nil {
			return Config{}, fmt.Errorf("config key %q: default: %w", k.Name, err)
		}
		out[k.Name] = def
	}
	var unknown []string
	for name, v := range values {
		k, ok := known[name]
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		cv, err := coerce(k.Type, v)
		if err != nil {
			return Config{}, fmt.Errorf("config key %q: %w", name, err)
		}
		out[name] = cv
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Config{}, fmt.Errorf("unknown config keys %s (known: %s)", strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	return Config{values: out, known: names, types: types}, nil
}

func coerce(typ string, v any) (any, error) {
	switch typ {
	case "int":
		switch x := v.(type) {
		case int:
			return x, nil
		case int64:
			return int(x), nil
		case float64:
			if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
				return nil, fmt.Errorf("%v is not an integer", x)
			}
			return int(x), nil
		}
	case "float":
		switch x := v.(type) {
		case float64:
			return x, nil
		case int:
			return float64(x), nil
		case int64:
			return float64(x), nil
		}
	case "bool":
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case "string":
		if s, ok := v.(string); ok {
			return s, nil
		}
	case "strings":
		switch x := v.(type) {
		case []string:
			return x, nil
		case []any:
			out := make([]string, len(x))
			for i, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("element %d is %T, want string", i, e)
				}
				out[i] = s
			}
			return out, nil
		}
	case "any":
		return v, nil
	default:
		return nil, fmt.Errorf("unknown key type %q", typ)
	}
	return nil, fmt.Errorf("%v (%T) is not of type %s", v, v, typ)
}

// get returns a declared key's value, panicking with a *ConfigError when
// the key is undeclared or declared with another type than want.
func (c Config) get(name, want string) any {
	typ, ok := c.types[name]
	if !ok {
		panic(&ConfigError{Key: name, Want: want, Known: c.known})
	}
	if want != "any" && typ != want && typ != "any" {
		panic(&ConfigError{Key: name, Want: want, Have: typ, Known: c.known})
	}
	return c.values[name]
}

// Int returns an int key.
func (c Config) Int(name string) int {
	v, err := coerce("int", c.get(name, "int"))
	if err != nil {
		panic(&ConfigError{Key: name, Want: "int", Have: fmt.Sprintf("%T", c.values[name]), Known: c.known})
	}
	return v.(int)
}

// Float returns a float key.
func (c Config) Float(name string) float64 {
	v, err := coerce("float", c.get(name, "float"))
	if err != nil {
		panic(&ConfigError{Key: name, Want: "float", Have: fmt.Sprintf("%T", c.values[name]), Known: c.known})
	}
	return v.(float64)
}

// Bool returns a bool key.
func (c Config) Bool(name string) bool {
	b, ok := c.get(name, "bool").(bool)
	if !ok {
		panic(&ConfigError{Key: name, Want: "bool", Have: fmt.Sprintf("%T", c.values[name]), Known: c.known})
	}
	return b
}

// String returns a string key.
func (c Config) String(name string) string {
	s, ok := c.get(name, "string").(string)
	if !ok {
		panic(&ConfigError{Key: name, Want: "string", Have: fmt.Sprintf("%T", c.values[name]), Known: c.known})
	}
	return s
}

// Strings returns a list-of-strings key.
func (c Config) Strings(name string) []string {
	v, err := coerce("strings", c.get(name, "strings"))
	if err != nil {
		panic(&ConfigError{Key: name, Want: "strings", Have: fmt.Sprintf("%T", c.values[name]), Known: c.known})
	}
	s, _ := v.([]string)
	return s
}

// Value returns a declared key's value as given (any type).
func (c Config) Value(name string) any { return c.get(name, "any") }

// Map returns every key's value (defaults included), a fresh map.
func (c Config) Map() map[string]any {
	out := make(map[string]any, len(c.values))
	for k, v := range c.values {
		out[k] = v
	}
	return out
}

// guard turns a *ConfigError panic from an accessor into an error naming
// the component, so that a misspelt key is reported to the host as an
// error. Other panics are left alone: the host reports a crashed plugin.
func guard(component string, err *error) {
	if r := recover(); r != nil {
		if ce, ok := r.(*ConfigError); ok {
			*err = fmt.Errorf("adapter %s: %w", component, ce)
			return
		}
		panic(r)
	}
}

// server implements rpc.Interface (and rpc.RankSurgeon) over components.
type server struct {
	name, version string
	adapters      map[string]Adapter
	converters    map[string]Converter
	order         []string
}

// NewServer returns the protocol implementation for components (Adapters
// and Converters), for Serve and for in-process tests.
//
// The returned value also implements rpc.RankSurgeon: adapters that
// implement Resizer or Extractor offer rank surgery.
func NewServer(name, version string, components ...any) (rpc.Interface, error) {
	s := &server{name: name, version: version, adapters: map[string]Adapter{}, converters: map[string]Converter{}}
	for _, c := range components {
		switch v := c.(type) {
		case Adapter:
			if _, dup := s.adapters[v.Name()]; dup {
				return nil, fmt.Errorf("plugin %s: adapter %q registered twice", name, v.Name())
			}
			s.adapters[v.Name()] = v
			s.order = append(s.order, v.Name())
		case Converter:
			if _, dup := s.converters[v.Name()]; dup {
				return nil, fmt.Errorf("plugin %s: converter %q registered twice", name, v.Name())
			}
			s.converters[v.Name()] = v
			s.order = append(s.order, v.Name())
		default:
			return nil, fmt.Errorf("plugin %s: %T is neither an sdk.Adapter nor an sdk.Converter", name, c)
		}
	}
	return s, nil
}

func (s *server) Describe(context.Context) (*rpc.Description, error) {
	d := &rpc.Description{Name: s.name, Version: s.version}
	for _, n := range s.order {
		if a, ok := s.adapters[n]; ok {
			comp := rpc.Component{Name: n, Kind: rpc.KindAdapter, Doc: a.Doc(), Config: a.Config(), Capabilities: capabilities(a)}
			if l, ok := a.(Loader); ok {
				comp.PEFTTypes = l.PEFTTypes()
			}
			d.Components = append(d.Components, comp)
		} else {
			c := s.converters[n]
			d.Components = append(d.Components, rpc.Component{Name: n, Kind: rpc.KindConverter, Doc: c.Doc(), Config: c.Config(), From: c.From(), To: c.To()})
		}
	}
	return d, nil
}

func (s *server) adapter(name string, values map[string]any) (Adapter, Config, error) {
	a, ok := s.adapters[name]
	if !ok {
		return nil, Config{}, fmt.Errorf("plugin %s has no adapter %q", s.name, name)
	}
	c, err := NewConfig(a.Config(), values)
	if err != nil {
		return nil, Config{}, fmt.Errorf("adapter %s: %w", name, err)
	}
	return a, c, nil
}

func (s *server) Plan(_ context.Context, req rpc.PlanRequest) (p *rpc.Plan, err error) {
	a, c, err := s.adapter(req.Adapter, req.Config)
	if err != nil {
		return nil, err
	}
	defer guard(req.Adapter, &err)
	p, err = a.Plan(req.Layer, c)
	if err != nil {
		return nil, fmt.Errorf("adapter %s, layer %s: %w", req.Adapter, req.Layer.Path, err)
	}
	return p, nil
}

func (s *server) Init(_ context.Context, req rpc.InitRequest, base []float32) (out map[string][]float32, err error) {
	a, c, err := s.adapter(req.Adapter, req.Config)
	if err != nil {
		return nil, err
	}
	defer guard(req.Adapter, &err)
	in, ok := a.(Initializer)
	if !ok {
		return nil, fmt.Errorf("adapter %s computes no parameters", req.Adapter)
	}
	if len(base) != req.Layer.In*req.Layer.Out {
		return nil, fmt.Errorf("adapter %s, layer %s: base weight of %d values for [%d,%d]", req.Adapter, req.Layer.Path, len(base), req.Layer.Out, req.Layer.In)
	}
	return in.Init(req.Layer, c, base, req.Seed)
}

func (s *server) Convert(ctx context.Context, req rpc.ConvertRequest, progress func(rpc.Progress)) error {
	cv, ok := s.converters[req.Converter]
	if !ok {
		return fmt.Errorf("plugin %s has no converter %q", s.name, req.Converter)
	}
	c, err := NewConfig(cv.Config(), req.Options)
	if err != nil {
		return fmt.Errorf("converter %s: %w", req.Converter, err)
	}
	return cv.Convert(ctx, req.Src, req.Dst, req.To, c, func(done, total int64, msg string) {
		progress(rpc.Progress{Done: done, Total: total, Message: msg})
	})
}

// exitWithParent ends the plugin when the process that started it is gone
// (killed with SIGKILL, so it could not stop its plugins), instead of
// leaving an orphan behind.
func exitWithParent(logger hclog.Logger) {
	parent := os.Getppid()
	for range time.Tick(time.Second) {
		if os.Getppid() != parent {
			logger.Info("host process is gone; exiting")
			os.Exit(0)
		}
	}
}

// Serve runs the plugin: it speaks the protocol on stdin/stdout through
// go-plugin and logs JSON to stderr with hclog. It does not return.
func Serve(name, version string, components ...any) {
	impl, err := NewServer(name, version, components...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "surgeon-plugin-" + name, JSONFormat: true, Output: os.Stderr, Level: hclog.Info})
	go exitWithParent(logger)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  rpc.Handshake,
		VersionedPlugins: rpc.VersionedPlugins(impl),
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger:           logger,
	})
	os.Exit(0)
}
