// Package rpc carries the surgeon plugin protocol between host and plugin:
// plain Go types for everything that crosses the process boundary, the
// go-plugin handshake and versioned plugin set, and the gRPC client and
// server that translate between those types and surgeon.plugin.v1.
//
// Plugin authors use plugins/sdk instead; the host uses plugins/host.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/surgeon-ml/surgeon/plugins/program"
)

// ComponentKind is what a component of a plugin is.
type ComponentKind string

// The component kinds.
const (
	KindAdapter   ComponentKind = "adapter"
	KindConverter ComponentKind = "converter"
)

// ConfigKey documents one configuration key of a component.
type ConfigKey struct {
	Name string `json:"name"`
	// Type is int, float, bool, string or strings.
	Type string `json:"type"`
	// Default is the value used when the key is absent.
	Default any    `json:"default"`
	Doc     string `json:"doc"`
}

// Component is one adapter or converter a plugin binary provides.
type Component struct {
	Name   string        `json:"name"`
	Kind   ComponentKind `json:"kind"`
	Doc    string        `json:"doc"`
	Config []ConfigKey   `json:"config"`
	// From and To list a converter's source and target formats.
	From []string `json:"from,omitempty"`
	To   []string `json:"to,omitempty"`
	// Capabilities lists optional services the component offers:
	// CapResize and CapExtract for adapters.
	Capabilities []string `json:"capabilities,omitempty"`
	// PEFTTypes lists the PEFT peft_type values whose folders this adapter
	// reads back (LoadAdapter).
	PEFTTypes []string `json:"peft_types,omitempty"`
}

// Optional component capabilities.
const (
	// CapResize: the adapter reduces the rank of trained modules (Resize).
	CapResize = "resize"
	// CapExtract: the adapter is computed from the difference of a base and
	// a fine-tuned weight (Extract).
	CapExtract = "extract"
	// CapConcat: trained modules of several adapters combine exactly into
	// one whose update is their weighted sum (Concat).
	CapConcat = "concat"
)

// Offers reports whether the component lists capability c.
func (c Component) Offers(capability string) bool {
	for _, x := range c.Capabilities {
		if x == capability {
			return true
		}
	}
	return false
}

// Description is what Describe returns.
type Description struct {
	Name       string      `json:"name"`
	Version    string      `json:"version"`
	Components []Component `json:"components"`
}

// Layer is the target layer an adapter is planned for.
type Layer struct {
	Path    string `json:"path"`
	Kind    string `json:"kind"`
	In      int    `json:"in"`
	Out     int    `json:"out"`
	HasBias bool   `json:"has_bias"`
	DType   string `json:"dtype"`
}

// InitRule says how the host initialises a parameter.
type InitRule struct {
	// Rule is zeros, ones, constant (Value), normal (Std), kaiming_uniform
	// (A, PyTorch's nn.init.kaiming_uniform_ with fan_in = shape[1]) or
	// computed (values come from the plugin's Init).
	Rule  string  `json:"rule"`
	Std   float64 `json:"std,omitempty"`
	A     float64 `json:"a,omitempty"`
	Value float64 `json:"value,omitempty"`
}

// ParamSpec is one adapter parameter.
type ParamSpec struct {
	Name      string   `json:"name"`
	Shape     []int    `json:"shape"`
	Trainable bool     `json:"trainable"`
	Init      InitRule `json:"init"`
}

// Plan is an adapter's answer for one layer.
type Plan struct {
	Params  []ParamSpec      `json:"params"`
	Forward *program.Program `json:"forward"`
	Merge   *program.Program `json:"merge"`
	// NeedsInit is set when some parameter has the computed rule.
	NeedsInit bool `json:"needs_init"`
	// ReplacesBase is set when Init also returns "base.weight", a new
	// frozen base weight (PiSSA's residual).
	ReplacesBase bool `json:"replaces_base"`
	// Summary is what reports, sweeps and plan show about the module.
	Summary Summary `json:"summary"`
}

// Summary describes a planned module in the adapter's own terms, so that
// the host never reads an adapter's configuration keys.
type Summary struct {
	// Rank is the rank of the update (0 when the adapter has none).
	Rank int `json:"rank,omitempty"`
	// Scale is the update's scale factor (0 when not applicable).
	Scale float64 `json:"scale,omitempty"`
	// Alpha is the scale's numerator as the adapter's config names it.
	Alpha float64 `json:"alpha,omitempty"`
	// Note is a short description ("r=8 alpha=16").
	Note string `json:"note,omitempty"`
}

