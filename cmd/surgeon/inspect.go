package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/surgeon-ml/surgeon/formats/inspect"
)

func init() {
	register("inspect", command{
		usage: "inspect PATH [--json] [--limit N]",
		short: "describe a safetensors/GGUF file, a model or a PEFT adapter folder",
		run:   runInspect,
	})
}

func runInspect(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	limit := fs.Int("limit", 0, "show at most N tensors in the table (0: all)")
	pos, err := parseArgs("inspect", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one PATH, got %d arguments", len(pos))
	}
	path, err := resolvePath(ctx, pos[0])
	if err != nil {
		return err
	}
	r, err := inspect.Path(path)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(stdout, "path:       %s\n", r.Path)
	fmt.Fprintf(stdout, "format:     %s", r.Format)
	if r.Version > 0 {
		fmt.Fprintf(stdout, " v%d", r.Version)
	}
	fmt.Fprintln(stdout)
	switch {
	case r.Family != "":
		fmt.Fprintf(stdout, "family:     %s\n", r.Family)
		fmt.Fprintf(stdout, "head:       %s", r.Head)
		if r.Labels > 0 {
			fmt.Fprintf(stdout, " (%d labels)", r.Labels)
		}
		fmt.Fprintln(stdout)
	case r.FamilyError != "":
		fmt.Fprintf(stdout, "family:     none surgeon builds (%s)\n", r.FamilyError)
	}
	if len(r.Files) > 1 {
		fmt.Fprintf(stdout, "files:      %d shards\n", len(r.Files))
	}
	fmt.Fprintf(stdout, "tensors:    %d\n", r.TensorCount)
	fmt.Fprintf(stdout, "parameters: %d (%s)\n", r.ParamCount, human(r.ParamCount))
	if r.BitsPerWeight > 0 {
		fmt.Fprintf(stdout, "bits/weight: %.4g\n", r.BitsPerWeight)
	}
	if len(r.Config) > 0 {
		fmt.Fprintln(stdout, "config:")
		keys := make([]string, 0, len(r.Config))
		for k := range r.Config {
			keys = append(keys, k)
		}
		sortStrings(keys)
		for _, k := range keys {
			b, _ := json.Marshal(r.Config[k])
			fmt.Fprintf(stdout, "  %s = %s\n", k, truncate(string(b), 100))
		}
	}
	if len(r.Metadata) > 0 {
		fmt.Fprintln(stdout, "metadata:")
		for _, k := range r.SortedMetadataKeys() {
			fmt.Fprintf(stdout, "  %s = %s\n", k, truncate(r.Metadata[k], 100))
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nNAME\tDTYPE\tSHAPE")
	for i, t := range r.Tensors {
		if *limit > 0 && i == *limit {
			fmt.Fprintf(tw, "... %d more\t\t\n", len(r.Tensors)-i)
			break
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\n", t.Name, t.DType, t.Shape)
	}
	return tw.Flush()
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func human(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
