package sdk_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/plugins/sdk"
	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
)

// probe plans nothing useful: it reports, as its plan's note, the Go types
// of its config values as they arrived over gRPC, or reads the key named
// by "read" with the accessor named by "as".
func probe() *sdk.FuncAdapter {
	keys := []sdk.ConfigKey{
		{Name: "r", Type: "int", Default: 8, Doc: "an int"},
		{Name: "alpha", Type: "float", Default: 1.0, Doc: "a float"},
		{Name: "init", Type: "any", Default: true, Doc: "a bool or a string"},
		{Name: "names", Type: "strings", Default: []string{}, Doc: "strings"},
		{Name: "read", Type: "string", Default: "", Doc: "key to read"},
		{Name: "as", Type: "string", Default: "", Doc: "accessor"},
	}
	return sdk.NewAdapter("probe", "test adapter", keys, func(l sdk.Layer, c sdk.Config) (*sdk.Plan, error) {
		note := fmt.Sprintf("r:%T alpha:%T init:%T names:%T", c.Value("r"), c.Value("alpha"), c.Value("init"), c.Value("names"))
		switch c.String("as") {
		case "int":
			note = fmt.Sprint(c.Int(c.String("read")))
		case "bool":
			note = fmt.Sprint(c.Bool(c.String("read")))
		}
		f, m := sdk.NewProgram(), sdk.NewProgram()
		f.Output("y", f.X().Linear())
		m.Output("weight", m.W())
		return &sdk.Plan{Forward: f.Program(), Merge: m.Program(), Summary: sdk.Summary{Note: note}}, nil
	})
}

func TestTypedConfig(t *testing.T) {
	c := sdktest.Connect(t, probe())
	plan := func(cfg map[string]any) (string, error) {
		p, err := c.Plan(context.Background(), rpc.PlanRequest{Adapter: "probe", Layer: rpc.Layer{Path: "l", In: 2, Out: 2}, Config: cfg})
		if err != nil {
			return "", err
		}
		return p.Summary.Note, nil
	}
	cases := []struct {
		name string
		cfg  map[string]any
		want string // the note, or an error's substring after "error: "
	}{
		{"defaults", nil, "r:int alpha:float64 init:bool names:[]string"},
		{"toml int64 stays an int", map[string]any{"r": int64(16), "alpha": int64(32), "init": "pissa", "names": []any{"a"}}, "r:int alpha:float64 init:string names:[]string"},
		{"integral float for an int", map[string]any{"r": 4.0}, "r:int alpha:float64 init:bool names:[]string"},
		{"fractional int", map[string]any{"r": 4.5}, `error: adapter probe: config key "r": 4.5 is not an integer`},
		{"string for an int", map[string]any{"r": "8"}, `error: adapter probe: config key "r": 8 (string) is not of type int`},
		{"unknown key", map[string]any{"rank": 8}, "error: adapter probe: unknown config keys rank (known: r, alpha, init, names, read, as)"},
		{"accessor of an undeclared key", map[string]any{"read": "lora_alpha", "as": "int"}, `error: adapter probe: config key "lora_alpha" is not declared (declared: r, alpha, init, names, read, as)`},
		{"accessor of the wrong type", map[string]any{"read": "alpha", "as": "int"}, `error: adapter probe: config key "alpha" is declared float, read as int`},
		{"accessor of a key of type any", map[string]any{"read": "init", "as": "bool"}, "true"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := plan(tc.cfg)
			if err != nil {
				got = "error: " + err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
