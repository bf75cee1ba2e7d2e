package sweep

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/surgeon-ml/surgeon/surgery/apply"
	"github.com/surgeon-ml/surgeon/surgery/recipe"
)

// Report is a sweep's results: one row per group of points that differ
// only in seed, in expansion order.
type Report struct {
	// Recipe and Hash identify the sweep (from the manifest; empty when
	// the folder has none).
	Recipe string
	Hash   string
	// Metric is the headline metric: accuracy for classification,
	// perplexity for causal LMs.
	Metric string
	// Split is the evaluated split.
	Split string
	// Groups are the table's rows.
	Groups []*Group
	// Points are the individual runs, in expansion order.
	Points []*PointResult
}

// PointResult is one point and what it produced.
type PointResult struct {
	Point
	// State is done when report.json exists; otherwise the manifest's
	// state (failed, interrupted, running), or "missing" when no run of
	// the point is recorded.
	State    string
	Error    string
	ExitCode *int
	// Report is the point's report.json (nil unless done).
	Report *apply.Report
}

// Group is a row of the report: the points that differ only in seed.
type Group struct {
	Name     string
	Baseline string
	// Rank and Scale are the rank and the update's scale the adapter
	// plugins reported in the points' plans (0 / NaN when they have none).
	Rank  int
	Scale float64
	// Targets describes the adapted modules, Adapter their adapter type.
	Targets   string
	Adapter   string
	Trainable int64
	// Metric is the metric averaged (Report.Metric unless the task
	// differs), and Values its value at each finished point.
	Metric string
	Values []float64
	// Mean and Std (sample standard deviation) of Values.
	Mean, Std float64
	// Runs is the number of points in the group (finished or not).
	Runs int
	// Wall and TokensPerSec are the means over the finished points.
	Wall, TokensPerSec float64
	// Series names the line of the rank plot the group belongs to: its
	// axis values other than the rank.
	Series string
}

// Files written by WriteReport into the sweep folder.
const (
	ReportMarkdown = "report.md"
	ReportCSV      = "report.csv"
	PointsCSV      = "points.csv"
	PlotRank       = "metric-vs-rank"
	PlotParams     = "metric-vs-params"
)

var seedSuffix = regexp.MustCompile(`(^|,)seed=(-?\d+)$`)

// ReadReport reads the results of the sweep in dir: the points listed in
// its manifest (or, without one, every points/NAME/report.json) and the
// report.json of each, whoever produced it (a local sweep, cluster jobs,
// or plain `surgeon apply` runs).
func ReadReport(dir string) (*Report, error) {
	rep := &Report{}
	m, err := ReadManifest(dir)
	switch {
	case err == nil:
		rep.Recipe, rep.Hash = m.Recipe, m.Hash
		for i := range m.Points {
			ps := &m.Points[i]
			state := ps.State
			if state == StatePending || state == StateDone {
				state = "missing"
			}
			rep.Points = append(rep.Points, &PointResult{Point: ps.Point, State: state, Error: ps.Error, ExitCode: ps.ExitCode})
		}
	case errors.Is(err, fs.ErrNotExist):
		entries, err := os.ReadDir(filepath.Join(dir, "points"))
		if err != nil {
			return nil, fmt.Errorf("%s: no %s and no points/ folder: %w", dir, ManifestFile, err)
		}
		for _, e := range entries {
			if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), ".checkpoint") {
				continue
			}
			p := Point{Index: len(rep.Points), Name: e.Name(), Group: e.Name()}
			if sm := seedSuffix.FindStringSubmatch(e.Name()); sm != nil {
				seed, _ := strconv.ParseInt(sm[2], 10, 64)
				p.Seed = &seed
				p.Group = strings.TrimSuffix(e.Name(), sm[0])
				if p.Group == "" {
					p.Group = "base"
				}
			}
			if !strings.Contains(p.Group, "=") && p.Group != "base" {
				p.Baseline = p.Group
			}
			rep.Points = append(rep.Points, &PointResult{Point: p, State: "missing"})
		}
	default:
		return nil, err
	}
	for _, p := range rep.Points {
		path := filepath.Join(dir, "points", p.Name, "report.json")
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var r apply.Report
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		p.Report, p.State, p.Error = &r, StateDone, ""
		if rep.Metric == "" {
			rep.Metric, rep.Split = metricOf(&r), r.EvalSplit
		}
	}
	if rep.Metric == "" {
		rep.Metric = "metric"
	}
	rep.group()
	return rep, nil
}

