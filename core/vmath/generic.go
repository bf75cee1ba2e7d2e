package vmath

import (
	"math"

	"github.com/surgeon-ml/surgeon/core/vmath/internal/coef"
)

// The pure-Go kernels, used where the assembly ones are not available. They
// evaluate the same approximations as the assembly, without fused
// multiply-adds, so results agree to within an ulp or two.

// exp32 is a float32 exponential accurate to about one ulp. Results below
// 2^-126 flush to zero; NaN stays NaN.
func exp32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > coef.ExpHi:
		return float32(math.Inf(1))
	case x < coef.ExpLo:
		return 0
	}
	fn := x*coef.Log2e + 0.5
	n := int32(fn)
	if fn < 0 && float32(n) != fn {
		n-- // floor
	}
	nf := float32(n)
	r := x - nf*coef.Ln2Hi + nf*coef.Ln2Lo
	p := coef.ExpPoly[0]
	for _, c := range coef.ExpPoly[1:] {
		p = p*r + c
	}
	y := p*r*r + r + 1
	// Two power-of-two factors keep n = 128 (x close to ExpHi) in range.
	n1 := n >> 1
	return y * math.Float32frombits(uint32(n1+127)<<23) * math.Float32frombits(uint32(n-n1+127)<<23)
}

// cdfTerms returns the standard normal CDF Phi(x) and exp(-x*x/2).
func cdfTerms(x float32) (cdf, e float32) {
	t := 1 / (1 + abs32(x)*coef.HalfSqrtHalf)
	p := coef.ErfcPoly[0]
	for _, c := range coef.ErfcPoly[1:] {
		p = p*t + c
	}
	s := x * x
	e = exp32(-0.5 * s)
	if abs32(x) < 1 {
		q := coef.CentralPoly[0]
		for _, c := range coef.CentralPoly[1:] {
			q = q*s + c
		}
		return 0.5 + x*q, e
	}
	h := t * (0.5 * p) * e // erfc(|x|/sqrt2)/2 = Phi(-|x|)
	if math.Signbit(float64(x)) {
		return h, e
	}
	return 1 - h, e
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

func expGeneric(dst, src []float32) {
	for i, x := range src {
		dst[i] = exp32(x)
	}
}

// expSumGeneric adds in eight interleaved partial sums reduced pairwise, the
// order of the assembly kernel.
func expSumGeneric(dst, src []float32, shift float32) float32 {
	var s [8]float32
	for i, x := range src {
		e := exp32(x - shift)
		dst[i] = e
		s[i%8] += e
	}
	return reduce8(&s)
}

// reduce8 sums eight lanes in the order of the assembly's horizontal sum.
func reduce8(s *[8]float32) float32 {
	a0, a1, a2, a3 := s[0]+s[4], s[1]+s[5], s[2]+s[6], s[3]+s[7]
	return (a0 + a1) + (a2 + a3)
}

func maxGeneric(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	return m
}

func scaleGeneric(x []float32, a float32) {
	for i := range x {
		x[i] *= a
	}
}

func sigmoidGeneric(dst, src []float32) {
	for i, x := range src {
		dst[i] = 1 / (1 + exp32(-x))
	}
}

func geluGeneric(dst, src []float32) {
	for i, x := range src {
		cdf, _ := cdfTerms(x)
		dst[i] = x * cdf
	}
}

func geluGradGeneric(dst, x, gy []float32) {
	for i, v := range x {
		cdf, e := cdfTerms(v)
		dst[i] = gy[i] * (cdf + v*e*coef.InvSqrt2Pi)
	}
}

func softmaxGradGeneric(d, p []float32, dot, scale float32) {
	d = d[:len(p)]
	for i, pi := range p {
		d[i] = pi * (d[i] - dot) * scale
	}
}

func swigluGradGeneric(gg, gu, gate, up, sig, dy []float32) {
	n := len(gate)
	gg, gu, up, sig, dy = gg[:n], gu[:n], up[:n], sig[:n], dy[:n]
	for i, z := range gate {
		s := sig[i]
		gu[i] = dy[i] * z * s
		gg[i] = dy[i] * up[i] * s * (1 + z*(1-s))
	}
}
