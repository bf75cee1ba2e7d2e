package sweep

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Learning-curve plots written by WriteReport (PNG and SVG).
const (
	PlotLoss = "loss-vs-step"
	PlotEval = "eval-vs-epoch"
)

// curve is one line of a learning-curve plot: a group's values (the mean
// over its finished seeds) against steps or epochs.
type curve struct {
	label    string
	baseline bool
	color    int
	xys      plotter.XYs
}

// lossCurve reads a finished point's training loss per optimizer step
// from its metrics.csv (step, epoch, loss, ...).
func lossCurve(path string) (map[int]float64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	step, loss := -1, -1
	for i, h := range rows[0] {
		switch h {
		case "step":
			step = i
		case "loss":
			loss = i
		}
	}
	if step < 0 || loss < 0 {
		return nil, fmt.Errorf("%s: no step and loss columns", path)
	}
	out := map[int]float64{}
	for _, r := range rows[1:] {
		if len(r) <= max(step, loss) {
			continue
		}
		s, err1 := strconv.Atoi(r[step])
		l, err2 := strconv.ParseFloat(r[loss], 64)
		if err1 == nil && err2 == nil && !math.IsNaN(l) && !math.IsInf(l, 0) {
			out[s] = l // a resumed run replays steps after its checkpoint: the last row wins
		}
	}
	return out, nil
}

// meanCurve averages per-x values over the points of a group, at the x
// every point of the group reached.
func meanCurve(runs []map[int]float64) plotter.XYs {
	if len(runs) == 0 {
		return nil
	}
	var xs []int
	for x := range runs[0] {
		ok := true
		for _, r := range runs[1:] {
			if _, in := r[x]; !in {
				ok = false
				break
			}
		}
		if ok {
			xs = append(xs, x)
		}
	}
	sort.Ints(xs)
	out := make(plotter.XYs, 0, len(xs))
	for _, x := range xs {
		var sum float64
		for _, r := range runs {
			sum += r[x]
		}
		out = append(out, plotter.XY{X: float64(x), Y: sum / float64(len(runs))})
	}
	return out
}

// smooth returns the trailing moving average of ys over w points.
func smooth(xys plotter.XYs, w int) plotter.XYs {
	if w <= 1 {
		return xys
	}
	out := make(plotter.XYs, len(xys))
	var sum float64
	for i, p := range xys {
		sum += p.Y
		if i >= w {
			sum -= xys[i-w].Y
		}
		out[i] = plotter.XY{X: p.X, Y: sum / float64(min(i+1, w))}
	}
	return out
}

// learningCurves returns the loss-per-step and metric-per-epoch lines, one
// per group of finished points (seeds averaged), in report order, and the
// moving-average window of the loss lines.
func (rep *Report) learningCurves(dir string) (loss, eval []curve, window int, err error) {
	byGroup := map[string][]*PointResult{}
	for _, p := range rep.Points {
		if p.Report != nil {
			byGroup[p.Group] = append(byGroup[p.Group], p)
		}
	}
	longest := 0
	for i, g := range rep.Groups {
		points := byGroup[g.Name]
		if len(points) == 0 {
			continue
		}
		label := g.Name
		if g.Baseline != "" {
			label = g.Baseline + " (baseline)"
		}
		var losses, evals []map[int]float64
		for _, p := range points {
			l, err := lossCurve(filepath.Join(dir, "points", p.Name, "metrics.csv"))
			if err != nil && !os.IsNotExist(err) {
				return nil, nil, 0, err
			}
			if len(l) > 0 {
				losses = append(losses, l)
			}
			e := map[int]float64{}
			for _, ep := range p.Report.Epochs {
				if v, ok := ep.Metrics[rep.Metric]; ok && !math.IsNaN(v) {
					e[ep.Epoch] = v
				}
			}
			if len(e) > 0 {
				evals = append(evals, e)
			}
		}
		if xys := meanCurve(losses); len(xys) > 0 {
			loss = append(loss, curve{label: label, baseline: g.Baseline != "", color: i, xys: xys})
			longest = max(longest, len(xys))
		}
		if xys := meanCurve(evals); len(xys) > 0 {
			eval = append(eval, curve{label: label, baseline: g.Baseline != "", color: i, xys: xys})
		}
	}
	// Per-step losses are noisy: a moving average over about a 25th of
	// the run shows the trend.
	window = max(1, longest/25)
	for i := range loss {
		loss[i].xys = smooth(loss[i].xys, window)
	}
	return loss, eval, window, nil
}

