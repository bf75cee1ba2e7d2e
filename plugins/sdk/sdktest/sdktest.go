// Package sdktest is the conformance suite for adapter plugins. A plugin
// author calls Run from a test with the plugin's components and a few
// configurations; it talks to them over real gRPC, exactly as the host
// does, and checks that every adapter describes itself, plans valid
// programs, initialises, trains (gradients reach its trainable parameters,
// and agree with finite differences of an independent interpreter of its
// programs: see CheckGradients) and merges: forward(x) == x*merge(W)^T +
// merge(b).
package sdktest

import (
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/plugins/sdk"
	"github.com/surgeon-ml/surgeon/surgery/adapter"
)

// Case is one adapter configuration to check on one layer shape.
type Case struct {
	Adapter string
	Config  map[string]any
	In, Out int
	Bias    bool
}

// Connect serves components over an in-process gRPC connection through
// go-plugin and returns the host-side client.
func Connect(t testing.TB, components ...any) rpc.Interface {
	t.Helper()
	impl, err := sdk.NewServer("sdktest", "0.0.0", components...)
	if err != nil {
		t.Fatal(err)
	}
	// go-plugin's test connection logs at debug level to hclog's default
	// output; keep test output readable.
	hclog.DefaultOutput = io.Discard
	client, _ := plugin.TestPluginGRPCConn(t, false, rpc.VersionedPlugins(impl)[rpc.ProtocolVersion])
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(rpc.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(rpc.Interface)
}

// Build plans and initialises an adapted layer over a random base layer
// through the client, as the host does.
func Build(t testing.TB, c rpc.Interface, cs Case, seed uint64) *adapter.Adapted {
	t.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 1))
	base := layer.NewLinear(cs.In, cs.Out, cs.Bias)
	for _, p := range []*nn.Param{base.Weight, base.Bias} {
		if p == nil {
			continue
		}
		for i := range ops.Data(p) {
			ops.Data(p)[i] = float32(r.NormFloat64() * 0.5)
		}
		p.SetRequiresGrad(false)
	}
	l := rpc.Layer{Path: "test.layer", Kind: "linear", In: cs.In, Out: cs.Out, HasBias: cs.Bias, DType: "F32"}
	req := rpc.PlanRequest{Adapter: cs.Adapter, Layer: l, Config: cs.Config}
	plan, err := c.Plan(ctx, req)
	if err != nil {
		t.Fatalf("%s: plan: %v", cs.Adapter, err)
	}
	var computed map[string][]float32
	if plan.NeedsInit {
		computed, err = c.Init(ctx, rpc.InitRequest{PlanRequest: req, Seed: seed}, ops.Data(base.Weight))
		if err != nil {
			t.Fatalf("%s: init: %v", cs.Adapter, err)
		}
	}
	a, err := adapter.New(base, l.Path, cs.Adapter, cs.Config, plan, computed, seed)
	if err != nil {
		t.Fatalf("%s: %v", cs.Adapter, err)
	}
	return a
}

// Run checks every case against the components: description, planning,
// initialisation, the merge, which parameters receive gradients, refusal of
// unknown configuration keys, and CheckGradients (forward values, merge and
// gradients against a float64 interpreter and finite differences). The
// gradient check perturbs every parameter element in turn: keep the cases'
// In and Out small (16 or less) so that it stays cheap.
func Run(t *testing.T, components []any, cases []Case) {
	c := Connect(t, components...)
	d, err := c.Describe(context.Background())
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	described := map[string]bool{}
	for _, comp := range d.Components {
		described[comp.Name] = true
		if comp.Doc == "" {
			t.Errorf("component %s has no documentation", comp.Name)
		}
		for _, k := range comp.Config {
			if k.Doc == "" || k.Type == "" {
				t.Errorf("component %s key %s lacks a type or documentation", comp.Name, k.Name)
			}
		}
	}
	for _, cs := range cases {
		cs := cs
		t.Run(cs.Adapter, func(t *testing.T) {
			if !described[cs.Adapter] {
				t.Fatalf("adapter %s is not in Describe", cs.Adapter)
			}
			a := Build(t, c, cs, 42)
			// Perturb every parameter so that the adapter path is not a no-op
			// (LoRA's B starts at zero), then check the merge.
			r := rand.New(rand.NewPCG(9, 9))
			for _, p := range a.Values {
				for i := range ops.Data(p) {
					ops.Data(p)[i] += float32(r.NormFloat64() * 0.1)
				}
			}
			if err := a.CheckMerge(5, 3, 1e-4); err != nil {
				t.Fatal(err)
			}
			// Gradients reach every trainable parameter and no frozen one.
			x := ops.New(4, cs.In, make([]float32, 4*cs.In))
			for i := range ops.Data(x) {
				ops.Data(x)[i] = float32(r.NormFloat64())
			}
			y := a.Forward(x)
			g := make([]float32, y.Value().Size())
			for i := range g {
				g[i] = 1
			}
			y.AccGrad(ops.New(ops.Rows(y), ops.Cols(y), g))
			if err := ops.Backward(y); err != nil {
				t.Fatal(err)
			}
			for i, p := range a.Values {
				if a.Train[i] != p.HasGrad() {
					t.Errorf("parameter %s: trainable=%v but has gradient=%v", a.Names[i], a.Train[i], p.HasGrad())
				}
			}
			if a.Base.Weight.HasGrad() {
				t.Errorf("the frozen base weight received a gradient")
			}
			// The forward value, the merge and the gradients are right:
			// checked against a float64 interpreter of the programs and
			// finite differences.
			if err := CheckGradients(a, 3, 5); err != nil {
				t.Error(err)
			}
			// Unknown configuration keys are refused.
			bad := map[string]any{"no_such_key": 1}
			for k, v := range cs.Config {
				bad[k] = v
			}
			if _, err := c.Plan(context.Background(), rpc.PlanRequest{Adapter: cs.Adapter, Layer: rpc.Layer{Path: "x", In: cs.In, Out: cs.Out}, Config: bad}); err == nil {
				t.Errorf("unknown config key accepted")
			}
		})
	}
}
