package llama

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

// ropeConfig is a Llama config with head_dim 16 and the given extra keys.
func ropeConfig(extra string) string {
	cfg := `{"model_type":"llama","hidden_size":64,"intermediate_size":48,"num_hidden_layers":2,
	"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50,"rms_norm_eps":1e-5,
	"rope_theta":10000,"max_position_embeddings":32`
	if extra != "" {
		cfg += "," + extra
	}
	return cfg + "}"
}

// Config.Rope reads rope_scaling's type from rope_type or type, checks the
// keys each type needs and derives the attention factor as transformers
// does; what it cannot compute is refused by name.
func TestRopeConfig(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		typ         string
		dim         int
		attention   float64
		err         string
	}{
		{"absent", ``, RopeDefault, 16, 1, ""},
		{"null", `"rope_scaling":null`, RopeDefault, 16, 1, ""},
		{"default", `"rope_scaling":{"rope_type":"default"}`, RopeDefault, 16, 1, ""},
		{"linear, older type key", `"rope_scaling":{"type":"linear","factor":2}`, RopeLinear, 16, 1, ""},
		{"both keys agree", `"rope_scaling":{"type":"dynamic","rope_type":"dynamic","factor":2}`, RopeDynamic, 16, 1, ""},
		{"yarn default attention", `"rope_scaling":{"rope_type":"yarn","factor":4}`, RopeYarn, 16, 0.1*math.Log(4) + 1, ""},
		{"yarn attention_factor", `"rope_scaling":{"rope_type":"yarn","factor":4,"attention_factor":1.5}`, RopeYarn, 16, 1.5, ""},
		{"yarn mscale ratio", `"rope_scaling":{"rope_type":"yarn","factor":40,"mscale":1,"mscale_all_dim":0.5}`, RopeYarn, 16,
			(0.1*math.Log(40) + 1) / (0.05*math.Log(40) + 1), ""},
		{"llama3", `"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8}`,
			RopeLlama3, 16, 1, ""},
		{"longrope, top-level original", `"original_max_position_embeddings":8,"rope_scaling":{"type":"longrope","short_factor":[1,1,1,1,1,1,1,1],"long_factor":[2,2,2,2,2,2,2,2]}`,
			RopeLongrope, 16, math.Sqrt(1 + math.Log(4)/math.Log(8)), ""},
		{"longrope factor", `"rope_scaling":{"type":"longrope","factor":2,"short_factor":[1,1,1,1,1,1,1,1],"long_factor":[2,2,2,2,2,2,2,2]}`,
			RopeLongrope, 16, math.Sqrt(1 + math.Log(2)/math.Log(32)), ""},
		{"partial 1", `"partial_rotary_factor":1.0`, RopeDefault, 16, 1, ""},

		{"unknown type", `"rope_scaling":{"rope_type":"mrope","factor":2}`, "", 0, 0,
			`type "mrope" is not supported (supported: default, dynamic, linear, llama3, longrope, yarn)`},
		{"no type", `"rope_scaling":{"factor":2}`, "", 0, 0, "no rope_type"},
		{"keys disagree", `"rope_scaling":{"type":"linear","rope_type":"yarn","factor":2}`, "", 0, 0, "disagree"},
		{"linear without factor", `"rope_scaling":{"type":"linear"}`, "", 0, 0, "(linear): missing factor"},
		{"factor not a number", `"rope_scaling":{"type":"linear","factor":"2"}`, "", 0, 0, "factor"},
		{"llama3 without low_freq_factor", `"rope_scaling":{"rope_type":"llama3","factor":8,"high_freq_factor":4,"original_max_position_embeddings":8}`,
			"", 0, 0, "missing low_freq_factor"},
		{"llama3 bands reversed", `"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":4,"high_freq_factor":1,"original_max_position_embeddings":8}`,
			"", 0, 0, "high_freq_factor"},
		{"longrope short_factor length", `"original_max_position_embeddings":8,"rope_scaling":{"type":"longrope","short_factor":[1,1],"long_factor":[2,2,2,2,2,2,2,2]}`,
			"", 0, 0, "short_factor has 2 values, want 8"},
		{"longrope without factor", `"rope_scaling":{"type":"longrope","short_factor":[1,1,1,1,1,1,1,1],"long_factor":[2,2,2,2,2,2,2,2]}`,
			"", 0, 0, "needs factor or attention_factor"},
		{"partial on llama", `"partial_rotary_factor":0.5`, "", 0, 0, "partial_rotary_factor 0.5 is not supported by Llama"},
		{"partial out of range", `"partial_rotary_factor":0`, "", 0, 0, "partial_rotary_factor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(ropeConfig(tc.extra)))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Rope()
			if err != nil {
				t.Fatal(err)
			}
			if r.Type != tc.typ || r.Dim != tc.dim || math.Abs(r.Attention-tc.attention) > 1e-12 {
				t.Fatalf("type %s, dim %d, attention %v; want %s, %d, %v", r.Type, r.Dim, r.Attention, tc.typ, tc.dim, tc.attention)
			}
		})
	}
}

