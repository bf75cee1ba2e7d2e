package llama

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/surgeon-ml/surgeon/core/ops"
)

// Rope types of config.json's rope_scaling (its "rope_type" key, or the
// older "type").
const (
	RopeDefault  = "default"
	RopeLinear   = "linear"
	RopeDynamic  = "dynamic"
	RopeYarn     = "yarn"
	RopeLongrope = "longrope"
	RopeLlama3   = "llama3"
)

// RopeTypes lists the supported rope types, sorted.
var RopeTypes = []string{RopeDefault, RopeDynamic, RopeLinear, RopeLlama3, RopeLongrope, RopeYarn}

// Rope is a model's rotary position embedding: the inverse frequency of
// each rotated feature pair and the attention factor that scales cos and
// sin, computed from config.json (rope_theta, rope_scaling,
// partial_rotary_factor, head_dim, max_position_embeddings) as transformers'
// modeling_rope_utils computes them (transformers 4.56 and 4.57, where YaRN
// takes rope_scaling's factor as given).
//
// The dynamic and longrope types depend on the length of the sequence, as
// transformers' rotary embedding sees it: the largest position id of the
// forward pass plus one (SeqLen; with a key/value cache, every token so
// far). Dynamic NTK keeps the default frequencies
// up to max_position_embeddings and grows the base past it, as a fresh
// transformers model does for that pass; LongRoPE uses long_factor once the
// sequence is longer than original_max_position_embeddings, short_factor
// otherwise.
type Rope struct {
	// Type is one of RopeTypes.
	Type string
	// Theta is rope_theta, the base.
	Theta float64
	// Dim is the number of rotated features of each head,
	// int(head_dim * partial_rotary_factor); the others pass unchanged.
	Dim int
	// MaxPositions is max_position_embeddings.
	MaxPositions int
	// Factor is rope_scaling's factor (linear, dynamic, yarn, llama3), or
	// for longrope max_position_embeddings / original_max_position_embeddings
	// when the latter is a top-level key.
	Factor float64
	// OriginalMaxPositions is the pretraining context of yarn, llama3 and
	// longrope.
	OriginalMaxPositions int
	// Attention is the factor cos and sin are multiplied by (yarn,
	// longrope; 1 for the others).
	Attention float64
	// BetaFast, BetaSlow and Truncate bound YaRN's ramp between
	// interpolated and extrapolated frequencies.
	BetaFast, BetaSlow float64
	Truncate           bool
	// LowFreqFactor and HighFreqFactor bound Llama 3's smoothing band.
	LowFreqFactor, HighFreqFactor float64
	// ShortFactor and LongFactor divide LongRoPE's frequencies, Dim/2 each.
	ShortFactor, LongFactor []float64
}

