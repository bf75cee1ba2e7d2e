package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/surgeon-ml/surgeon/core/train"
	"github.com/surgeon-ml/surgeon/surgery/apply"
	"github.com/surgeon-ml/surgeon/surgery/recipe"
	"github.com/surgeon-ml/surgeon/surgery/sweep"
)

func init() {
	register("apply", command{
		usage: "apply RECIPE.toml [--set key=value ...]",
		short: "run a recipe: attach adapters, fine-tune, evaluate, save (resumes an interrupted run)",
		run:   func(ctx context.Context, args []string, w io.Writer) error { return runRecipe(ctx, args, w, false) },
	})
	register("eval", command{
		usage: "eval RECIPE.toml [--adapter PEFT_DIR] [--split test|validation|train] [--set key=value ...]",
		short: "evaluate a recipe's model (optionally with a saved adapter) on its data",
		run:   runEval,
	})
	register("plan", command{
		usage: "plan RECIPE.toml [--set key=value ...] [--json]",
		short: "show what a recipe would train: modules, shapes, adapters, trainable parameters",
		run:   func(ctx context.Context, args []string, w io.Writer) error { return runRecipe(ctx, args, w, true) },
	})
}

func runRecipe(ctx context.Context, args []string, stdout io.Writer, planOnly bool) (err error) {
	name := "apply"
	if planOnly {
		name = "plan"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var sets listFlag
	fs.Var(&sets, "set", "override a recipe value, e.g. --set train.lr=1e-4 (repeatable)")
	asJSON := fs.Bool("json", false, "plan: print the plan as JSON")
	pos, err := parseArgs(name, fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one RECIPE, got %d arguments", len(pos))
	}
	rec, err := recipe.Load(pos[0], sets)
	if err != nil {
		return err
	}
	if planOnly && sweep.Has(rec) && !*asJSON {
		sw, err := sweep.Expand(rec, sets, "")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "sweep: %d points (run them with 'surgeon sweep %s'); the base recipe plans as:\n", len(sw.Points), pos[0])
		if err := sw.WriteTable(stdout); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
	}
	if !planOnly {
		// Lock the output folder before loading anything, so that a second
		// run on a busy folder fails at once.
		lock, err := apply.LockOutput(rec)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, lock.Release()) }()
	}
	mgr, err := newManager()
	if err != nil {
		return err
	}
	defer mgr.Close()
	logf := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	run, err := apply.Prepare(ctx, rec, apply.Options{Planner: mgr.Adapters(), Log: logf})
	if err != nil {
		return err
	}
	defer run.Close()
	if planOnly && *asJSON {
		return writeJSON(stdout, run.Plan)
	}
	printPlan(stdout, run.Plan)
	if planOnly {
		return nil
	}
	bar := newProgress(stdout)
	rep, err := run.Execute(ctx, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s split, before -> after training:\n", rep.EvalSplit)
	keys := make([]string, 0, len(rep.After))
	for k := range rep.After {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(stdout, "  %-12s %10.4f -> %.4f\n", k, rep.Before[k], rep.After[k])
	}
	fmt.Fprintf(stdout, "trained %d steps in %.1fs (%.0f tokens/s), wall %.1fs, peak RSS %.0f MiB\n",
		rep.Steps, rep.TrainSeconds, rep.TokensPerSec, rep.WallSeconds, float64(rep.PeakRSSBytes)/(1<<20))
	fmt.Fprintf(stdout, "wrote %s (%s)\n", run.OutputDir(), strings.Join(rep.Files, ", "))
	return nil
}

func printPlan(w io.Writer, p *apply.Plan) {
	fmt.Fprintf(w, "plan: %s on %s (%s, mode %s)\n", p.Recipe, p.Model, p.Task, p.Mode)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// Rank and scale are what the adapter's plugin reported with its plan.
	fmt.Fprintln(tw, "MODULE\tSHAPE\tADAPTER\tRANK\tSCALE\tTRAINABLE")
	for _, r := range p.Rows {
		shape, rank, scale := "", "", ""
		if r.Shape[0] > 0 {
			shape = fmt.Sprintf("%dx%d", r.Shape[0], r.Shape[1])
		}
		if r.Rank > 0 {
			rank = fmt.Sprint(r.Rank)
		}
		if r.Scale != 0 {
			scale = fmt.Sprintf("%.4g", r.Scale)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", r.Module, shape, r.Adapter, rank, scale, r.Trainable)
	}
	tw.Flush()
	fmt.Fprintf(w, "trainable params: %d || all params: %d || trainable%%: %.4f\n", p.Trainable, p.Total, p.Percent())
	if m := p.Memory; m.Total > 0 {
		fmt.Fprintf(w, "memory estimate: %.0f MiB (weights %.0f, gradients and optimizer state %.0f, activations of a batch %.0f, runtime %.0f)",
			mb(m.Total), mb(m.Weights), mb(m.TrainState), mb(m.Activations), mb(m.Runtime))
		if m.Mapped > 0 {
			fmt.Fprintf(w, ", plus %.0f MiB of stored weights mapped from the file", mb(m.Mapped))
		}
		fmt.Fprintln(w)
	}
}

// progress shows training progress: a bar redrawn in place on a terminal,
// plain log lines otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	last  time.Time
	shown bool
}

func newProgress(w io.Writer) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &progress{w: w, tty: tty}
}

func (p *progress) update(e train.Event) {
	eta := e.ETA.Round(time.Second)
	if p.tty {
		width := 30
		filled := width * e.Step / max(1, e.TotalSteps)
		fmt.Fprintf(p.w, "\r[%s%s] %d/%d epoch %d/%d loss %.4f lr %.2e %.0f tok/s ETA %s   ",
			strings.Repeat("=", filled), strings.Repeat(" ", width-filled), e.Step, e.TotalSteps, e.Epoch, e.Epochs, e.Loss, e.LR, e.TokensPerSec, eta)
		p.shown = true
		return
	}
	if time.Since(p.last) < 5*time.Second && e.Step != e.TotalSteps && e.Step != 1 {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "step %d/%d epoch %d/%d loss %.4f lr %.2e %.0f tok/s elapsed %s ETA %s\n",
		e.Step, e.TotalSteps, e.Epoch, e.Epochs, e.Loss, e.LR, e.TokensPerSec, e.Elapsed.Round(time.Second), eta)
}

func (p *progress) done() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}

func runEval(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	var sets listFlag
	fs.Var(&sets, "set", "override a recipe value (repeatable)")
	adapter := fs.String("adapter", "", "PEFT adapter folder to evaluate (default: the untrained recipe model)")
	split := fs.String("split", "", "split to evaluate (default: the recipe's evaluation split)")
	pos, err := parseArgs("eval", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one RECIPE, got %d arguments", len(pos))
	}
	rec, err := recipe.Load(pos[0], sets)
	if err != nil {
		return err
	}
	mgr, err := newManager()
	if err != nil {
		return err
	}
	defer mgr.Close()
	run, err := apply.Prepare(ctx, rec, apply.Options{Planner: mgr.Adapters()})
	if err != nil {
		return err
	}
	defer run.Close()
	if *adapter != "" {
		dir, err := resolvePath(ctx, *adapter)
		if err != nil {
			return err
		}
		if err := run.UseAdapter(ctx, dir); err != nil {
			return err
		}
	}
	s := *split
	if s == "" {
		s = run.EvalSplit()
	}
	m, err := run.Evaluate(s)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(stdout, "%s split:\n", s)
	for _, k := range keys {
		fmt.Fprintf(stdout, "  %-12s %.4f\n", k, m[k])
	}
	return nil
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
