// Command surgeon-plugin-lora serves the LoRA family of adapters (lora,
// lora-merged, dora) to surgeon.
package main

import (
	"github.com/surgeon-ml/surgeon/plugins/builtin/lora"
	"github.com/surgeon-ml/surgeon/plugins/sdk"
)

func main() { sdk.Serve("lora", "0.1.0", lora.Adapters()...) }