// metricOf is the headline metric of a point's report.
func metricOf(r *apply.Report) string {
	want := "accuracy"
	if r.Task == recipe.TaskCausalLM {
		want = "perplexity"
	}
	if _, ok := r.After[want]; ok || len(r.After) == 0 {
		return want
	}
	for _, k := range []string{"accuracy", "perplexity", "loss", "f1"} {
		if _, ok := r.After[k]; ok {
			return k
		}
	}
	return sortedKeys(r.After)[0]
}

// HigherIsBetter reports whether larger values of the metric are better.
func HigherIsBetter(metric string) bool { return metric != "perplexity" && metric != "loss" }

func (rep *Report) group() {
	byName := map[string]*Group{}
	for _, p := range rep.Points {
		g, ok := byName[p.Group]
		if !ok {
			g = &Group{Name: p.Group, Baseline: p.Baseline, Scale: math.NaN(), Metric: rep.Metric}
			byName[p.Group] = g
			rep.Groups = append(rep.Groups, g)
			var series []string
			var plan *apply.Plan
			if p.Report != nil {
				plan = p.Report.Plan
			}
			for _, v := range p.Values {
				switch {
				case v.Derived || v.Key == seedKey:
				case isRank(v, plan):
					// The axis that sets the rank the adapter reported is the
					// plot's x axis, not a series.
				default:
					series = append(series, v.Name+"="+display(v.Value))
				}
			}
			g.Series = strings.Join(series, ",")
		}
		g.Runs++
		r := p.Report
		if r == nil {
			continue
		}
		if len(g.Values) == 0 {
			g.Trainable = r.Trainable
			g.Targets, g.Adapter = targets(r.Plan)
			if g.Rank == 0 {
				g.Rank = planRank(r.Plan)
			}
			if math.IsNaN(g.Scale) {
				g.Scale = planScale(r.Plan)
			}
			if m := metricOf(r); m != rep.Metric {
				g.Metric = m
			}
		}
		v, ok := r.After[g.Metric]
		if !ok {
			continue
		}
		g.Values = append(g.Values, v)
		g.Wall += r.WallSeconds
		g.TokensPerSec += r.TokensPerSec
	}
	for _, g := range rep.Groups {
		n := float64(len(g.Values))
		if n == 0 {
			continue
		}
		g.Wall /= n
		g.TokensPerSec /= n
		for _, v := range g.Values {
			g.Mean += v
		}
		g.Mean /= n
		if n > 1 {
			for _, v := range g.Values {
				g.Std += (v - g.Mean) * (v - g.Mean)
			}
			g.Std = math.Sqrt(g.Std / (n - 1))
		}
	}
}

// isRank reports whether an axis value sets the rank: an adapter config
// key whose value is the rank the plugin reported in the point's plan.
func isRank(v Value, p *apply.Plan) bool {
	n, ok := numberOf(v.Value)
	r := planRank(p)
	return ok && r > 0 && strings.Contains(v.Key, ".config.") && n.f == float64(r)
}

// planRank is the most common adapter rank of a plan (0: none).
func planRank(p *apply.Plan) int {
	if p == nil {
		return 0
	}
	counts := map[int]int{}
	for _, r := range p.Rows {
		if r.Rank > 0 {
			counts[r.Rank]++
		}
	}
	best, n := 0, 0
	for k, c := range counts {
		if c > n || c == n && k < best {
			best, n = k, c
		}
	}
	return best
}

// planScale is the most common update scale (as the adapter plugins
// reported it) of a plan (NaN: none).
func planScale(p *apply.Plan) float64 {
	if p == nil {
		return math.NaN()
	}
	counts := map[float64]int{}
	for _, r := range p.Rows {
		if r.Scale != 0 {
			counts[r.Scale]++
		}
	}
	best, n := math.NaN(), 0
	for k, c := range counts {
		if c > n || c == n && k < best {
			best, n = k, c
		}
	}
	return best
}

// targets describes what a plan trains ("10 modules (q_proj, v_proj) +
// score", "score", "all") and names its adapter types ("lora").
func targets(p *apply.Plan) (string, string) {
	if p == nil {
		return "", ""
	}
	if p.Mode == recipe.ModeFull {
		return "all", ""
	}
	var mods, heads []string
	kinds, adapters := map[string]bool{}, map[string]bool{}
	for _, r := range p.Rows {
		if strings.HasPrefix(r.Adapter, "full") {
			heads = append(heads, r.Module)
			continue
		}
		mods = append(mods, r.Module)
		kinds[r.Module[strings.LastIndexByte(r.Module, '.')+1:]] = true
		adapters[r.Adapter] = true
	}
	var parts []string
	if len(mods) > 0 {
		noun := "modules"
		if len(mods) == 1 {
			noun = "module"
		}
		parts = append(parts, fmt.Sprintf("%d %s (%s)", len(mods), noun, strings.Join(sortedKeys(kinds), ", ")))
	}
	parts = append(parts, heads...)
	return strings.Join(parts, " + "), strings.Join(sortedKeys(adapters), "+")
}

