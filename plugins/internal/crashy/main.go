// Command surgeon-plugin-crashy is a test plugin that misbehaves on demand:
// with config {"mode": "panic"} it panics inside Plan, with "exit" it exits,
// with "hang" it never answers. Otherwise it plans a plain linear layer.
// Only tests build it.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/surgeon-ml/surgeon/plugins/sdk"
)

func main() {
	sdk.Serve("crashy", "0.0.1", sdk.NewAdapter("crashy", "misbehaves on demand (tests only)",
		[]sdk.ConfigKey{{Name: "mode", Type: "string", Default: "", Doc: "panic, exit or hang"}},
		func(l sdk.Layer, c sdk.Config) (*sdk.Plan, error) {
			switch c.String("mode") {
			case "panic":
				fmt.Fprintln(os.Stderr, "crashy: about to panic in Plan for", l.Path)
				panic("crashy: deliberate panic")
			case "exit":
				// go-plugin forwards os.Stderr asynchronously; write to the
				// process's real stderr (fd 2) as a logger would.
				fmt.Fprintln(os.NewFile(2, "stderr"), "crashy: exiting with status 3")
				os.Exit(3)
			case "hang":
				time.Sleep(time.Hour)
			}
			f, m := sdk.NewProgram(), sdk.NewProgram()
			f.Output("y", f.X().MatMulT(f.W()).Add(f.Bias()))
			m.Output("weight", m.W())
			return &sdk.Plan{Forward: f.Program(), Merge: m.Program()}, nil
		}))
}
