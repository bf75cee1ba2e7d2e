package sweep

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plot writes the report's plots into dir, each as PNG and SVG:
// metric-vs-rank (log2 rank axis; one line per combination of the other
// axes, error bars of one standard deviation) when the groups have
// ranks, and metric-vs-params (log trainable-parameter axis). Baselines
// are horizontal dashed lines. It returns the files written; no plot is
// made without finished points.
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
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		if err := save(p, PlotParams); err != nil {
			return nil, err
		}
	}
	return files, nil
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
	p.Legend.Top = !HigherIsBetter(rep.Metric)
	p.Legend.Left = false
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
	p.Legend.ThumbnailWidth = vg.Points(24)
	p.Legend.TextStyle.Color = color.Black
	p.Legend.Padding = vg.Points(2)
	return p, true, nil
}

// compact formats a parameter count: 1234 -> "1.2K", 2500000 -> "2.5M".
func compact(n int64) string {
	switch {
	case n >= 1e6:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + "M"
	case n >= 1e3:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + "K"
	}
	return strconv.FormatInt(n, 10)
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