// PlanRequest asks an adapter for a layer's plan.
type PlanRequest struct {
	Adapter string         `json:"adapter"`
	Layer   Layer          `json:"layer"`
	Config  map[string]any `json:"config"`
}

// InitRequest asks for computed initial values.
type InitRequest struct {
	PlanRequest
	Seed uint64 `json:"seed"`
}

// BaseWeightName is the name under which Init returns a replacement base weight.
const BaseWeightName = "base.weight"

// ConvertRequest asks a converter to convert src into dst.
type ConvertRequest struct {
	Converter string         `json:"converter"`
	Src       string         `json:"src"`
	Dst       string         `json:"dst"`
	To        string         `json:"to"`
	Options   map[string]any `json:"options"`
}

// Progress is a converter's progress report.
type Progress struct {
	Done, Total int64
	Message     string
}

// Interface is what a plugin binary serves, in plain Go types.
type Interface interface {
	Describe(ctx context.Context) (*Description, error)
	Plan(ctx context.Context, req PlanRequest) (*Plan, error)
	// Init receives the base weight [out*in] row-major and returns the
	// computed parameters by name (and BaseWeightName when replacing the base).
	Init(ctx context.Context, req InitRequest, base []float32) (map[string][]float32, error)
	Convert(ctx context.Context, req ConvertRequest, progress func(Progress)) error
	// SaveAdapter returns adapter_config.json's adapter-specific keys
	// (with peft_type) for the modules of one run.
	SaveAdapter(ctx context.Context, req SaveRequest) (map[string]any, error)
	// LoadAdapter reads a PEFT config and tensor list back into modules.
	LoadAdapter(ctx context.Context, req LoadRequest) ([]LoadedModule, error)
}

// TensorInfo is a tensor's name and shape.
type TensorInfo struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
}

// SavedModule is one adapted module to save.
type SavedModule struct {
	Path   string         `json:"path"`
	Layer  Layer          `json:"layer"`
	Config map[string]any `json:"config"`
	// Params are the module's parameters as planned.
	Params []TensorInfo `json:"params"`
}

// SaveRequest asks an adapter how the modules of one run are saved.
type SaveRequest struct {
	Adapter string        `json:"adapter"`
	Modules []SavedModule `json:"modules"`
}

// LoadRequest asks an adapter to read a saved PEFT folder back.
type LoadRequest struct {
	// Adapter is the component claiming the folder's peft_type.
	Adapter string `json:"adapter"`
	// Config is adapter_config.json as decoded JSON.
	Config map[string]any `json:"config"`
	// Tensors are every saved tensor, without PEFT's prefix.
	Tensors []TensorInfo `json:"tensors"`
}

// LoadedModule is one module of a saved adapter.
type LoadedModule struct {
	Path    string         `json:"path"`
	Adapter string         `json:"adapter"`
	Config  map[string]any `json:"config"`
	// Params maps saved tensor names (without prefix) to planned parameter
	// names.
	Params map[string]string `json:"params"`
}

// Tensor is a tensor's shape and float32 values, row-major.
type Tensor struct {
	Shape []int     `json:"shape"`
	Data  []float32 `json:"-"`
}

// Rank selection methods of rank surgery.
const (
	// MethodRank keeps a fixed number of singular values (Rank).
	MethodRank = "rank"
	// MethodEnergy keeps the smallest rank whose singular values hold the
	// fraction Value of the squared Frobenius norm.
	MethodEnergy = "energy"
	// MethodSVRatio keeps the singular values >= max/Value (kohya's sv_ratio).
	MethodSVRatio = "sv_ratio"
	// MethodSVFro keeps the smallest rank holding the fraction Value of the
	// Frobenius norm: sqrt(cumulative sum of s^2 / total) >= Value (kohya's
	// sv_fro), i.e. MethodEnergy with Value^2.
	MethodSVFro = "sv_fro"
	// MethodSVCumulative keeps the smallest rank whose singular values sum
	// to the fraction Value of their total (kohya's sv_cumulative).
	MethodSVCumulative = "sv_cumulative"
)

// Methods lists the rank selection methods.
var Methods = []string{MethodRank, MethodEnergy, MethodSVRatio, MethodSVFro, MethodSVCumulative}

