// Package rpc carries the surgeon plugin protocol between host and plugin:
// plain Go types for everything that crosses the process boundary, the
// go-plugin handshake and versioned plugin set, and the gRPC client and
// server that translate between those types and surgeon.plugin.v1.
//
// Plugin authors use plugins/sdk instead; the host uses plugins/host.
package rpc

import (
	"context"

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
}
