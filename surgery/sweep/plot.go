package sweep

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plot writes the report's plots into dir, each as PNG and SVG:
// metric-vs-rank (log2 rank axis; one line per combination of the other
// axes, error bars of one standard deviation) when the groups have
// ranks, and metric-vs-params (log trainable-parameter axis). Baselines
// are horizontal dashed lines. Then the learning curves: loss-vs-step
// (training loss against optimizer steps) and eval-vs-epoch (the metric
// after every epoch), one line per group, baselines dashed, the legend
// beside the axes. It returns the files written; no plot is made without
// finished points.
func (rep *Report) Plot(dir string) ([]string, error) {
	var files []string
	save := func(p *plot.Plot, name string) error {
		for _, ext := range []string{".png", ".svg"} {
			if err := p.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(dir, name+ext)); err != nil {
				return fmt.Errorf("plot %s: %w", name+ext, err)
			}
			files = append(files, name+ext)
		}
		return nil
	}
	rank := func(g *Group) float64 { return float64(g.Rank) }
	params := func(g *Group) float64 { return float64(g.Trainable) }
	if p, ok, err := rep.plot(rank, "LoRA rank (log2 scale)", "vs rank"); err != nil {
		return nil, err
	} else if ok {
		p.X.Tick.Marker = pow2Ticks{}
		if err := save(p, PlotRank); err != nil {
			return nil, err
		}
	}
	if p, ok, err := rep.plot(params, "trainable parameters (log scale)", "vs trainable parameters"); err != nil {
		return nil, err
	} else if ok {
		p.X.Tick.Marker = countTicks{}
		if err := save(p, PlotParams); err != nil {
			return nil, err
		}
	}
	curves, err := rep.plotCurves(dir)
	if err != nil {
		return nil, err
	}
	return append(files, curves...), nil
}

type errXYs struct {
	plotter.XYs
	plotter.YErrors
}

// plot draws the metric of the non-baseline groups against x (groups with
// x <= 0 are left out) and the baselines as horizontal lines.
func (rep *Report) plot(x func(*Group) float64, xLabel, title string) (*plot.Plot, bool, error) {
	series := map[string]*errXYs{}
	labels := map[string]string{}
	var names []string
	xmin, xmax := math.Inf(1), math.Inf(-1)
	for _, g := range rep.Groups {
		if g.Baseline != "" || len(g.Values) == 0 || x(g) <= 0 || g.Metric != rep.Metric {
			continue
		}
		s, ok := series[g.Series]
		if !ok {
			s = &errXYs{}
			series[g.Series] = s
			names = append(names, g.Series)
			labels[g.Series] = g.Series
			if g.Series == "" {
				labels[g.Series] = g.Adapter
			}
		}
		s.XYs = append(s.XYs, plotter.XY{X: x(g), Y: g.Mean})
		s.YErrors = append(s.YErrors, struct{ Low, High float64 }{g.Std, g.Std})
		xmin, xmax = math.Min(xmin, x(g)), math.Max(xmax, x(g))
	}
	if len(names) == 0 {
		return nil, false, nil
	}
	p := plot.New()
	p.Title.Text = rep.Metric + " " + title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = rep.Metric
	if rep.Split != "" {
		p.Y.Label.Text = rep.Split + " " + rep.Metric
	}
	p.X.Scale = plot.LogScale{}
	p.X.Min, p.X.Max = xmin/1.5, xmax*1.5
	p.Add(plotter.NewGrid())
	for i, name := range names {
		s := series[name]
		idx := make([]int, len(s.XYs))
		for j := range idx {
			idx[j] = j
		}
		sort.SliceStable(idx, func(a, b int) bool { return s.XYs[idx[a]].X < s.XYs[idx[b]].X })
		sorted := &errXYs{}
		for _, j := range idx {
			sorted.XYs = append(sorted.XYs, s.XYs[j])
			sorted.YErrors = append(sorted.YErrors, s.YErrors[j])
		}
		line, points, err := plotter.NewLinePoints(sorted)
		if err != nil {
			return nil, false, fmt.Errorf("plot: %w", err)
		}
		c := plotutil.Color(i)
		line.Color, points.Color = c, c
		points.Shape = plotutil.Shape(i)
		bars, err := plotter.NewYErrorBars(sorted)
		if err != nil {
			return nil, false, fmt.Errorf("plot: %w", err)
		}
		bars.Color = c
		p.Add(line, points, bars)
		label := labels[name]
		if label == "" {
			label = "sweep"
		}
		p.Legend.Add(label, line, points)
	}
	k := len(names)
	for _, g := range rep.Groups {
		if g.Baseline == "" || len(g.Values) == 0 || g.Metric != rep.Metric {
			continue
		}
		line, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: g.Mean}, {X: p.X.Max, Y: g.Mean}})
		if err != nil {
			return nil, false, fmt.Errorf("plot: %w", err)
		}
		line.Color = plotutil.Color(k)
		line.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		line.Width = vg.Points(1.5)
		k++
		p.Add(line)
		label := g.Name
		if g.Trainable > 0 {
			label += " (" + compact(g.Trainable) + " params)"
		}
		p.Legend.Add(label, line)
	}
	// Room above the data for the legend (top left), so that it never
	// hides a point or a baseline.
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for i, xy := range s.XYs {
			ymin, ymax = math.Min(ymin, xy.Y-s.YErrors[i].Low), math.Max(ymax, xy.Y+s.YErrors[i].High)
		}
	}
	for _, g := range rep.Groups {
		if g.Baseline != "" && len(g.Values) > 0 && g.Metric == rep.Metric {
			ymin, ymax = math.Min(ymin, g.Mean), math.Max(ymax, g.Mean)
		}
	}
	span := ymax - ymin
	if span <= 0 {
		span = math.Max(math.Abs(ymax)*0.1, 1e-3)
	}
	entries := float64(k)
	p.Y.Min = ymin - 0.08*span
	p.Y.Max = ymax + span*(0.1+0.11*entries)/(1-0.11*entries)
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs = vg.Points(8)
	p.Legend.ThumbnailWidth = vg.Points(24)
	p.Legend.TextStyle.Color = color.Black
	p.Legend.Padding = vg.Points(2)
	return p, true, nil
}

// compact formats a parameter count: 1234 -> "1.2K", 2500000 -> "2.5M",
// 2000 -> "2K".
func compact(n int64) string {
	f := func(v float64, unit string) string {
		return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + unit
	}
	switch {
	case n >= 1e9:
		return f(float64(n)/1e9, "G")
	case n >= 1e6:
		return f(float64(n)/1e6, "M")
	case n >= 1e3:
		return f(float64(n)/1e3, "K")
	}
	return strconv.FormatInt(n, 10)
}

// countTicks labels a log axis of parameter counts at 1, 2 and 5 times
// powers of ten (only the powers of ten over more than three decades),
// with minor ticks at the other multiples.
type countTicks struct{}

func (countTicks) Ticks(min, max float64) []plot.Tick {
	major := map[int]bool{1: true, 2: true, 5: true}
	if max/min > 1000 {
		major = map[int]bool{1: true}
	}
	var ticks []plot.Tick
	for d := math.Pow(10, math.Floor(math.Log10(min))); d <= max; d *= 10 {
		for m := 1; m < 10; m++ {
			v := d * float64(m)
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if major[m] {
				t.Label = compact(int64(math.Round(v)))
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// pow2Ticks labels powers of two on a log axis.
type pow2Ticks struct{}

func (pow2Ticks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for v := math.Pow(2, math.Ceil(math.Log2(min))); v <= max; v *= 2 {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
	}
	return ticks
}
