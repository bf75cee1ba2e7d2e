// Command surgeon-plugin-ia3 serves the (IA)^3 adapter to surgeon.
package main

import (
	"github.com/surgeon-ml/surgeon/plugins/builtin/ia3"
	"github.com/surgeon-ml/surgeon/plugins/sdk"
)

func main() { sdk.Serve("ia3", "0.1.0", ia3.Adapters()...) }
