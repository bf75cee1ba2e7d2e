package sweep

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// The report's learning curves: one loss line and one metric line per
// group (seeds averaged), the baselines dashed, and the legend in its own
// panel beside the data, never over it.
func TestLearningCurves(t *testing.T) {
	s := goldenSweep(t)
	rep, err := ReadReport(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	loss, eval, window, err := rep.learningCurves(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	// Groups with a finished point: r=1, r=4, r=16 (one seed) and head;
	// full never ran.
	var labels []string
	for _, c := range loss {
		labels = append(labels, c.label)
	}
	if got := strings.Join(labels, "|"); got != "r=1|r=4|r=16|head (baseline)" || len(eval) != 4 || window != 1 {
		t.Fatalf("loss curves %s, %d eval curves, window %d", got, len(eval), window)
	}
	if !loss[3].baseline || loss[0].baseline || len(loss[0].xys) != 8 || loss[0].xys[0].X != 1 {
		t.Fatalf("curves %+v", loss)
	}
	// r=1 averages seeds 1 and 2: 0.7 + 0.05 + (0.01 + 0.02)/2 at step 1.
	if y := loss[0].xys[0].Y; y < 0.7649 || y > 0.7651 {
		t.Fatalf("r=1 loss at step 1 = %v, want the mean over seeds 0.765", y)
	}
	if e := eval[1].xys; len(e) != 2 || e[1].X != 2 || e[1].Y <= e[0].Y {
		t.Fatalf("r=4 accuracy per epoch %+v", e)
	}
	for _, f := range []string{PlotLoss + ".svg", PlotEval + ".svg", PlotLoss + ".png", PlotEval + ".png"} {
		if _, err := os.Stat(filepath.Join(s.Dir, f)); err == nil {
			t.Fatalf("%s written by ReadReport", f)
		}
	}
	files, err := rep.plotCurves(s.Dir)
	if err != nil || len(files) != 4 {
		t.Fatalf("plotCurves: %v %v", files, err)
	}
	svg, _ := os.ReadFile(filepath.Join(s.Dir, PlotLoss+".svg"))
	for _, want := range []string{"training loss vs step", "optimizer step", "head (baseline)", "r=16", "stroke-dasharray"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Fatalf("%s lacks %q", PlotLoss+".svg", want)
		}
	}
	png, _ := os.ReadFile(filepath.Join(s.Dir, PlotEval+".png"))
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatal("eval-vs-epoch.png is not a PNG")
	}

	// The legend panel starts right of the data area and below the title.
	for _, c := range [][]curve{loss, eval} {
		p, legend, err := drawCurves(c, "a title", "x", "y", true)
		if err != nil {
			t.Fatal(err)
		}
		dc := draw.New(vgsvg.New(7.5*vg.Inch, 4*vg.Inch))
		area, panel := layout(legend, dc)
		data := p.DataCanvas(area)
		r := legend.Rectangle(panel)
		if data.Max.X > panel.Min.X || r.Min.X < panel.Min.X || r.Max.X > dc.Max.X || r.Min.Y < dc.Min.Y || r.Max.Y > data.Max.Y+vg.Points(1) {
			t.Fatalf("legend %v overlaps the data area %v (canvas %v)", r, data.Rectangle, dc.Rectangle)
		}
	}
}
