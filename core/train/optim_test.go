package train

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/ops"
)

type torchRef struct {
	Init   [2]json.RawMessage `json:"init"`
	Grads  [][2]json.RawMessage
	Steps  [][2]json.RawMessage
	Norms  []float64
	LR     float64 `json:"lr"`
	WD     float64 `json:"weight_decay"`
	Max    float64 `json:"max_norm"`
	Linear []float64
	Cosine []float64
	Base   float64
}

func flat(t *testing.T, raw json.RawMessage) []float32 {
	var m [][]float64
	if err := json.Unmarshal(raw, &m); err != nil {
		var v []float64
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		m = [][]float64{v}
	}
	var out []float32
	for _, r := range m {
		for _, x := range r {
			out = append(out, float32(x))
		}
	}
	return out
}

// AdamW with clipping matches torch.optim.AdamW + clip_grad_norm_ step by
// step (tools/refgen/adamw.py).
func TestAdamWMatchesTorch(t *testing.T) {
	raw, err := os.ReadFile("testdata/adamw.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref torchRef
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	p := nn.NewParam(ops.New(3, 4, flat(t, ref.Init[0])))
	q := nn.NewParam(ops.New(1, 5, flat(t, ref.Init[1])))
	params := []*nn.Param{p, q}
	opt := NewAdamW(params, 0.9, 0.999, 1e-8, ref.WD)
	for s := range ref.Steps {
		p.AccGrad(ops.New(3, 4, flat(t, ref.Grads[s][0])))
		q.AccGrad(ops.New(1, 5, flat(t, ref.Grads[s][1])))
		n := ClipGradNorm(params, ref.Max)
		if math.Abs(n-ref.Norms[s]) > 1e-5*ref.Norms[s] {
			t.Fatalf("step %d: grad norm %v, torch %v", s, n, ref.Norms[s])
		}
		opt.Step(ref.LR)
		for k, par := range params {
			want := flat(t, ref.Steps[s][k])
			for i, w := range want {
				if g := ops.Data(par)[i]; math.Abs(float64(g-w)) > 1e-6 {
					t.Fatalf("step %d param %d[%d] = %v, torch %v", s, k, i, g, w)
				}
			}
		}
	}
	for _, c := range []struct {
		kind string
		want []float64
	}{{"linear", ref.Linear}, {"cosine", ref.Cosine}} {
		s := Schedule{Kind: c.kind, Base: ref.Base, Warmup: 3, Total: 10}
		for i, w := range c.want {
			if g := s.LR(i); math.Abs(g-w) > 1e-9 {
				t.Fatalf("%s step %d: lr %v, torch %v", c.kind, i, g, w)
			}
		}
	}
}

func TestMetrics(t *testing.T) {
	c := NewClassification(2)
	for _, p := range [][2]int{{0, 0}, {0, 0}, {0, 1}, {1, 1}, {1, 0}, {1, 1}} {
		c.Add(p[0], p[1])
	}
	if c.Accuracy() != 4.0/6 {
		t.Errorf("accuracy %v", c.Accuracy())
	}
	// class 1: tp 2, fp 1, fn 1 -> p = r = 2/3 -> f1 2/3
	if math.Abs(c.F1(1)-2.0/3) > 1e-12 || math.Abs(c.MacroF1()-2.0/3) > 1e-12 {
		t.Errorf("f1 %v macro %v", c.F1(1), c.MacroF1())
	}
	var pp Perplexity
	pp.Add(math.Log(10), 4)
	if m := pp.Metrics(); math.Abs(m["perplexity"]-10) > 1e-9 {
		t.Errorf("perplexity %v", m)
	}
}