// Rope returns the config's rotary embedding, or an error naming the
// rope_scaling key or partial_rotary_factor it cannot compute.
func (c *Config) Rope() (*Rope, error) {
	hd := c.HeadDim
	if hd == 0 && c.NumAttentionHeads > 0 {
		hd = c.HiddenSize / c.NumAttentionHeads
	}
	r := &Rope{Type: RopeDefault, Theta: c.RopeTheta, Dim: hd, MaxPositions: c.MaxPositionEmbeddings, Attention: 1}
	if f := c.PartialRotaryFactor; f != nil {
		switch {
		case *f <= 0 || *f > 1:
			return nil, fmt.Errorf("partial_rotary_factor %v is not in (0, 1]", *f)
		case *f != 1 && !c.PartialRotary:
			return nil, fmt.Errorf("partial_rotary_factor %v is not supported by %s (its attention rotates the whole head; only 1)", *f, c.Prefix())
		}
		r.Dim = int(float64(hd) * *f)
		if r.Dim <= 0 || r.Dim%2 != 0 {
			return nil, fmt.Errorf("partial_rotary_factor %v rotates %d of head_dim %d features, not a positive even number", *f, r.Dim, hd)
		}
	}
	if r.Theta <= 0 {
		return nil, fmt.Errorf("rope_theta %v is not positive", r.Theta)
	}
	if len(c.RopeScaling) == 0 || string(c.RopeScaling) == "null" {
		return r, nil
	}
	var rs map[string]json.RawMessage
	if err := json.Unmarshal(c.RopeScaling, &rs); err != nil {
		return nil, fmt.Errorf("rope_scaling: %w", err)
	}
	typ, err := ropeType(rs)
	if err != nil {
		return nil, err
	}
	p := ropeKeys{typ: typ, m: rs}
	r.Type = typ
	switch typ {
	case RopeDefault:
	case RopeLinear, RopeDynamic:
		r.Factor = p.num("factor", 0, true)
	case RopeLlama3:
		r.Factor = p.num("factor", 0, true)
		r.LowFreqFactor = p.num("low_freq_factor", 0, true)
		r.HighFreqFactor = p.num("high_freq_factor", 0, true)
		r.OriginalMaxPositions = p.integer("original_max_position_embeddings", 0, true)
		if p.err == nil && r.HighFreqFactor <= r.LowFreqFactor {
			p.err = fmt.Errorf("rope_scaling (llama3): high_freq_factor %v must be greater than low_freq_factor %v", r.HighFreqFactor, r.LowFreqFactor)
		}
	case RopeYarn:
		r.Factor = p.num("factor", 0, true)
		r.OriginalMaxPositions = p.integer("original_max_position_embeddings", c.MaxPositionEmbeddings, false)
		r.BetaFast = p.num("beta_fast", 32, false)
		r.BetaSlow = p.num("beta_slow", 1, false)
		r.Truncate = p.boolean("truncate", true)
		att := p.num("attention_factor", 0, false)
		mscale, mscaleAll := p.num("mscale", 0, false), p.num("mscale_all_dim", 0, false)
		switch {
		case att != 0:
			r.Attention = att
		case mscale != 0 && mscaleAll != 0:
			r.Attention = yarnMscale(r.Factor, mscale) / yarnMscale(r.Factor, mscaleAll)
		default:
			r.Attention = yarnMscale(r.Factor, 1)
		}
	case RopeLongrope:
		r.ShortFactor = p.list("short_factor", r.Dim/2)
		r.LongFactor = p.list("long_factor", r.Dim/2)
		if c.OriginalMaxPositionEmbeddings > 0 {
			// transformers prefers the top-level key (Phi-3's) to
			// rope_scaling's factor.
			r.OriginalMaxPositions = c.OriginalMaxPositionEmbeddings
			r.Factor = float64(c.MaxPositionEmbeddings) / float64(c.OriginalMaxPositionEmbeddings)
		} else {
			r.OriginalMaxPositions = c.MaxPositionEmbeddings
			r.Factor = p.num("factor", 0, false)
		}
		switch att := p.num("attention_factor", 0, false); {
		case att != 0:
			r.Attention = att
		case p.err == nil && r.Factor == 0:
			p.err = fmt.Errorf("rope_scaling (longrope): needs factor or attention_factor when original_max_position_embeddings is not set")
		case r.Factor > 1:
			r.Attention = math.Sqrt(1 + math.Log(r.Factor)/math.Log(float64(r.OriginalMaxPositions)))
		}
	}
	if p.err != nil {
		return nil, p.err
	}
	if typ == RopeDynamic && (r.MaxPositions <= 0 || r.Dim <= 2) {
		return nil, fmt.Errorf("rope_scaling (dynamic): needs a positive max_position_embeddings (%d) and more than 2 rotated features (%d)", r.MaxPositions, r.Dim)
	}
	if r.OriginalMaxPositions < 0 || (r.OriginalMaxPositions == 0 && (typ == RopeYarn || typ == RopeLongrope)) {
		return nil, fmt.Errorf("rope_scaling (%s): original_max_position_embeddings %d is not positive", typ, r.OriginalMaxPositions)
	}
	return r, nil
}

