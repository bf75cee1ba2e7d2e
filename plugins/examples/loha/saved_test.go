package main

import (
	"testing"

	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
)

// LoHa survives training, saving as a PEFT LOHA folder and loading back.
func TestSavedForm(t *testing.T) {
	sdktest.CheckSaved(t, sdktest.Connect(t, Adapter), sdktest.Case{Adapter: "loha", Config: map[string]any{"r": 3, "alpha": 6.0}, In: 9, Out: 7, Bias: true})
}
