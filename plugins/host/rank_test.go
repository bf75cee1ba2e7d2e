package host_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/internal/plugintest"
	"github.com/surgeon-ml/surgeon/plugins/host"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
)

// Rank surgery routes to the plugin providing the adapter; an adapter
// without the capability gives an error naming its plugin.
func TestRouterRankSurgery(t *testing.T) {
	m := plugintest.Manager(t, host.Options{}, "lora", "ia3")
	if c := m.Lock().Plugins["lora"].Components[0]; !c.Offers(rpc.CapResize) || !c.Offers(rpc.CapExtract) {
		t.Fatalf("the lock file does not record lora's capabilities: %+v", c)
	}
	r := m.Adapters()
	ctx := context.Background()
	a := make([]float32, 2*8)
	b := make([]float32, 8*2)
	for i := range a {
		a[i], b[i] = float32(i%5)-2, float32(i%3)-1
	}
	res, err := r.Resize(ctx, rpc.RankRequest{Adapter: "lora", Layer: layer, Config: map[string]any{"r": 2, "lora_alpha": 4.0},
		Select: rpc.RankSelection{Method: "rank", Rank: 1}},
		map[string]rpc.Tensor{"lora_A.weight": {Shape: []int{2, 8}, Data: a}, "lora_B.weight": {Shape: []int{8, 2}, Data: b}})
	if err != nil {
		t.Fatal(err)
	}
	if res.NewRank != 1 || res.Config["lora_alpha"].(float64) != 2 {
		t.Fatalf("rank %d alpha %v", res.NewRank, res.Config["lora_alpha"])
	}
	_, err = r.Resize(ctx, rpc.RankRequest{Adapter: "ia3", Layer: layer, Select: rpc.RankSelection{Method: "rank", Rank: 1}},
		map[string]rpc.Tensor{"ia3_l": {Shape: []int{8, 1}, Data: make([]float32, 8)}})
	if !errors.Is(err, rpc.ErrUnsupported) || !strings.Contains(err.Error(), "plugin ia3") {
		t.Fatalf("ia3 resize: %v", err)
	}
	base := make([]float32, 64)
	tuned := make([]float32, 64)
	tuned[9] = 1
	res, err = r.Extract(ctx, rpc.RankRequest{Adapter: "lora", Layer: layer, Select: rpc.RankSelection{Method: "energy", Value: 1}}, base, tuned)
	if err != nil || res.NewRank != 1 || res.Energy != 1 {
		t.Fatalf("extract: %+v %v", res, err)
	}
}
