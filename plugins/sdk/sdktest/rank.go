package sdktest

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/adapter"
)

// RunRank is the conformance suite for rank surgery: for every case whose
// adapter advertises the "resize" capability it checks, over real gRPC, that
// resizing a trained module to its own rank keeps its merged weight (the
// effective scale is kept), that resizing to rank 1 gives parameters and a
// configuration the adapter plans and merges with, with a retained energy
// in (0,1], and that the capability is honoured (a resize call on an adapter
// without it fails). Cases of adapters without the capability only check
// that refusal.
func RunRank(t *testing.T, components []any, cases []Case) {
	c := Connect(t, components...)
	rs, ok := c.(rpc.RankSurgeon)
	if !ok {
		t.Fatal("the client offers no rank surgery")
	}
	d, err := c.Describe(context.Background())
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	offers := map[string]bool{}
	for _, comp := range d.Components {
		offers[comp.Name] = comp.Offers(rpc.CapResize)
	}
	for _, cs := range cases {
		t.Run(cs.Adapter, func(t *testing.T) {
			ctx := context.Background()
			a := Build(t, c, cs, 7)
			r := rand.New(rand.NewPCG(3, 3))
			for _, p := range a.Values {
				for i := range ops.Data(p) {
					ops.Data(p)[i] += float32(r.NormFloat64() * 0.1)
				}
			}
			params := map[string]rpc.Tensor{}
			for i, n := range a.Names {
				params[n] = rpc.Tensor{Shape: a.Shapes[i], Data: append([]float32(nil), ops.Data(a.Values[i])...)}
			}
			l := rpc.Layer{Path: "test.layer", Kind: "linear", In: cs.In, Out: cs.Out, HasBias: cs.Bias, DType: "F32"}
			req := rpc.RankRequest{Adapter: cs.Adapter, Layer: l, Config: cs.Config, Select: rpc.RankSelection{Method: rpc.MethodRank, Rank: 1 << 20}}
			res, err := rs.Resize(ctx, req, params)
			if !offers[cs.Adapter] {
				if err == nil {
					t.Fatal("resize succeeded on an adapter that does not advertise it")
				}
				return
			}
			if err != nil {
				t.Fatalf("resize to its own rank: %v", err)
			}
			if res.Energy < 1-1e-9 || res.NewRank != res.OldRank {
				t.Fatalf("resize to its own rank: rank %d -> %d, energy %v", res.OldRank, res.NewRank, res.Energy)
			}
			want, err := a.Merged()
			if err != nil {
				t.Fatal(err)
			}
			got := rebuild(t, c, cs, a, res)
			w, g := ops.Data(want.Weight), ops.Data(got.Weight)
			var diff, norm float64
			for i := range w {
				diff += float64(g[i]-w[i]) * float64(g[i]-w[i])
				norm += float64(w[i]) * float64(w[i])
			}
			if math.Sqrt(diff) > 1e-5*math.Sqrt(norm) {
				t.Fatalf("resize to its own rank changed the merged weight by %.3g (of %.3g)", math.Sqrt(diff), math.Sqrt(norm))
			}
			req.Select = rpc.RankSelection{Method: rpc.MethodRank, Rank: 1}
			res, err = rs.Resize(ctx, req, params)
			if err != nil {
				t.Fatalf("resize to rank 1: %v", err)
			}
			if res.NewRank != 1 || !(res.Energy > 0 && res.Energy <= 1) {
				t.Fatalf("resize to rank 1: rank %d, energy %v", res.NewRank, res.Energy)
			}
			rebuild(t, c, cs, a, res)
			req.Select = rpc.RankSelection{Method: "no_such_method"}
			if _, err := rs.Resize(ctx, req, params); err == nil {
				t.Fatal("an unknown rank selection method was accepted")
			}
		})
	}
}

// rebuild plans the adapter with the resized configuration, loads the
// resized parameters over the original base and returns its merged layer.
func rebuild(t *testing.T, c rpc.Interface, cs Case, a *adapter.Adapted, res *rpc.RankResult) *layer.Linear {
	t.Helper()
	cfg := map[string]any{}
	for k, v := range cs.Config {
		cfg[k] = v
	}
	for k, v := range res.Config {
		cfg[k] = v
	}
	l := rpc.Layer{Path: "test.layer", Kind: "linear", In: cs.In, Out: cs.Out, HasBias: cs.Bias, DType: "F32"}
	// A resized module is a trained one: no initialisation from the base.
	if _, ok := cfg["init_lora_weights"]; ok {
		cfg["init_lora_weights"] = true
	}
	plan, err := c.Plan(context.Background(), rpc.PlanRequest{Adapter: cs.Adapter, Layer: l, Config: cfg})
	if err != nil {
		t.Fatalf("plan with the resized config %v: %v", res.Config, err)
	}
	vals := map[string][]float32{}
	for n, tt := range res.Tensors {
		vals[n] = tt.Data
	}
	b, err := adapter.New(a.Base, l.Path, cs.Adapter, cfg, plan, vals, 1)
	if err != nil {
		t.Fatalf("resized parameters do not fit the resized plan: %v", err)
	}
	for i, n := range b.Names {
		if _, ok := vals[n]; !ok && b.Train[i] {
			t.Fatalf("resize returned no value for parameter %s", n)
		}
	}
	m, err := b.Merged()
	if err != nil {
		t.Fatal(err)
	}
	return m
}
