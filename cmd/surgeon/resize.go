package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/ranks"
)

func init() {
	register("resize", command{
		usage: "resize ADAPTER_DIR (--rank R | --energy F | --method sv_ratio|sv_fro|sv_cumulative --value V) [--rank MAX] -o OUT [--json]",
		short: "reduce a PEFT adapter's ranks by SVD (rank surgery through the adapter plugins)",
		run:   runResize,
	})
}

// selectionFlags are the flags that choose a new rank.
type selectionFlags struct {
	fs     *flag.FlagSet
	rank   *int
	energy *float64
	method *string
	value  *float64
}

func addSelectionFlags(fs *flag.FlagSet) *selectionFlags {
	return &selectionFlags{
		fs:     fs,
		rank:   fs.Int("rank", 0, "new rank (with --energy or --method: the largest rank allowed)"),
		energy: fs.Float64("energy", 0, "keep the smallest rank holding this fraction of the squared Frobenius norm (0 < F <= 1)"),
		method: fs.String("method", "", "dynamic rank choice as kohya's resize_lora.py: sv_ratio (keep singular values >= max/V), sv_fro (keep the fraction V of the Frobenius norm), sv_cumulative (singular values summing to the fraction V of their total); needs --value"),
		value:  fs.Float64("value", 0, "the parameter of --method"),
	}
}

func (s *selectionFlags) set(name string) bool {
	found := false
	s.fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

// selection builds and validates the rank selection; errors are usage
// errors.
func (s *selectionFlags) selection() (rpc.RankSelection, error) {
	if s.set("rank") && *s.rank <= 0 {
		return rpc.RankSelection{}, usagef("--rank must be positive, got %d", *s.rank)
	}
	var sel rpc.RankSelection
	switch {
	case s.set("method"):
		if s.set("energy") {
			return sel, usagef("give --energy F or --method %s --value V, not both", *s.method)
		}
		switch *s.method {
		case rpc.MethodSVRatio, rpc.MethodSVFro, rpc.MethodSVCumulative, rpc.MethodEnergy:
		case rpc.MethodRank:
			return sel, usagef("--method rank: use --rank R")
		default:
			return sel, usagef("unknown --method %q (sv_ratio, sv_fro, sv_cumulative, energy; or --rank R)", *s.method)
		}
		if !s.set("value") {
			return sel, usagef("--method %s needs --value", *s.method)
		}
		sel = rpc.RankSelection{Method: *s.method, Value: *s.value, Rank: *s.rank}
	case s.set("energy"):
		sel = rpc.RankSelection{Method: rpc.MethodEnergy, Value: *s.energy, Rank: *s.rank}
	case s.set("value"):
		return sel, usagef("--value needs --method")
	case s.set("rank"):
		sel = rpc.RankSelection{Method: rpc.MethodRank, Rank: *s.rank}
	default:
		return sel, usagef("one of --rank, --energy or --method is required")
	}
	if err := sel.Validate(); err != nil {
		return sel, usagef("%v", err)
	}
	return sel, nil
}

func runResize(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("resize", flag.ContinueOnError)
	sf := addSelectionFlags(fs)
	out := fs.String("o", "", "output PEFT folder (required; written atomically)")
	asJSON := fs.Bool("json", false, "print the per-module results as JSON")
	pos, err := parseArgs("resize", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one ADAPTER_DIR, got %d arguments", len(pos))
	}
	if *out == "" {
		return usagef("-o OUT is required")
	}
	sel, err := sf.selection()
	if err != nil {
		return err
	}
	dir, err := resolvePath(ctx, pos[0])
	if err != nil {
		return err
	}
	a, err := peft.Read(dir)
	if err != nil {
		return err
	}
	mgr, err := newManager()
	if err != nil {
		return err
	}
	defer mgr.Close()
	res, stats, err := ranks.Resize(ctx, mgr.Adapters(), a, sel)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if err := peft.Write(*out, res); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, map[string]any{"adapter": pos[0], "out": *out, "select": sel, "modules": stats,
			"params_before": adapterParams(a), "params_after": adapterParams(res)})
	}
	printStats(stdout, stats, true)
	fmt.Fprintf(stdout, "%d modules (%s): %d -> %d adapter parameters\n", len(stats), sel, adapterParams(a), adapterParams(res))
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

// printStats prints one row per module: module, adapter, old rank (when
// withOld), new rank, retained energy and a note.
func printStats(w io.Writer, stats []ranks.Stat, withOld bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if withOld {
		fmt.Fprintln(tw, "MODULE\tADAPTER\tRANK\tNEW RANK\tENERGY\tNOTE")
	} else {
		fmt.Fprintln(tw, "MODULE\tRANK\tENERGY\tNOTE")
	}
	for _, s := range stats {
		energy, rank := fmt.Sprintf("%.4f%%", 100*s.Energy), fmt.Sprint(s.NewRank)
		if s.Skipped {
			energy, rank = "-", "-"
		}
		if withOld {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", s.Module, s.Adapter, s.OldRank, rank, energy, s.Note)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Module, rank, energy, s.Note)
		}
	}
	tw.Flush()
}

// adapterParams counts an adapter's parameters.
func adapterParams(a *peft.Adapter) int {
	n := 0
	for _, mod := range a.Modules {
		for _, t := range mod {
			size := 1
			for _, d := range t.Shape {
				size *= d
			}
			n += size
		}
	}
	return n
}
