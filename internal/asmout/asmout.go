// Package asmout writes the output of surgeon's avo kernel generators
// (core/linalg/internal/asmgen, core/vmath/internal/asmgen): the assembly
// file and its Go declarations, with a fixed header so that regenerating
// reproduces the committed files byte for byte.
package asmout

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	"github.com/mmcloughlin/avo/pass"
	"github.com/mmcloughlin/avo/printer"
)

// Write compiles the functions of c and writes base+".s" and base+".go"
// (for example "kernel_amd64") for package pkg into dir. Files whose
// contents are already right are left untouched.
func Write(c *build.Context, pkg, dir, base string) error {
	f, err := c.Result()
	if err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	if err := pass.Compile.Execute(f); err != nil {
		return fmt.Errorf("compile %s: %w", pkg, err)
	}
	// A fixed command line in the header keeps the output independent of
	// where and how the generator was started.
	cfg := printer.Config{Argv: []string{"go", "run", "./internal/asmgen"}, Pkg: pkg}
	for _, out := range []struct {
		name string
		p    printer.Printer
	}{
		{base + ".s", printer.NewGoAsm(cfg)},
		{base + ".go", printer.NewStubs(cfg)},
	} {
		if err := write(filepath.Join(dir, out.name), f, out.p); err != nil {
			return err
		}
	}
	return nil
}

func write(path string, f *ir.File, p printer.Printer) error {
	b, err := p.Print(f)
	if err != nil {
		return fmt.Errorf("print %s: %w", path, err)
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	if err := os.WriteFile(path, b, 0o666); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ErrNoGo is returned by Stale when there is no go command to run the
// generator with.
var ErrNoGo = errors.New("asmout: no go command in PATH")

// Stale regenerates base+".s" and base+".go" by running the generator of
// the package in the current directory (./internal/asmgen) into tmp, and
// returns the names of the committed files that differ from its output.
func Stale(base, tmp string) ([]string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoGo, err)
	}
	cmd := exec.Command(gobin, "run", "./internal/asmgen", "-dir", tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go run ./internal/asmgen: %w\n%s", err, out)
	}
	var stale []string
	for _, name := range []string{base + ".s", base + ".go"} {
		want, err := os.ReadFile(filepath.Join(tmp, name))
		if err != nil {
			return nil, err
		}
		got, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(got, want) {
			stale = append(stale, name)
		}
	}
	return stale, nil
}
