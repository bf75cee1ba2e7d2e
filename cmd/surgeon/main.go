// Command surgeon is the model-surgery toolkit's command line: inspect
// checkpoints, run models, and (as the project grows) apply recipes,
// attach and merge adapters, convert formats and run sweeps.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}