// RankSelection says how rank surgery chooses a module's new rank.
type RankSelection struct {
	// Method is one of Methods.
	Method string `json:"method"`
	// Rank is the rank of MethodRank, and an upper bound for the other
	// methods (0: none).
	Rank int `json:"rank,omitempty"`
	// Value is the fraction (energy, sv_fro, sv_cumulative) or the ratio
	// (sv_ratio) of the other methods.
	Value float64 `json:"value,omitempty"`
}

// Validate checks the method and its parameters.
func (s RankSelection) Validate() error {
	if s.Rank < 0 {
		return fmt.Errorf("rank must be positive, got %d", s.Rank)
	}
	switch s.Method {
	case MethodRank:
		if s.Rank <= 0 {
			return fmt.Errorf("rank must be positive, got %d", s.Rank)
		}
	case MethodEnergy, MethodSVFro, MethodSVCumulative:
		if !(s.Value > 0 && s.Value <= 1) {
			return fmt.Errorf("%s needs a fraction in (0,1], got %v", s.Method, s.Value)
		}
	case MethodSVRatio:
		if !(s.Value >= 1) || math.IsInf(s.Value, 0) {
			return fmt.Errorf("sv_ratio needs a finite ratio >= 1, got %v", s.Value)
		}
	default:
		return fmt.Errorf("unknown rank selection method %q (known: rank, energy, sv_ratio, sv_fro, sv_cumulative)", s.Method)
	}
	return nil
}

// String describes the selection, e.g. "rank 8" or "energy 0.9 (at most rank 16)".
func (s RankSelection) String() string {
	if s.Method == MethodRank {
		return fmt.Sprintf("rank %d", s.Rank)
	}
	out := fmt.Sprintf("%s %g", s.Method, s.Value)
	if s.Rank > 0 {
		out += fmt.Sprintf(" (at most rank %d)", s.Rank)
	}
	return out
}

// RankRequest asks an adapter for rank surgery on one module.
type RankRequest struct {
	// Adapter is the component, e.g. "lora".
	Adapter string `json:"adapter"`
	// Layer is the module (path, in and out features).
	Layer Layer `json:"layer"`
	// Config is the module's adapter configuration (for Resize: its r,
	// lora_alpha...; for Extract: options of the new adapter).
	Config map[string]any `json:"config"`
	Select RankSelection  `json:"select"`
	// Parts and Weights are, for Concat, each adapter's configuration of
	// the module and its weight in the sum.
	Parts   []map[string]any `json:"parts,omitempty"`
	Weights []float64        `json:"weights,omitempty"`
}

// RankResult is a module after rank surgery.
type RankResult struct {
	// Tensors are the module's new parameters by name (PEFT names).
	Tensors map[string]Tensor `json:"-"`
	// Config is the module's new adapter configuration (r, lora_alpha...).
	Config map[string]any `json:"config"`
	// OldRank is the rank before (Resize; 0 for Extract), NewRank after.
	OldRank int `json:"old_rank"`
	NewRank int `json:"new_rank"`
	// Energy is the retained fraction of the squared Frobenius norm of the
	// module's update: ||new||_F^2 / ||full||_F^2.
	Energy float64 `json:"energy"`
	// SingularValues of the full update, descending; the first NewRank are kept.
	SingularValues []float64 `json:"singular_values,omitempty"`
	// Skipped is set when the module yields no adapter; Note says why.
	Skipped bool   `json:"skipped,omitempty"`
	Note    string `json:"note,omitempty"`
}

// ExtractBase and ExtractTuned name the tensors Extract receives.
const (
	ExtractBase  = "base"
	ExtractTuned = "finetuned"
)

// RankSurgeon is the optional rank-surgery part of the protocol. A
// plugin's server offers it when its implementation does; the Client
// always does (an older plugin answers with ErrUnsupported).
type RankSurgeon interface {
	// Resize reduces the rank of one module given its parameters by name.
	Resize(ctx context.Context, req RankRequest, params map[string]Tensor) (*RankResult, error)
	// Extract computes one module's adapter from its base and fine-tuned
	// weights, both [Layer.Out, Layer.In] row-major.
	Extract(ctx context.Context, req RankRequest, base, tuned []float32) (*RankResult, error)
	// Concat combines one module of several adapters (req.Parts,
	// req.Weights) given their parameters named "<part>/<name>".
	Concat(ctx context.Context, req RankRequest, params map[string]Tensor) (*RankResult, error)
}

// PartName names part i's parameter in a Concat request.
func PartName(i int, name string) string { return fmt.Sprintf("%d/%s", i, name) }

// ErrUnsupported reports that a plugin or component does not offer a service.
var ErrUnsupported = errors.New("not supported")
