package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/go-hclog"

	"github.com/surgeon-ml/surgeon/plugins/host"
)

func init() {
	register("plugins", command{
		usage: "plugins list [--json] | verify | lock",
		short: "list, verify or lock (trust) the plugin binaries",
		run:   runPlugins,
	})
}

// newManager returns the plugin manager for the CLI. Plugin logs go to
// stderr when SURGEON_LOG is set (e.g. SURGEON_LOG=debug).
func newManager() (*host.Manager, error) {
	logger := hclog.NewNullLogger()
	if lvl := os.Getenv("SURGEON_LOG"); lvl != "" {
		logger = hclog.New(&hclog.LoggerOptions{Name: "surgeon", Level: hclog.LevelFromString(lvl), Output: os.Stderr})
	}
	return host.New(host.Options{Logger: logger})
}

func runPlugins(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("plugins", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print as JSON")
	pos, err := parseArgs("plugins", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one of list, verify, lock")
	}
	mgr, err := newManager()
	if err != nil {
		return err
	}
	defer mgr.Close()
	switch pos[0] {
	case "lock":
		l, err := mgr.LockAll(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "locked %d plugins in %s\n", len(l.Plugins), mgr.LockPath())
		return nil
	case "verify":
		problems, err := mgr.Verify()
		if err != nil {
			return err
		}
		if len(problems) > 0 {
			for _, p := range problems {
				fmt.Fprintln(stdout, "FAIL", p)
			}
			return fmt.Errorf("%d plugin problems (lock file %s)", len(problems), mgr.LockPath())
		}
		fmt.Fprintf(stdout, "ok: %d plugins match %s\n", len(mgr.Lock().Plugins), mgr.LockPath())
		return nil
	case "list":
		type row struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Path    string `json:"path"`
			Status  string `json:"status"`
			host.LockEntry
		}
		bins, err := host.Discover(mgr.Dirs())
		if err != nil {
			return err
		}
		var rows []row
		for _, b := range bins {
			r := row{Name: b.Name, Path: b.Path, Status: "ok"}
			p, err := mgr.Plugin(ctx, b.Name)
			if err != nil {
				r.Status = oneLine(err.Error())
				if e, ok := mgr.Lock().Plugins[b.Name]; ok {
					r.LockEntry = *e
				}
			} else {
				r.Version = p.Desc.Version
				r.LockEntry = host.LockEntry{Components: p.Desc.Components}
			}
			rows = append(rows, r)
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(rows)
		}
		if len(rows) == 0 {
			fmt.Fprintf(stdout, "no plugins found in %s\n", strings.Join(mgr.Dirs(), ", "))
			return nil
		}
		for _, r := range rows {
			fmt.Fprintf(stdout, "%s %s  (%s)\n", r.Name, r.Version, r.Path)
			if r.Status != "ok" {
				fmt.Fprintf(stdout, "  status: %s\n", r.Status)
			}
			for _, c := range r.Components {
				fmt.Fprintf(stdout, "  %s %s: %s\n", c.Kind, c.Name, c.Doc)
				if len(c.PEFTTypes) > 0 {
					fmt.Fprintf(stdout, "    reads PEFT folders of peft_type %s\n", strings.Join(c.PEFTTypes, ", "))
				}
				if len(c.Capabilities) > 0 {
					fmt.Fprintf(stdout, "    offers: %s\n", strings.Join(c.Capabilities, ", "))
				}
				if len(c.From) > 0 {
					fmt.Fprintf(stdout, "    from %s to %s\n", strings.Join(c.From, ","), strings.Join(c.To, ","))
				}
				tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
				for _, k := range c.Config {
					def, _ := json.Marshal(k.Default)
					fmt.Fprintf(tw, "    %s\t%s\t= %s\t%s\n", k.Name, k.Type, def, k.Doc)
				}
				tw.Flush()
			}
		}
		return nil
	}
	return usagef("unknown plugins subcommand %q (list, verify, lock)", pos[0])
}
