package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/formats/detect"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/ranks"
)

func init() {
	register("extract", command{
		usage: "extract BASE FINETUNED (--rank R | --energy F [--rank MAX] | --method M --value V) -o ADAPTER [--adapter NAME] [--save-changed=false] [--json]",
		short: "extract a LoRA adapter from the difference of two checkpoints (truncated SVD per layer)",
		run:   runExtract,
	})
}

func runExtract(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("extract", flag.ContinueOnError)
	sf := addSelectionFlags(fs)
	out := fs.String("o", "", "output PEFT adapter folder (required; written atomically)")
	adapter := fs.String("adapter", "", "adapter component that extracts (default: the one adapter whose plugin offers the extract capability)")
	saveChanged := fs.Bool("save-changed", true, "save changed tensors that are not linear weights (embeddings, norms: modules_to_save; biases: bias \"all\") so the adapter reproduces them; false skips them")
	asJSON := fs.Bool("json", false, "print the per-module results as JSON")
	pos, err := parseArgs("extract", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("want BASE and FINETUNED, got %d arguments", len(pos))
	}
	if *out == "" {
		return usagef("-o ADAPTER is required")
	}
	sel, err := sf.selection()
	if err != nil {
		return err
	}
	local, err := resolvePaths(ctx, pos)
	if err != nil {
		return err
	}
	// Two Hugging Face folders stream: one module of each in memory at a
	// time. Other formats load.
	var baseModel, tunedModel model.Model
	var fillers [2]ranks.Filler
	for i, path := range local[:2] {
		var m model.Model
		if f, err := detect.Path(path); err == nil && f == detect.HFModel {
			sk, err := checkpoint.OpenSkeleton(path)
			if err != nil {
				return err
			}
			defer sk.Close()
			m, fillers[i] = sk.Model, sk
		} else {
			l, err := checkpoint.Load(path)
			if err != nil {
				return err
			}
			defer l.Close()
			m = l.Model
		}
		if i == 0 {
			baseModel = m
		} else {
			tunedModel = m
		}
	}
	mgr, err := newManager()
	if err != nil {
		return err
	}
	defer mgr.Close()
	if *adapter == "" {
		offering := mgr.Adapters().Offering(rpc.CapExtract)
		if len(offering) != 1 {
			return usagef("--adapter: name one of the adapters offering extract (%s)", strings.Join(offering, ", "))
		}
		*adapter = offering[0]
	}
	a, stats, err := ranks.Extract(ctx, mgr.Adapters(), baseModel, tunedModel, ranks.ExtractOptions{
		Adapter: *adapter, Select: sel, SaveChanged: *saveChanged, BaseModel: pos[0],
		BaseFiller: fillers[0], TunedFiller: fillers[1]})
	if err != nil {
		return err
	}
	if err := peft.Write(*out, a); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, map[string]any{"base": pos[0], "finetuned": pos[1], "out": *out, "select": sel,
			"modules": stats, "params": adapterParams(a), "modules_to_save": a.Config.ModulesToSave})
	}
	var shown []ranks.Stat
	unchanged := 0
	for _, s := range stats {
		if s.Skipped && s.Note == "unchanged" {
			unchanged++
			continue
		}
		shown = append(shown, s)
	}
	printStats(stdout, shown, false)
	fmt.Fprintf(stdout, "%d modules extracted (%s), %d unchanged skipped, %d saved tensors: %d adapter parameters\n",
		len(a.Modules), sel, unchanged, len(a.Saved), adapterParams(a))
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}
