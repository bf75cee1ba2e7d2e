package data

import (
	"fmt"
	"slices"
	"testing"
)

// labelled returns n examples, pos of them with label 1 and the rest 0.
func labelled(n, pos int) []Example {
	ex := make([]Example, n)
	for i := range ex {
		ex[i] = Example{Text: fmt.Sprint("ex", i), Label: 0}
		if i < pos {
			ex[i].Label = 1
		}
	}
	return ex
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name                  string
		ex                    []Example
		val, test             float64
		nTrain, nVal, nTest   int
		posTrain, posV, posTe int
	}{
		{"stratified 80/10/10", labelled(1000, 200), 0.1, 0.1, 800, 100, 100, 160, 20, 20},
		{"stratified 70/30", labelled(100, 10), 0, 0.3, 70, 0, 30, 7, 0, 3},
		{"unlabelled", []Example{{"a", -1}, {"b", -1}, {"c", -1}, {"d", -1}}, 0.25, 0.25, 2, 1, 1, 0, 0, 0},
		{"negative fractions", labelled(10, 5), -1, -0.5, 10, 0, 0, 5, 0, 0},
		{"fractions above one", labelled(10, 0), 1, 1, 0, 5, 5, 0, 0, 0},
		{"empty", nil, 0.1, 0.1, 0, 0, 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := slices.Clone(tc.ex)
			tr, va, te := Split(tc.ex, tc.val, tc.test, 42)
			if len(tr) != tc.nTrain || len(va) != tc.nVal || len(te) != tc.nTest {
				t.Fatalf("sizes %d/%d/%d, want %d/%d/%d", len(tr), len(va), len(te), tc.nTrain, tc.nVal, tc.nTest)
			}
			if p := countLabels(tr)[1]; p != tc.posTrain {
				t.Errorf("train has %d positives, want %d", p, tc.posTrain)
			}
			if p := countLabels(va)[1]; p != tc.posV {
				t.Errorf("val has %d positives, want %d", p, tc.posV)
			}
			if p := countLabels(te)[1]; p != tc.posTe {
				t.Errorf("test has %d positives, want %d", p, tc.posTe)
			}
			all := slices.Concat(tr, va, te)
			seen := map[string]bool{}
			for _, e := range all {
				if seen[e.Text] {
					t.Fatalf("%q in two splits", e.Text)
				}
				seen[e.Text] = true
			}
			if len(seen) != len(tc.ex) {
				t.Errorf("%d distinct examples out of %d", len(seen), len(tc.ex))
			}
			if !slices.Equal(orig, tc.ex) {
				t.Error("input modified")
			}
		})
	}
}

func TestSplitDeterministic(t *testing.T) {
	ex := labelled(500, 100)
	a1, b1, c1 := Split(ex, 0.1, 0.2, 7)
	a2, b2, c2 := Split(ex, 0.1, 0.2, 7)
	if !slices.Equal(a1, a2) || !slices.Equal(b1, b2) || !slices.Equal(c1, c2) {
		t.Error("same seed, different splits")
	}
	a3, _, _ := Split(ex, 0.1, 0.2, 8)
	if slices.Equal(a1, a3) {
		t.Error("different seeds, same split")
	}
	// The shuffle mixes the classes rather than leaving them in blocks.
	if slices.IsSortedFunc(a1, func(x, y Example) int { return y.Label - x.Label }) {
		t.Error("train split is ordered by label")
	}
}
