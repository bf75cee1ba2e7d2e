package rpc_test

import (
	"context"
	"errors"
	"testing"

	"github.com/hashicorp/go-plugin"

	"github.com/surgeon-ml/surgeon/plugins/rpc"
)

// old is a plugin implementation from before rank surgery: it does not
// implement rpc.RankSurgeon.
type old struct{ rpc.Interface }

// Against such a plugin the client reports ErrUnsupported.
func TestRankSurgeryUnsupportedByOldPlugins(t *testing.T) {
	client, _ := plugin.TestPluginGRPCConn(t, false, rpc.VersionedPlugins(old{})[rpc.ProtocolVersion])
	defer client.Close()
	raw, err := client.Dispense(rpc.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(*rpc.Client)
	sel := rpc.RankSelection{Method: "rank", Rank: 1}
	if _, err := c.Resize(context.Background(), rpc.RankRequest{Adapter: "x", Select: sel}, nil); !errors.Is(err, rpc.ErrUnsupported) {
		t.Fatalf("resize: %v", err)
	}
	if _, err := c.Extract(context.Background(), rpc.RankRequest{Adapter: "x", Layer: rpc.Layer{In: 1, Out: 1}, Select: sel}, []float32{0}, []float32{1}); !errors.Is(err, rpc.ErrUnsupported) {
		t.Fatalf("extract: %v", err)
	}
}

func TestRankSelectionValidate(t *testing.T) {
	for _, tc := range []struct {
		sel rpc.RankSelection
		ok  bool
	}{
		{rpc.RankSelection{Method: "rank", Rank: 4}, true},
		{rpc.RankSelection{Method: "rank"}, false},
		{rpc.RankSelection{Method: "energy", Value: 0.9, Rank: 8}, true},
		{rpc.RankSelection{Method: "energy", Value: 0}, false},
		{rpc.RankSelection{Method: "sv_fro", Value: 1}, true},
		{rpc.RankSelection{Method: "sv_cumulative", Value: 1.01}, false},
		{rpc.RankSelection{Method: "sv_ratio", Value: 10}, true},
		{rpc.RankSelection{Method: "sv_ratio", Value: 0.5}, false},
		{rpc.RankSelection{Method: "energy", Value: 0.5, Rank: -1}, false},
		{rpc.RankSelection{Method: "truncate", Value: 0.5}, false},
	} {
		if err := tc.sel.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.sel, err)
		}
	}
}