// ropeType reads rope_scaling's type, from "rope_type" or the older "type".
func ropeType(rs map[string]json.RawMessage) (string, error) {
	var typ, old string
	if raw, ok := rs["rope_type"]; ok {
		if err := json.Unmarshal(raw, &typ); err != nil {
			return "", fmt.Errorf("rope_scaling: rope_type %s is not a string", raw)
		}
	}
	if raw, ok := rs["type"]; ok {
		if err := json.Unmarshal(raw, &old); err != nil {
			return "", fmt.Errorf("rope_scaling: type %s is not a string", raw)
		}
	}
	switch {
	case typ != "" && old != "" && typ != old:
		return "", fmt.Errorf("rope_scaling: rope_type %q and type %q disagree", typ, old)
	case typ == "":
		typ = old
	}
	if typ == "" {
		return "", fmt.Errorf("rope_scaling has no rope_type (supported: %s)", strings.Join(RopeTypes, ", "))
	}
	if !slices.Contains(RopeTypes, typ) {
		return "", fmt.Errorf("rope_scaling type %q is not supported (supported: %s)", typ, strings.Join(RopeTypes, ", "))
	}
	return typ, nil
}

// ropeKeys reads rope_scaling's values, keeping the first error.
type ropeKeys struct {
	typ string
	m   map[string]json.RawMessage
	err error
}

// present reports whether key is set to something other than null.
func (p *ropeKeys) present(key string) bool {
	raw, ok := p.m[key]
	return ok && string(raw) != "null"
}

func (p *ropeKeys) fail(key string, raw json.RawMessage, want string) {
	if p.err == nil {
		p.err = fmt.Errorf("rope_scaling (%s): %s %s is not %s", p.typ, key, raw, want)
	}
}

// num returns a positive number, def when absent, null or 0 (as
// transformers' `get(key) or def`), or an error when required and absent.
func (p *ropeKeys) num(key string, def float64, required bool) float64 {
	if !p.present(key) {
		if required && p.err == nil {
			p.err = fmt.Errorf("rope_scaling (%s): missing %s", p.typ, key)
		}
		return def
	}
	var v float64
	if err := json.Unmarshal(p.m[key], &v); err != nil || v < 0 || math.IsInf(v, 0) {
		p.fail(key, p.m[key], "a non-negative number")
		return def
	}
	if v == 0 {
		if required {
			p.fail(key, p.m[key], "positive")
		}
		return def
	}
	return v
}

// integer returns a positive integer, def when absent or null.
func (p *ropeKeys) integer(key string, def int, required bool) int {
	v := p.num(key, float64(def), required)
	if v != math.Trunc(v) || v > math.MaxInt32 {
		p.fail(key, p.m[key], "an integer")
		return def
	}
	return int(v)
}

// boolean returns a boolean: def when absent, false when null (as
// transformers' truthiness of `get(key, def)`).
func (p *ropeKeys) boolean(key string, def bool) bool {
	raw, ok := p.m[key]
	switch {
	case !ok:
		return def
	case string(raw) == "null":
		return false
	}
	var v bool
	if err := json.Unmarshal(p.m[key], &v); err != nil {
		p.fail(key, p.m[key], "a boolean")
		return def
	}
	return v
}

// list returns a list of n positive numbers.
func (p *ropeKeys) list(key string, n int) []float64 {
	if !p.present(key) {
		if p.err == nil {
			p.err = fmt.Errorf("rope_scaling (%s): missing %s", p.typ, key)
		}
		return nil
	}
	var v []float64
	if err := json.Unmarshal(p.m[key], &v); err != nil {
		p.fail(key, p.m[key], "a list of numbers")
		return nil
	}
	if len(v) != n && p.err == nil {
		p.err = fmt.Errorf("rope_scaling (%s): %s has %d values, want %d (half the %d rotated features)", p.typ, key, len(v), n, 2*n)
	}
	for _, f := range v {
		if f <= 0 && p.err == nil {
			p.err = fmt.Errorf("rope_scaling (%s): %s holds %v, not positive", p.typ, key, f)
		}
	}
	return v
}

// yarnMscale is YaRN's attention scale for a context scaled by s: 1 up to
// s = 1, then 0.1*m*ln(s) + 1.
func yarnMscale(s, m float64) float64 {
	if s <= 1 {
		return 1
	}
	return 0.1*m*math.Log(s) + 1
}

