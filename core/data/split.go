package data

import (
	"math"
	"math/rand/v2"
	"slices"
)

// splitStream keeps Split's random stream apart from other users of the
// same seed.
const splitStream = 0x5eed_5971

// Split shuffles ex deterministically with seed and divides it into train,
// validation and test sets holding about 1-valFrac-testFrac, valFrac and
// testFrac of the examples. When the examples carry labels the split is
// stratified: each class is divided in those proportions on its own, so
// every set keeps the class ratio of the whole. Fractions below zero count
// as zero and fractions adding up to more than one are scaled down to one.
// The input is not modified.
func Split(ex []Example, valFrac, testFrac float64, seed int64) (train, val, test []Example) {
	valFrac, testFrac = clampFrac(valFrac), clampFrac(testFrac)
	if s := valFrac + testFrac; s > 1 {
		valFrac, testFrac = valFrac/s, testFrac/s
	}
	rng := rand.New(rand.NewPCG(uint64(seed), splitStream))

	groups := map[int][]int{}
	var classes []int
	for i, e := range ex {
		l := max(e.Label, -1)
		if _, ok := groups[l]; !ok {
			classes = append(classes, l)
		}
		groups[l] = append(groups[l], i)
	}
	slices.Sort(classes)
	for _, c := range classes {
		idx := groups[c]
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		n := len(idx)
		nTest := int(math.Round(testFrac * float64(n)))
		nVal := min(int(math.Round(valFrac*float64(n))), n-nTest)
		for _, i := range idx[:nTest] {
			test = append(test, ex[i])
		}
		for _, i := range idx[nTest : nTest+nVal] {
			val = append(val, ex[i])
		}
		for _, i := range idx[nTest+nVal:] {
			train = append(train, ex[i])
		}
	}
	// Interleave the classes.
	for _, s := range [][]Example{train, val, test} {
		rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	}
	return train, val, test
}

// clampFrac maps NaN and negative fractions to 0 and large ones to 1.
func clampFrac(f float64) float64 {
	if math.IsNaN(f) || f < 0 {
		return 0
	}
	return min(f, 1)
}
