package train

import "math"

// Classification accumulates predictions for accuracy and F1.
type Classification struct {
	Labels    int
	confusion [][]int // [gold][pred]
	N         int
}

// NewClassification returns an accumulator for n classes.
func NewClassification(n int) *Classification {
	c := &Classification{Labels: n, confusion: make([][]int, n)}
	for i := range c.confusion {
		c.confusion[i] = make([]int, n)
	}
	return c
}

// Add records one prediction.
func (c *Classification) Add(gold, pred int) {
	c.confusion[gold][pred]++
	c.N++
}

// Accuracy is the fraction of correct predictions.
func (c *Classification) Accuracy() float64 {
	if c.N == 0 {
		return 0
	}
	ok := 0
	for i := range c.confusion {
		ok += c.confusion[i][i]
	}
	return float64(ok) / float64(c.N)
}

// F1 returns the F1 score of one class.
func (c *Classification) F1(class int) float64 {
	tp := c.confusion[class][class]
	fp, fn := 0, 0
	for i := 0; i < c.Labels; i++ {
		if i != class {
			fp += c.confusion[i][class]
			fn += c.confusion[class][i]
		}
	}
	if tp == 0 {
		return 0
	}
	p := float64(tp) / float64(tp+fp)
	r := float64(tp) / float64(tp+fn)
	return 2 * p * r / (p + r)
}

// MacroF1 is the unweighted mean of the per-class F1 scores.
func (c *Classification) MacroF1() float64 {
	var s float64
	for i := 0; i < c.Labels; i++ {
		s += c.F1(i)
	}
	return s / float64(c.Labels)
}

// Metrics returns accuracy, macro F1 and, for two classes, the F1 of class 1.
func (c *Classification) Metrics() map[string]float64 {
	m := map[string]float64{"accuracy": c.Accuracy(), "f1": c.MacroF1(), "examples": float64(c.N)}
	if c.Labels == 2 {
		m["f1_positive"] = c.F1(1)
	}
	return m
}

// Perplexity accumulates token losses.
type Perplexity struct {
	Sum    float64
	Tokens int
}

// Add records the mean loss over n tokens.
func (p *Perplexity) Add(meanLoss float64, n int) {
	p.Sum += meanLoss * float64(n)
	p.Tokens += n
}

// Metrics returns the mean loss and its exponential.
func (p *Perplexity) Metrics() map[string]float64 {
	if p.Tokens == 0 {
		return map[string]float64{"loss": math.NaN(), "perplexity": math.NaN(), "tokens": 0}
	}
	l := p.Sum / float64(p.Tokens)
	return map[string]float64{"loss": l, "perplexity": math.Exp(l), "tokens": float64(p.Tokens)}
}