// SeqLen returns the sequence length the rotary frequencies of a forward
// pass over a batch depend on: the largest position id plus one, that is
// the number of real tokens of the longest sequence (positions count real
// tokens, as transformers' generation derives them from the attention
// mask), whatever the padding.
func SeqLen(lay ops.Layout) int {
	if lay.Valid == nil {
		return lay.Len
	}
	n := 0
	for _, row := range lay.Valid {
		k := 0
		for _, v := range row {
			if v {
				k++
			}
		}
		n = max(n, k)
	}
	return n
}

// LongFactors reports whether a longrope embedding uses its long factors
// for a sequence of seqLen tokens; false for the other types.
func (r *Rope) LongFactors(seqLen int) bool {
	return r.Type == RopeLongrope && seqLen > r.OriginalMaxPositions
}

// Frequencies returns the inverse frequency of each of the Dim/2 rotated
// pairs and the attention factor, for a forward pass over a sequence of
// seqLen tokens (see SeqLen).
func (r *Rope) Frequencies(seqLen int) (inv []float32, attention float32) {
	switch r.Type {
	case RopeLinear:
		inv = ops.RopeInvFreq(r.Dim, r.Theta)
		for i := range inv {
			inv[i] /= float32(r.Factor)
		}
	case RopeDynamic:
		// NTK-aware scaling of the base once past max_position_embeddings.
		s := float64(max(seqLen, r.MaxPositions))
		d := float64(r.Dim)
		base := r.Theta * math.Pow(r.Factor*s/float64(r.MaxPositions)-(r.Factor-1), d/(d-2))
		inv = ops.RopeInvFreq(r.Dim, base)
	case RopeYarn:
		inv = r.yarn()
	case RopeLongrope:
		ext := r.ShortFactor
		if r.LongFactors(seqLen) {
			ext = r.LongFactor
		}
		inv = make([]float32, r.Dim/2)
		for i := range inv {
			inv[i] = float32(1 / (ext[i] * math.Pow(r.Theta, float64(2*i)/float64(r.Dim))))
		}
	case RopeLlama3:
		inv = r.llama3()
	default:
		inv = ops.RopeInvFreq(r.Dim, r.Theta)
	}
	return inv, float32(r.Attention)
}

// yarn blends interpolated (divided by the factor) and extrapolated
// (unchanged) frequencies along a linear ramp over the pair index, between
// the pairs that turn beta_fast and beta_slow times over the original
// context.
func (r *Rope) yarn() []float32 {
	d := float64(r.Dim)
	corr := func(rot float64) float64 {
		return d * math.Log(float64(r.OriginalMaxPositions)/(rot*2*math.Pi)) / (2 * math.Log(r.Theta))
	}
	lo, hi := corr(r.BetaFast), corr(r.BetaSlow)
	if r.Truncate {
		lo, hi = math.Floor(lo), math.Ceil(hi)
	}
	lo, hi = max(lo, 0), min(hi, d-1)
	if lo == hi {
		hi += 0.001
	}
	inv := make([]float32, r.Dim/2)
	for i := range inv {
		pos := math.Pow(r.Theta, float64(2*i)/d)
		ramp := min(max((float64(i)-lo)/(hi-lo), 0), 1)
		extra := 1 - ramp // share of the extrapolated frequency
		inv[i] = float32(1/(r.Factor*pos)*(1-extra) + 1/pos*extra)
	}
	return inv
}

// llama3 divides the low frequencies (wavelength above
// original_max_position_embeddings / low_freq_factor) by the factor, keeps
// the high ones (below original / high_freq_factor) and blends in between,
// in float32 as transformers computes it.
func (r *Rope) llama3() []float32 {
	inv := ops.RopeInvFreq(r.Dim, r.Theta)
	old := float32(r.OriginalMaxPositions)
	low, high := float32(r.LowFreqFactor), float32(r.HighFreqFactor)
	lowWave, highWave := old/low, old/high
	factor := float32(r.Factor)
	for i, f := range inv {
		wave := float32(2*math.Pi) / f
		switch {
		case wave < highWave:
		case wave > lowWave:
			inv[i] = f / factor
		default:
			smooth := (old/wave - low) / (high - low)
			inv[i] = (1-smooth)*f/factor + smooth*f
		}
	}
	return inv
}
