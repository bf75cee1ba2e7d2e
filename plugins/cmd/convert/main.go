// Command surgeon-plugin-convert serves surgeon's checkpoint converters.
package main

import (
	"github.com/surgeon-ml/surgeon/plugins/builtin/convert"
	"github.com/surgeon-ml/surgeon/plugins/sdk"
)

func main() { sdk.Serve("convert", "0.1.0", convert.Converters()...) }