// Done counts the finished points.
func (rep *Report) Done() int {
	n := 0
	for _, p := range rep.Points {
		if p.State == StateDone {
			n++
		}
	}
	return n
}

// Unfinished returns the points without results.
func (rep *Report) Unfinished() []*PointResult {
	var out []*PointResult
	for _, p := range rep.Points {
		if p.State != StateDone {
			out = append(out, p)
		}
	}
	return out
}

// metricText formats a metric value.
func metricText(metric string, v float64) string {
	if metric == "perplexity" || math.Abs(v) >= 100 {
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

// Cell formats the group's metric as "mean ± std" ("mean" for one run,
// "—" for none).
func (g *Group) Cell() string {
	switch len(g.Values) {
	case 0:
		return "—"
	case 1:
		return metricText(g.Metric, g.Mean)
	}
	return metricText(g.Metric, g.Mean) + " ± " + metricText(g.Metric, g.Std)
}

func (g *Group) rankText() string {
	if g.Rank <= 0 {
		return "—"
	}
	return strconv.Itoa(g.Rank)
}

func (g *Group) scaleText() string {
	if math.IsNaN(g.Scale) {
		return "—"
	}
	return strconv.FormatFloat(g.Scale, 'g', -1, 64)
}

// thousands formats n with thousands separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// mdCell escapes text for a Markdown table cell.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

// WriteMarkdown writes the report as Markdown: a summary, the table, the
// unfinished points and (when plotted) the plots. The output depends only
// on the results, so the same results give the same bytes.
func (rep *Report) WriteMarkdown(w io.Writer, plots []string) error {
	var b bytes.Buffer
	b.WriteString("# Sweep report\n\n")
	if rep.Recipe != "" {
		fmt.Fprintf(&b, "Recipe `%s`", rep.Recipe)
		if rep.Hash != "" {
			fmt.Fprintf(&b, " (hash `%.12s`)", rep.Hash)
		}
		b.WriteString(". ")
	}
	fmt.Fprintf(&b, "%d points, %d done", len(rep.Points), rep.Done())
	if n := len(rep.Unfinished()); n > 0 {
		fmt.Fprintf(&b, ", %d not finished", n)
	}
	b.WriteString(".\n")
	better := "higher is better"
	if !HigherIsBetter(rep.Metric) {
		better = "lower is better"
	}
	split := ""
	if rep.Split != "" {
		split = rep.Split + " "
	}
	fmt.Fprintf(&b, "Metric: %s%s after training (%s), mean ± sample standard deviation over seeds; "+
		"wall time and tokens/s are means over the finished runs.\n\n", split, rep.Metric, better)
	fmt.Fprintf(&b, "| point | rank | scale | targets | trainable params | %s | runs | wall time (s) | tokens/s |\n", rep.Metric)
	b.WriteString("|---|--:|--:|---|--:|--:|--:|--:|--:|\n")
	for _, g := range rep.Groups {
		name := g.Name
		if g.Baseline != "" {
			name += " (baseline)"
		}
		cell := g.Cell()
		if g.Metric != rep.Metric && len(g.Values) > 0 {
			cell = g.Metric + " " + cell
		}
		trainable, wall, tps := "—", "—", "—"
		if len(g.Values) > 0 {
			trainable = thousands(g.Trainable)
			wall = strconv.FormatFloat(g.Wall, 'f', 1, 64)
			tps = thousands(int64(math.Round(g.TokensPerSec)))
		}
		targets := g.Targets
		if targets == "" {
			targets = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d/%d | %s | %s |\n", mdCell(name), g.rankText(), g.scaleText(),
			mdCell(targets), trainable, cell, len(g.Values), g.Runs, wall, tps)
	}
	if un := rep.Unfinished(); len(un) > 0 {
		b.WriteString("\n## Not finished\n\n| point | state | error |\n|---|---|---|\n")
		for _, p := range un {
			state := p.State
			if p.ExitCode != nil && p.State == StateFailed {
				state += fmt.Sprintf(" (exit %d)", *p.ExitCode)
			}
			msg := lastLine(p.Error)
			if p.State == "missing" {
				msg = "no report.json"
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", mdCell(p.Name), state, mdCell(msg))
		}
	}
	if len(plots) > 0 {
		b.WriteString("\n## Plots\n\n")
		for _, p := range plots {
			stem := strings.TrimSuffix(p, filepath.Ext(p))
			alt := rep.Metric + " vs rank"
			switch stem {
			case PlotParams:
				alt = rep.Metric + " vs trainable parameters"
			case PlotLoss:
				alt = "training loss vs step, one line per point (seeds averaged), baselines dashed"
			case PlotEval:
				alt = rep.Metric + " per epoch, one line per point (seeds averaged), baselines dashed"
			}
			fmt.Fprintf(&b, "![%s](%s)\n", alt, p)
			if filepath.Ext(p) == ".svg" {
				fmt.Fprintf(&b, "([PNG](%s.png))\n", stem)
			}
			b.WriteString("\n")
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteCSV writes one row per group: point, baseline, rank, scale,
// targets, trainable_params, metric, mean, std, runs_done, runs,
// wall_seconds, tokens_per_second.
func (rep *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"point", "baseline", "rank", "scale", "targets", "trainable_params", "metric", "mean", "std", "runs_done", "runs", "wall_seconds", "tokens_per_second"})
	for _, g := range rep.Groups {
		row := []string{g.Name, g.Baseline, "", "", g.Targets, "", g.Metric, "", "", strconv.Itoa(len(g.Values)), strconv.Itoa(g.Runs), "", ""}
		if g.Rank > 0 {
			row[2] = strconv.Itoa(g.Rank)
		}
		if !math.IsNaN(g.Scale) {
			row[3] = strconv.FormatFloat(g.Scale, 'g', -1, 64)
		}
		if len(g.Values) > 0 {
			row[5] = strconv.FormatInt(g.Trainable, 10)
			row[7] = strconv.FormatFloat(g.Mean, 'g', 10, 64)
			row[8] = strconv.FormatFloat(g.Std, 'g', 10, 64)
			row[11] = strconv.FormatFloat(g.Wall, 'f', 3, 64)
			row[12] = strconv.FormatFloat(g.TokensPerSec, 'f', 1, 64)
		}
		cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

// WritePointsCSV writes one row per point: its name, group, seed, state,
// metric value, trainable parameters, wall time, tokens/s, and the exit
// code and error of an unfinished point.
func (rep *Report) WritePointsCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"index", "point", "group", "seed", "state", "metric", "value", "trainable_params", "wall_seconds", "tokens_per_second", "exit_code", "error"})
	for _, p := range rep.Points {
		row := []string{strconv.Itoa(p.Index), p.Name, p.Group, "", p.State, rep.Metric, "", "", "", "", "", lastLine(p.Error)}
		if p.Seed != nil {
			row[3] = strconv.FormatInt(*p.Seed, 10)
		}
		if r := p.Report; r != nil {
			m := metricOf(r)
			row[5] = m
			if v, ok := r.After[m]; ok {
				row[6] = strconv.FormatFloat(v, 'g', 10, 64)
			}
			row[7] = strconv.FormatInt(r.Trainable, 10)
			row[8] = strconv.FormatFloat(r.WallSeconds, 'f', 3, 64)
			row[9] = strconv.FormatFloat(r.TokensPerSec, 'f', 1, 64)
		}
		if p.ExitCode != nil && p.State != StateDone {
			row[10] = strconv.Itoa(*p.ExitCode)
		}
		cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

// WriteReport reads the results in dir and writes report.md, report.csv,
// points.csv and the plots (PNG and SVG) there. It returns the report and
// the files written, sorted.
func WriteReport(dir string) (*Report, []string, error) {
	rep, err := ReadReport(dir)
	if err != nil {
		return nil, nil, err
	}
	plots, err := rep.Plot(dir)
	if err != nil {
		return nil, nil, err
	}
	var svgs []string
	files := append([]string(nil), plots...)
	for _, p := range plots {
		if strings.HasSuffix(p, ".svg") {
			svgs = append(svgs, p)
		}
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{ReportMarkdown, func(w io.Writer) error { return rep.WriteMarkdown(w, svgs) }},
		{ReportCSV, rep.WriteCSV},
		{PointsCSV, rep.WritePointsCSV},
	} {
		var b bytes.Buffer
		if err := f.write(&b); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f.name, err)
		}
		if err := writeAtomic(filepath.Join(dir, f.name), b.Bytes()); err != nil {
			return nil, nil, err
		}
		files = append(files, f.name)
	}
	sort.Strings(files)
	return rep, files, nil
}
