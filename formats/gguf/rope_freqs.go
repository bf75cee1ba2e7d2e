package gguf

import (
	"fmt"
	"math"
	"sort"
)

// RopeFreqsTensor is the tensor in which llama.cpp's converter stores Llama
// 3's rope scaling (rope_type "llama3"): one factor per rotated feature
// pair, by which llama.cpp divides that pair's frequency. It has no
// Hugging Face parameter; reading a file turns it back into config.json's
// rope_scaling, and writing one computes it from there.
const RopeFreqsTensor = "rope_freqs.weight"

// ConfigTensor reports whether the file's tensor called name holds
// configuration rather than a model parameter (RopeFreqsTensor in a
// llama file): loaders read it through ModelConfig and skip it.
func ConfigTensor(f *File, name string) bool {
	if name != RopeFreqsTensor {
		return false
	}
	arch, err := f.String("general.architecture")
	return err == nil && arch == "llama"
}

// llama3Factors computes the factors of RopeFreqsTensor from rope_scaling
// llama3's parameters as llama.cpp's converter does: the frequencies
// theta^(-2i/dim) in float32, and per frequency 1 above the high-frequency
// band, factor below the low-frequency one, and 1 / ((1-s)/factor + s) in
// between, s = (orig/wavelength - lo) / (hi - lo).
func llama3Factors(theta float64, dim int, factor, lo, hi, orig float64) []float32 {
	lowWave, highWave := orig/lo, orig/hi
	out := make([]float32, dim/2)
	for i := range out {
		freq := 1 / float32(math.Pow(theta, float64(2*i)/float64(dim)))
		wave := 2 * math.Pi / float64(freq)
		switch {
		case wave < highWave:
			out[i] = 1
		case wave > lowWave:
			out[i] = float32(factor)
		default:
			s := (orig/wave - lo) / (hi - lo)
			out[i] = float32(1 / ((1-s)/factor + s))
		}
	}
	return out
}

// llama3Scaling recovers rope_scaling llama3's parameters from the
// factors of RopeFreqsTensor. The factors fix factor (their largest) and
// the band's edges relative to the original context only, so orig (the
// file's original context length, else Llama 3's 8192) sets the scale;
// any parameters with those ratios give the same frequencies. The result
// must reproduce every factor to 1e-5 relative, else the tensor is not
// Llama 3's scaling and an error says so.
func llama3Scaling(theta float64, dim int, factors []float32, orig float64) (map[string]any, error) {
	if len(factors) != dim/2 {
		return nil, fmt.Errorf("%s has %d factors, want one per rotated pair (%d)", RopeFreqsTensor, len(factors), dim/2)
	}
	factor := 0.0
	for _, f := range factors {
		if !(f >= 1) || math.IsInf(float64(f), 0) {
			return nil, fmt.Errorf("%s: factor %v is not a number of at least 1", RopeFreqsTensor, f)
		}
		factor = max(factor, float64(f))
	}
	if factor == 1 {
		return nil, nil // no scaling
	}
	type point struct{ invWave, s float64 }
	var band []point
	lastOne, firstFull := 0.0, math.Inf(1) // wavelengths at the band's edges
	for i, f := range factors {
		freq := 1 / float32(math.Pow(theta, float64(2*i)/float64(dim)))
		wave := 2 * math.Pi / float64(freq)
		const tol = 1e-6
		switch {
		case math.Abs(float64(f)-1) <= tol:
			lastOne = max(lastOne, wave)
		case math.Abs(float64(f)-factor) <= tol*factor:
			firstFull = min(firstFull, wave)
		default:
			// 1/f = (1-s)/factor + s
			band = append(band, point{1 / wave, (1/float64(f) - 1/factor) / (1 - 1/factor)})
		}
	}
	var lo, hi float64
	switch {
	case len(band) >= 2:
		// s = orig/(hi-lo) * (1/wave) - lo/(hi-lo): a line in 1/wave.
		sort.Slice(band, func(i, j int) bool { return band[i].invWave < band[j].invWave })
		a, b := band[0], band[len(band)-1]
		slope := (b.s - a.s) / (b.invWave - a.invWave)
		intercept := a.s - slope*a.invWave
		if !(slope > 0) {
			return nil, fmt.Errorf("%s: the factors between 1 and %g do not fall with the frequency as Llama 3's scaling does", RopeFreqsTensor, factor)
		}
		width := orig / slope
		lo = -intercept * width
		hi = lo + width
	default:
		// At most one factor between the bands: put the edges at the
		// neighbouring wavelengths (past every wavelength on a side
		// without any), then fit the one factor between them, if any.
		minWave, maxWave := math.Inf(1), 0.0
		for i := range factors {
			wave := 2 * math.Pi / float64(1/float32(math.Pow(theta, float64(2*i)/float64(dim))))
			minWave, maxWave = min(minWave, wave), max(maxWave, wave)
		}
		highEdge, lowEdge := lastOne, firstFull
		if highEdge == 0 {
			highEdge = minWave / 2
		}
		if math.IsInf(lowEdge, 1) {
			lowEdge = maxWave * 2
		}
		hi, lo = orig/highEdge, orig/lowEdge
		if len(band) == 1 {
			p := band[0]
			if lastOne > 0 {
				lo = (orig*p.invWave - p.s*hi) / (1 - p.s)
			} else {
				hi = lo + (orig*p.invWave-lo)/p.s
			}
		}
	}
	if !(lo > 0) || !(hi > lo) {
		return nil, fmt.Errorf("%s: the factors give low_freq_factor %g and high_freq_factor %g, not Llama 3's scaling", RopeFreqsTensor, lo, hi)
	}
	back := llama3Factors(theta, dim, factor, lo, hi, orig)
	for i := range back {
		if d := math.Abs(float64(back[i]) - float64(factors[i])); d > 1e-5*float64(factors[i]) {
			return nil, fmt.Errorf("%s: factor %d is %v, Llama 3's scaling with factor %g, low_freq_factor %g, high_freq_factor %g gives %v",
				RopeFreqsTensor, i, factors[i], factor, lo, hi, back[i])
		}
	}
	return map[string]any{
		"rope_type":                        "llama3",
		"factor":                           factor,
		"low_freq_factor":                  lo,
		"high_freq_factor":                 hi,
		"original_max_position_embeddings": int(orig),
	}, nil
}
