package main

import (
	"testing"

	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
)

// The example plugin passes the same conformance suite as the built-ins.
func TestConformance(t *testing.T) {
	sdktest.Run(t, []any{Adapter}, []sdktest.Case{
		{Adapter: "loha", Config: map[string]any{"r": 2, "alpha": 4.0}, In: 9, Out: 7, Bias: true},
		{Adapter: "loha", Config: map[string]any{}, In: 16, Out: 12},
	})
}
