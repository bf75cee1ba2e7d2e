package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/internal/atomicfs"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/apply"
	"github.com/surgeon-ml/surgeon/surgery/ranks"
	"github.com/surgeon-ml/surgeon/surgery/recipe"
	"github.com/surgeon-ml/surgeon/surgery/sweep"
)

// runRankSweep is `surgeon sweep ranks DIR`: the highest-rank adapter of a
// finished sweep resized (SVD, through its plugin) to every lower rank of
// the sweep and evaluated on its recipe's data, next to the adapters
// trained at that rank. Results go to DIR/ranksweep.md and .csv.
func runRankSweep(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sweep ranks", flag.ContinueOnError)
	from := fs.String("from", "", "point whose adapter is resized (default: the highest-rank finished point)")
	pos, err := parseArgs("sweep", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want: sweep ranks DIR")
	}
	dir := pos[0]
	rep, err := sweep.ReadReport(dir)
	if err != nil {
		return err
	}
	var src *sweep.PointResult
	rankOf := map[string]int{}
	for _, g := range rep.Groups {
		rankOf[g.Name] = g.Rank
	}
	for _, p := range rep.Points {
		if p.Report == nil || p.Baseline != "" || rankOf[p.Group] == 0 {
			continue
		}
		if *from != "" && p.Name != *from {
			continue
		}
		if src == nil || rankOf[p.Group] > rankOf[src.Group] {
			src = p
		}
	}
	if src == nil {
		return fmt.Errorf("%s: no finished LoRA point to resize", dir)
	}
	srcRank := rankOf[src.Group]
	adapterDir := filepath.Join(dir, "points", src.Name, "adapter")
	a, err := peft.Read(adapterDir)
	if err != nil {
		return err
	}
	rec, err := recipe.Load(src.Recipe, src.Sets)
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
	split := run.EvalSplit()
	type row struct {
		rank            int
		trained         string
		resized, energy float64
	}
	var rows []row
	seen := map[int]bool{}
	for _, g := range rep.Groups {
		if g.Rank == 0 || g.Rank > srcRank || seen[g.Rank] || g.Baseline != "" {
			continue
		}
		seen[g.Rank] = true
		r := row{rank: g.Rank, trained: g.Cell()}
		small, stats, err := ranks.Resize(ctx, mgr.Adapters(), a, rpc.RankSelection{Method: rpc.MethodRank, Rank: g.Rank})
		if err != nil {
			return fmt.Errorf("resize %s to rank %d: %w", adapterDir, g.Rank, err)
		}
		out := filepath.Join(dir, "ranksweep", fmt.Sprintf("r=%d", g.Rank))
		if err := peft.Write(out, small); err != nil {
			return err
		}
		if err := run.UseAdapter(ctx, out); err != nil {
			return err
		}
		m, err := run.Evaluate(split)
		if err != nil {
			return err
		}
		r.resized = m[rep.Metric]
		for _, s := range stats {
			r.energy += s.Energy / float64(len(stats))
		}
		rows = append(rows, r)
		fmt.Fprintf(stdout, "rank %d: resized from %s: %s %.4f (trained at rank %d: %s), retained energy %.2f%%\n",
			g.Rank, src.Name, rep.Metric, r.resized, g.Rank, r.trained, 100*r.energy)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].rank < rows[j].rank })
	var md, csv strings.Builder
	fmt.Fprintf(&md, "# Rank sweep: %s resized by SVD\n\nThe rank-%d adapter of point `%s` truncated to each rank (`surgeon resize --rank R`) and evaluated on the %s split, next to the adapters trained at that rank (mean ± std over seeds).\n\n", src.Name, srcRank, src.Name, split)
	fmt.Fprintf(&md, "| rank | trained at rank (%s) | resized from r=%d (%s) | retained energy |\n|---|---|---|---|\n", rep.Metric, srcRank, rep.Metric)
	fmt.Fprintf(&csv, "rank,trained,resized_from_%d,retained_energy\n", srcRank)
	for _, r := range rows {
		fmt.Fprintf(&md, "| %d | %s | %.4f | %.2f%% |\n", r.rank, r.trained, r.resized, 100*r.energy)
		fmt.Fprintf(&csv, "%d,%q,%g,%g\n", r.rank, r.trained, r.resized, r.energy)
	}
	if err := os.WriteFile(filepath.Join(dir, "ranksweep.md"), []byte(md.String()), atomicfs.FilePerm); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ranksweep.csv"), []byte(csv.String()), atomicfs.FilePerm); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", filepath.Join(dir, "ranksweep.md"), filepath.Join(dir, "ranksweep.csv"))
	return nil
}
