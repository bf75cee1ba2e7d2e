package ia3

import (
	"testing"

	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	sdktest.Run(t, Adapters(), []sdktest.Case{
		{Adapter: "ia3", Config: map[string]any{}, In: 12, Out: 10, Bias: true},
		{Adapter: "ia3", Config: map[string]any{"feedforward": true}, In: 12, Out: 10, Bias: true},
		{Adapter: "ia3", Config: map[string]any{"feedforward": false}, In: 5, Out: 9},
	})
}
