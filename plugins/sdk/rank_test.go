package sdk_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/hashicorp/go-plugin"

	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/plugins/sdk"
)

func TestChooseRank(t *testing.T) {
	// s^2 = 16, 9, 4, 1, 0 (total 30); s sums to 10.
	s := []float64{4, 3, 2, 1, 0}
	for _, tc := range []struct {
		sel    sdk.RankSelection
		max    int
		k      int
		energy float64
	}{
		{sdk.RankSelection{Method: "rank", Rank: 2}, 5, 2, 25.0 / 30},
		{sdk.RankSelection{Method: "rank", Rank: 9}, 4, 4, 1},
		{sdk.RankSelection{Method: "energy", Value: 25.0 / 30}, 5, 2, 25.0 / 30},
		{sdk.RankSelection{Method: "energy", Value: 0.84}, 5, 3, 29.0 / 30},
		{sdk.RankSelection{Method: "energy", Value: 1}, 5, 4, 1},
		{sdk.RankSelection{Method: "energy", Value: 1, Rank: 2}, 5, 2, 25.0 / 30},
		{sdk.RankSelection{Method: "sv_fro", Value: math.Sqrt(25.0 / 30)}, 5, 2, 25.0 / 30},
		{sdk.RankSelection{Method: "sv_fro", Value: 0.92}, 5, 3, 29.0 / 30}, // 0.92^2 = 0.8464 > 25/30
		{sdk.RankSelection{Method: "sv_ratio", Value: 2}, 5, 3, 29.0 / 30},  // keep >= 2
		{sdk.RankSelection{Method: "sv_ratio", Value: 1.5}, 5, 2, 25.0 / 30},
		{sdk.RankSelection{Method: "sv_cumulative", Value: 0.7}, 5, 2, 25.0 / 30},
		{sdk.RankSelection{Method: "sv_cumulative", Value: 0.71}, 5, 3, 29.0 / 30},
	} {
		k, e, err := sdk.ChooseRank(s, tc.sel, tc.max)
		if err != nil {
			t.Fatalf("%v: %v", tc.sel, err)
		}
		if k != tc.k || math.Abs(e-tc.energy) > 1e-12 {
			t.Errorf("%v: rank %d energy %v, want %d %v", tc.sel, k, e, tc.k, tc.energy)
		}
	}
	if k, e, _ := sdk.ChooseRank([]float64{0, 0}, sdk.RankSelection{Method: "energy", Value: 0.5}, 2); k != 1 || e != 1 {
		t.Errorf("zero spectrum: rank %d energy %v", k, e)
	}
	for _, bad := range []sdk.RankSelection{{Method: "rank"}, {Method: "energy", Value: 1.5}, {Method: "sv_ratio", Value: 0.5}, {Method: "svd", Value: 1}, {Method: "energy", Value: 0.5, Rank: -1}} {
		if _, _, err := sdk.ChooseRank(s, bad, 5); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// A component without Resizer/Extractor advertises no capability and its
// rank-surgery calls fail with ErrUnsupported through the client.
func TestRankCapabilities(t *testing.T) {
	plan := func(l sdk.Layer, c sdk.Config) (*sdk.Plan, error) { return nil, errors.New("unused") }
	resize := func(l sdk.Layer, c sdk.Config, sel sdk.RankSelection, p map[string]sdk.Tensor) (*sdk.RankResult, error) {
		return &sdk.RankResult{Tensors: p, Config: map[string]any{"r": 1}, NewRank: sel.Rank, Energy: 1}, nil
	}
	plain := sdk.NewAdapter("plain", "no rank surgery", nil, plan)
	sized := sdk.NewAdapter("sized", "resize only", nil, plan).WithResize(resize)
	impl, err := sdk.NewServer("t", "0", plain, sized)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := plugin.TestPluginGRPCConn(t, false, rpc.VersionedPlugins(impl)[rpc.ProtocolVersion])
	defer client.Close()
	raw, err := client.Dispense(rpc.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(*rpc.Client)
	d, err := c.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Components[0].Capabilities) != 0 || !d.Components[1].Offers(rpc.CapResize) || d.Components[1].Offers(rpc.CapExtract) {
		t.Fatalf("capabilities %+v", d.Components)
	}
	sel := rpc.RankSelection{Method: "rank", Rank: 1}
	params := map[string]rpc.Tensor{"x": {Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}}}
	if _, err := c.Resize(context.Background(), rpc.RankRequest{Adapter: "plain", Select: sel}, params); !errors.Is(err, rpc.ErrUnsupported) {
		t.Fatalf("plain resize: %v", err)
	}
	if _, err := c.Extract(context.Background(), rpc.RankRequest{Adapter: "sized", Layer: rpc.Layer{In: 1, Out: 1}, Select: sel}, []float32{0}, []float32{1}); !errors.Is(err, rpc.ErrUnsupported) {
		t.Fatalf("sized extract: %v", err)
	}
	res, err := c.Resize(context.Background(), rpc.RankRequest{Adapter: "sized", Select: sel}, params)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Tensors["x"]; len(got.Shape) != 2 || got.Data[3] != 4 || res.NewRank != 1 {
		t.Fatalf("round trip: %+v", res)
	}
}

// Tensors larger than one chunk cross the stream intact.
func TestResizeChunks(t *testing.T) {
	echo := func(l sdk.Layer, c sdk.Config, sel sdk.RankSelection, p map[string]sdk.Tensor) (*sdk.RankResult, error) {
		return &sdk.RankResult{Tensors: p, Config: map[string]any{}, NewRank: 1}, nil
	}
	impl, _ := sdk.NewServer("t", "0", sdk.NewAdapter("echo", "echo", nil, nil).WithResize(echo))
	client, _ := plugin.TestPluginGRPCConn(t, false, rpc.VersionedPlugins(impl)[rpc.ProtocolVersion])
	defer client.Close()
	raw, _ := client.Dispense(rpc.PluginName)
	big := make([]float32, 3<<18+5)
	for i := range big {
		big[i] = float32(i)
	}
	res, err := raw.(*rpc.Client).Resize(context.Background(), rpc.RankRequest{Adapter: "echo", Select: rpc.RankSelection{Method: "rank", Rank: 1}},
		map[string]rpc.Tensor{"big": {Shape: []int{len(big)}, Data: big}, "empty": {Shape: []int{0, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	got := res.Tensors["big"].Data
	for i := range big {
		if got[i] != big[i] {
			t.Fatalf("value %d = %v", i, got[i])
		}
	}
	if e := res.Tensors["empty"]; len(e.Data) != 0 || len(e.Shape) != 2 {
		t.Fatalf("empty tensor: %+v", e)
	}
}
