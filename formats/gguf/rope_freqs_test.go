package gguf

import (
	"math"
	"strings"
	"testing"
)

// The llama3 rope scaling of Llama 3.1 and 3.2 (and a context of our
// own) comes back from the factors llama.cpp's converter stores: the same
// factors, and factor, low_freq_factor and high_freq_factor themselves when
// the original context is the one assumed.
func TestLlama3ScalingFromFactors(t *testing.T) {
	for _, c := range []struct {
		name                 string
		theta                float64
		dim                  int
		factor, lo, hi, orig float64
		exactParams          bool
	}{
		{"llama 3.1", 500000, 128, 8, 1, 4, 8192, true},
		{"llama 3.2", 500000, 64, 32, 1, 4, 8192, true},
		{"small context", 10000, 16, 8, 1, 4, 64, true},
		{"other bands", 10000, 64, 4, 2, 16, 512, true},
		{"one factor between, none at 1", 10000, 16, 8, 1, 4, 16, false},
		{"one factor between", 10000, 16, 8, 1, 4, 200, false},
		{"none between", 10000, 16, 8, 1, 1.5, 1000, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := llama3Factors(c.theta, c.dim, c.factor, c.lo, c.hi, c.orig)
			ones, full := 0, 0
			for _, f := range fs {
				switch f {
				case 1:
					ones++
				case float32(c.factor):
					full++
				}
			}
			if full == 0 || ones == 0 && c.exactParams {
				t.Fatalf("factors %v do not reach both bands: the case tests nothing", fs)
			}
			t.Logf("factors %v", fs)
			rs, err := llama3Scaling(c.theta, c.dim, fs, c.orig)
			if err != nil {
				t.Fatal(err)
			}
			if rs["rope_type"] != "llama3" || rs["factor"] != c.factor || rs["original_max_position_embeddings"] != int(c.orig) {
				t.Fatalf("rope_scaling %v", rs)
			}
			lo, hi := rs["low_freq_factor"].(float64), rs["high_freq_factor"].(float64)
			if c.exactParams && (math.Abs(lo-c.lo) > 1e-4*c.lo || math.Abs(hi-c.hi) > 1e-4*c.hi) {
				t.Fatalf("low/high freq factors %g, %g; want %g, %g", lo, hi, c.lo, c.hi)
			}
			back := llama3Factors(c.theta, c.dim, c.factor, lo, hi, c.orig)
			for i := range fs {
				if math.Abs(float64(back[i]-fs[i])) > 1e-6*float64(fs[i]) {
					t.Fatalf("factor %d: %v from the recovered parameters, %v stored", i, back[i], fs[i])
				}
			}
		})
	}
	if rs, err := llama3Scaling(10000, 8, []float32{1, 1, 1, 1}, 8192); rs != nil || err != nil {
		t.Fatalf("all-one factors: %v, %v; want no scaling", rs, err)
	}
	for _, c := range []struct {
		name    string
		factors []float32
		want    string
	}{
		{"wrong count", []float32{1, 2}, "has 2 factors"},
		{"below one", []float32{1, 0.5, 2, 2}, "at least 1"},
		{"not llama3", []float32{3, 1, 3, 1}, "Llama 3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := llama3Scaling(10000, 8, c.factors, 8192)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}