// drawCurves builds a line plot of curves and its legend; baselines are
// dashed, the other groups solid with point markers when marks is set.
func drawCurves(curves []curve, title, xLabel, yLabel string, marks bool) (*plot.Plot, *plot.Legend, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	legend := plot.NewLegend()
	legend.Top, legend.Left = true, true
	legend.ThumbnailWidth = vg.Points(24)
	legend.TextStyle.Color = color.Black
	legend.Padding = vg.Points(2)
	p.Title.Padding = vg.Points(8)
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	baselines := 0
	for _, c := range curves {
		for _, xy := range c.xys {
			xmin, xmax = math.Min(xmin, xy.X), math.Max(xmax, xy.X)
			ymin, ymax = math.Min(ymin, xy.Y), math.Max(ymax, xy.Y)
		}
	}
	if len(curves) > 0 {
		// Fixed ranges: a little room around the data (markers at the
		// ends stay whole), and a visible band around a flat line.
		pad := 0.05 * (ymax - ymin)
		if pad == 0 {
			pad = math.Max(0.01, 0.05*math.Abs(ymax))
		}
		p.Y.Min, p.Y.Max = ymin-pad, ymax+pad
		xpad := 0.0
		if marks {
			xpad = math.Max(0.2, 0.03*(xmax-xmin))
		}
		p.X.Min, p.X.Max = xmin-xpad, xmax+xpad
		if p.X.Min == p.X.Max {
			p.X.Min, p.X.Max = xmin-0.5, xmax+0.5
		}
	}
	for _, c := range curves {
		line, err := plotter.NewLine(c.xys)
		if err != nil {
			return nil, nil, fmt.Errorf("plot %s: %w", c.label, err)
		}
		line.Color = plotutil.Color(c.color)
		if c.baseline {
			// Baselines in black and greys, never a color of a swept line.
			line.Color = baselineColors[baselines%len(baselineColors)]
			baselines++
		}
		line.Width = vg.Points(1.2)
		thumbs := []plot.Thumbnailer{line}
		if c.baseline {
			line.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
			line.Width = vg.Points(1.5)
		}
		p.Add(line)
		if marks {
			pts, err := plotter.NewScatter(c.xys)
			if err != nil {
				return nil, nil, fmt.Errorf("plot %s: %w", c.label, err)
			}
			pts.Color = line.Color
			pts.Shape = plotutil.Shape(c.color)
			p.Add(pts)
			thumbs = append(thumbs, pts)
		}
		legend.Add(c.label, thumbs...)
	}
	return p, &legend, nil
}

var baselineColors = []color.Color{color.Black, color.Gray{Y: 110}, color.Gray{Y: 160}}

// saveWithLegend writes p as name.png and name.svg in dir, with the
// legend in a panel to the right of the axes, so it never covers a line.
func saveWithLegend(p *plot.Plot, legend *plot.Legend, dir, name string) ([]string, error) {
	const w, h = 7.5 * vg.Inch, 4 * vg.Inch
	render := func(c vg.CanvasSizer) {
		area, panel := layout(legend, draw.New(c))
		p.Draw(area)
		legend.Draw(panel)
	}
	var files []string
	for _, ext := range []string{".png", ".svg"} {
		var b bytes.Buffer
		switch ext {
		case ".png":
			c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(144), vgimg.UseBackgroundColor(color.White))
			render(c)
			if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&b); err != nil {
				return nil, fmt.Errorf("plot %s%s: %w", name, ext, err)
			}
		case ".svg":
			c := vgsvg.New(w, h)
			render(c)
			if _, err := c.WriteTo(&b); err != nil {
				return nil, fmt.Errorf("plot %s%s: %w", name, ext, err)
			}
		}
		if err := writeAtomic(filepath.Join(dir, name+ext), b.Bytes()); err != nil {
			return nil, err
		}
		files = append(files, name+ext)
	}
	return files, nil
}

// layout splits the canvas dc: the plot (title, axes, data) on the left,
// the legend in a panel on the right, its top level with the top of the
// data area, below the title.
func layout(legend *plot.Legend, dc draw.Canvas) (area, panel draw.Canvas) {
	r := legend.Rectangle(dc)
	width := r.Max.X - r.Min.X + vg.Points(16)
	area = draw.Crop(dc, 0, -width, 0, 0)
	panel = draw.Crop(dc, dc.Max.X-dc.Min.X-width+vg.Points(8), 0, 0, -vg.Points(28))
	return area, panel
}

// plotCurves writes the learning curves of the report: the training loss
// against optimizer steps and the evaluation metric after every epoch,
// one line per group (seeds averaged; baselines dashed). It returns the
// files written.
func (rep *Report) plotCurves(dir string) ([]string, error) {
	loss, eval, window, err := rep.learningCurves(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	if len(loss) > 0 {
		y := "training loss"
		if window > 1 {
			y += fmt.Sprintf(" (moving average of %d steps)", window)
		}
		p, l, err := drawCurves(loss, "training loss vs step", "optimizer step", y, false)
		if err != nil {
			return nil, err
		}
		f, err := saveWithLegend(p, l, dir, PlotLoss)
		if err != nil {
			return nil, err
		}
		files = append(files, f...)
	}
	if len(eval) > 0 {
		y := rep.Metric
		if rep.Split != "" {
			y = rep.Split + " " + rep.Metric
		}
		p, l, err := drawCurves(eval, rep.Metric+" per epoch", "epoch", y, true)
		if err != nil {
			return nil, err
		}
		p.X.Tick.Marker = integerTicks{}
		f, err := saveWithLegend(p, l, dir, PlotEval)
		if err != nil {
			return nil, err
		}
		files = append(files, f...)
	}
	return files, nil
}

// integerTicks labels whole numbers (epochs).
type integerTicks struct{}

func (integerTicks) Ticks(min, max float64) []plot.Tick {
	step := math.Max(1, math.Ceil((max-min)/10))
	var ticks []plot.Tick
	for v := math.Ceil(min); v <= max; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', 0, 64)})
	}
	return ticks
}