// Frequencies follows each type's definition: linear divides the default
// frequencies, dynamic grows the base past max_position_embeddings, yarn
// extrapolates the fast pairs and interpolates the slow ones, llama3 keeps
// the high frequencies, divides the low ones and blends in between, and
// longrope switches from short to long factors past the original context.
func TestRopeFrequencies(t *testing.T) {
	def := ops.RopeInvFreq(16, 10000)
	freqs := func(t *testing.T, extra string, seqLen int) ([]float32, float32) {
		t.Helper()
		c, err := ParseConfig([]byte(ropeConfig(extra)))
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Rope()
		if err != nil {
			t.Fatal(err)
		}
		return r.Frequencies(seqLen)
	}
	near := func(t *testing.T, what string, got float32, want float64) {
		t.Helper()
		if math.Abs(float64(got)-want) > 1e-6*math.Abs(want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	t.Run("linear", func(t *testing.T) {
		inv, att := freqs(t, `"rope_scaling":{"type":"linear","factor":4}`, 10)
		for i := range inv {
			near(t, "pair", inv[i], float64(def[i])/4)
		}
		if att != 1 {
			t.Errorf("attention %v", att)
		}
	})
	t.Run("dynamic", func(t *testing.T) {
		extra := `"rope_scaling":{"type":"dynamic","factor":2}`
		short, _ := freqs(t, extra, 32)
		for i := range short {
			if short[i] != def[i] {
				t.Fatalf("pair %d: %v within max_position_embeddings, want the default %v", i, short[i], def[i])
			}
		}
		long, _ := freqs(t, extra, 64) // base * (2*64/32 - 1)^(16/14)
		base := 10000 * math.Pow(3, 16.0/14)
		for i := range long {
			near(t, "pair", long[i], 1/math.Pow(base, float64(2*i)/16))
		}
	})
	t.Run("yarn", func(t *testing.T) {
		// original 64, beta 32 and 1 over base 1e4, dim 16: the ramp runs
		// from pair floor(-0.99) -> 0 to pair ceil(2.02) = 3.
		inv, att := freqs(t, `"rope_scaling":{"rope_type":"yarn","factor":4,"original_max_position_embeddings":64}`, 10)
		for i := range inv {
			ramp := min(float64(i)/3, 1) // share of the interpolated frequency
			near(t, "pair", inv[i], float64(def[i])/4*ramp+float64(def[i])*(1-ramp))
		}
		near(t, "attention", att, 0.1*math.Log(4)+1)
	})
	t.Run("llama3", func(t *testing.T) {
		// original 64, bands at wavelengths 16 and 64: pair 0 (6.3) high,
		// pairs 1 and 2 (19.9, 62.8) blended, the others low.
		inv, _ := freqs(t, `"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":64}`, 10)
		near(t, "pair 0", inv[0], float64(def[0]))
		for _, i := range []int{1, 2} {
			s := (64/(2*math.Pi/float64(def[i])) - 1) / 3
			near(t, "blended pair", inv[i], (1-s)*float64(def[i])/8+s*float64(def[i]))
		}
		for i := 3; i < len(inv); i++ {
			near(t, "low pair", inv[i], float64(def[i])/8)
		}
	})
	t.Run("longrope", func(t *testing.T) {
		extra := `"original_max_position_embeddings":8,"rope_scaling":{"type":"longrope","short_factor":[1,1,1,1,1,1,1,2],"long_factor":[3,3,3,3,3,3,3,3]}`
		short, att := freqs(t, extra, 8)
		long, _ := freqs(t, extra, 9)
		near(t, "short pair 0", short[0], float64(def[0]))
		near(t, "short pair 7", short[7], float64(def[7])/2)
		for i := range long {
			near(t, "long pair", long[i], float64(def[i])/3)
		}
		near(t, "attention", att, math.Sqrt(1+math.Log(4)/math.Log(8)))
	})
}

// A scaled Llama decodes with the key/value cache as its forward pass
// computes the same sequence: the rotary frequencies of a step are those of
// the whole sequence so far. With longrope, crossing
// original_max_position_embeddings (either way, after Truncate) recomputes
// the cached keys with the other factors.
func TestStepScaledRope(t *testing.T) {
	for _, extra := range []string{
		`"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":16}`,
		`"rope_scaling":{"rope_type":"yarn","factor":4,"original_max_position_embeddings":8}`,
		`"original_max_position_embeddings":8,"rope_scaling":{"type":"longrope","short_factor":[1,1.1,1.2,1.4,1.6,2,2.5,3],"long_factor":[1,1.5,2,3,5,8,12,20]}`,
	} {
		m := randomModel(t, ropeConfig(extra))
		ids := []int{1, 7, 3, 9, 4, 12, 8, 2, 30, 5, 6, 41, 17}
		prefix := func(n int) []float32 {
			y, err := m.Logits(model.Batch{IDs: [][]int{ids[:n]}})
			if err != nil {
				t.Fatal(err)
			}
			return ops.Data(y)[(n-1)*m.Config.VocabSize:]
		}
		c := m.NewCache()
		check := func(n int, y []float32) {
			t.Helper()
			want := prefix(n)
			for i := range want {
				if math.Abs(float64(y[i]-want[i])) > 1e-5*math.Max(1, math.Abs(float64(want[i]))) {
					t.Fatalf("%s: %d tokens: logit %d is %v, forward pass %v", extra, n, i, y[i], want[i])
				}
			}
		}
		step := func(n int, next []int) {
			t.Helper()
			y, err := m.Step(c, next)
			if err != nil {
				t.Fatal(err)
			}
			check(n, ops.Data(y))
		}
		step(5, ids[:5])
		for n := 6; n <= len(ids); n++ {
			step(n, ids[n-1:n])
		}
		c.(*Cache).Truncate(4) // back below the original context
		step(6, ids[4:6])
		if c.Len() != 6 {
			t.Fatalf("cache holds %d tokens, want 6", c.Len())
		}
	}
}

// The frequencies of a batch follow its longest sequence's real tokens,
// not the padded length: padding a longrope batch further changes nothing,
// and a short sequence takes the long factors of the longest one, as in
// one transformers forward pass over the batch.
func TestRopeBatchLength(t *testing.T) {
	m := randomModel(t, ropeConfig(`"original_max_position_embeddings":8,"rope_scaling":{"type":"longrope","short_factor":[1,1.1,1.2,1.4,1.6,2,2.5,3],"long_factor":[1,1.5,2,3,5,8,12,20]}`))
	short, eight, nine := []int{3, 4, 5, 6, 7}, []int{1, 2, 3, 4, 5, 6, 7, 8}, []int{1, 2, 3, 4, 5, 6, 7, 8, 9}
	v := m.Config.VocabSize
	// logits returns the first sequence's logits, the batch padded to T.
	logits := func(T int, seqs ...[]int) []float32 {
		b := model.NewBatch(seqs, 0)
		for i := range b.IDs {
			for len(b.IDs[i]) < T {
				b.IDs[i], b.Mask[i] = append(b.IDs[i], 0), append(b.Mask[i], false)
			}
		}
		y, err := m.Logits(b)
		if err != nil {
			t.Fatal(err)
		}
		return ops.Data(y)[:len(seqs[0])*v]
	}
	alone := logits(5, short)
	if got := logits(12, short, eight); !slices.Equal(got, alone) {
		t.Fatal("padding a batch of 8 tokens to 12 switched it to the long factors")
	}
	if got := logits(9, short, nine); slices.Equal(got, alone) {
		t.Fatal("the short sequence in a batch with a long one kept its short factors")
	}
}
