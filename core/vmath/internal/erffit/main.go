// Command erffit derives the polynomial behind package vmath's Gaussian CDF.
//
// For z >= 0 and t = 2/(2+z), the function P(t) = erfc(z) * exp(z*z) / t is
// smooth on (0, 1], with P(1) = 1 and P(t) -> 1/(2*sqrt(pi)) as t -> 0, so
// erfc(z) = t * exp(-z*z) * P(t) needs one exponential and one polynomial.
// erffit fits P on the t range that float32 needs (erfc underflows past
// z = 9.4) by least squares weighted for relative error, refined towards
// minimax with Lawson's iteration, and prints the coefficients (lowest
// degree first) and the worst relative error of the fit.
//
// With -central it fits instead the polynomial of the central range:
// Phi(x) = 1/2 + x*Q(x*x) for |x| < 1, with Q(s) = erf(sqrt(s/2))/(2 sqrt(s)),
// where the erfc form would lose accuracy to cancellation in 1 - erfc/2.
//
// It is a record of how the committed constants were obtained, not part of
// the build: `go run ./core/vmath/internal/erffit` and
// `go run ./core/vmath/internal/erffit -central -degree 5`.
package main

import (
	"flag"
	"fmt"
	"math"
)

func main() {
	degree := flag.Int("degree", 9, "polynomial degree")
	zmax := flag.Float64("zmax", 9.5, "largest z fitted")
	points := flag.Int("points", 4000, "sample points")
	iters := flag.Int("lawson", 200, "Lawson iterations")
	central := flag.Bool("central", false, "fit Q of the central range instead of P")
	flag.Parse()
	if *central {
		fitCentral(*degree, *points, *iters)
		return
	}

	tmin := 2 / (2 + *zmax)
	n := *points
	ts := make([]float64, n)
	ys := make([]float64, n)
	for i := range ts {
		// Chebyshev points of [tmin, 1].
		c := math.Cos(math.Pi * (float64(i) + 0.5) / float64(n))
		t := tmin + (1-tmin)*(c+1)/2
		z := 2/t - 2
		ts[i] = t
		ys[i] = target(z, t)
	}
	w := make([]float64, n)
	for i := range w {
		w[i] = 1.0 / float64(n)
	}
	var coef []float64
	for it := 0; it <= *iters; it++ {
		coef = fit(ts, ys, w, *degree)
		// Lawson: weights grow where the relative error is large.
		var s float64
		for i, t := range ts {
			e := math.Abs(horner(coef, t)/ys[i] - 1)
			w[i] *= e
			s += w[i]
		}
		for i := range w {
			w[i] /= s
		}
	}
	worst64, worst32 := 0.0, 0.0
	c32 := make([]float32, len(coef))
	for i, c := range coef {
		c32[i] = float32(c)
	}
	for i := 0; i <= 200000; i++ {
		z := *zmax * float64(i) / 200000
		t := 2 / (2 + z)
		y := target(z, t)
		worst64 = max(worst64, math.Abs(horner(coef, t)/y-1))
		t32 := 2 / (2 + float32(z))
		p := c32[len(c32)-1]
		for k := len(c32) - 2; k >= 0; k-- {
			p = p*t32 + c32[k]
		}
		worst32 = max(worst32, math.Abs(float64(p)/y-1))
	}
	for i, c := range c32 {
		fmt.Printf("c%d = %.9g\n", i, c)
	}
	fmt.Printf("worst relative error: %.3g (float64 coefficients), %.3g (float32 evaluation)\n", worst64, worst32)
}

// target is P(t) = erfc(z) exp(z^2) / t.
func target(z, t float64) float64 { return math.Erfc(z) * math.Exp(z*z) / t }

func horner(c []float64, t float64) float64 {
	p := c[len(c)-1]
	for k := len(c) - 2; k >= 0; k-- {
		p = p*t + c[k]
	}
	return p
}

// fit solves the weighted least-squares problem min sum w_i (p(t_i)/y_i - 1)^2
// over polynomials p of the given degree, by Householder QR.
func fit(ts, ys, w []float64, degree int) []float64 {
	m, k := len(ts), degree+1
	a := make([][]float64, m)
	b := make([]float64, m)
	for i, t := range ts {
		s := math.Sqrt(w[i]) / ys[i]
		row := make([]float64, k)
		p := 1.0
		for j := range row {
			row[j] = p * s
			p *= t
		}
		a[i] = row
		b[i] = math.Sqrt(w[i])
	}
	for j := 0; j < k; j++ {
		var norm float64
		for i := j; i < m; i++ {
			norm += a[i][j] * a[i][j]
		}
		norm = math.Sqrt(norm)
		if a[j][j] > 0 {
			norm = -norm
		}
		v := make([]float64, m)
		for i := j; i < m; i++ {
			v[i] = a[i][j]
		}
		v[j] -= norm
		var vv float64
		for i := j; i < m; i++ {
			vv += v[i] * v[i]
		}
		if vv == 0 {
			continue
		}
		for c := j; c < k; c++ {
			var d float64
			for i := j; i < m; i++ {
				d += v[i] * a[i][c]
			}
			d = 2 * d / vv
			for i := j; i < m; i++ {
				a[i][c] -= d * v[i]
			}
		}
		var d float64
		for i := j; i < m; i++ {
			d += v[i] * b[i]
		}
		d = 2 * d / vv
		for i := j; i < m; i++ {
			b[i] -= d * v[i]
		}
	}
	x := make([]float64, k)
	for j := k - 1; j >= 0; j-- {
		s := b[j]
		for c := j + 1; c < k; c++ {
			s -= a[j][c] * x[c]
		}
		x[j] = s / a[j][j]
	}
	return x
}

// centralTarget is Q(s) = erf(sqrt(s/2))/(2 sqrt(s)), 1/sqrt(2 pi) at s = 0.
func centralTarget(s float64) float64 {
	if s < 1e-12 {
		return 1 / math.Sqrt(2*math.Pi) * (1 - s/6)
	}
	x := math.Sqrt(s)
	return math.Erf(x/math.Sqrt2) / (2 * x)
}

func fitCentral(degree, n, iters int) {
	ss := make([]float64, n)
	ys := make([]float64, n)
	w := make([]float64, n)
	for i := range ss {
		c := math.Cos(math.Pi * (float64(i) + 0.5) / float64(n))
		ss[i] = (c + 1) / 2 // s in [0, 1]
		ys[i] = centralTarget(ss[i])
		w[i] = 1 / float64(n)
	}
	var coef []float64
	for it := 0; it <= iters; it++ {
		coef = fit(ss, ys, w, degree)
		var sum float64
		for i, s := range ss {
			w[i] *= math.Abs(horner(coef, s)/ys[i] - 1)
			sum += w[i]
		}
		for i := range w {
			w[i] /= sum
		}
	}
	c32 := make([]float32, len(coef))
	for i, c := range coef {
		c32[i] = float32(c)
	}
	worst64, worst32 := 0.0, 0.0
	for i := 0; i <= 200000; i++ {
		x := float64(i) / 200000
		want := 0.5 * math.Erfc(-x/math.Sqrt2)
		worst64 = max(worst64, math.Abs(0.5+x*horner(coef, x*x)-want))
		x32 := float32(x)
		s32 := x32 * x32
		p := c32[len(c32)-1]
		for k := len(c32) - 2; k >= 0; k-- {
			p = p*s32 + c32[k]
		}
		worst32 = max(worst32, math.Abs(float64(0.5+x32*p)-0.5*math.Erfc(-float64(x32)/math.Sqrt2)))
	}
	for i, c := range c32 {
		fmt.Printf("c%d = %.9g\n", i, c)
	}
	fmt.Printf("worst absolute error of Phi: %.3g (float64 coefficients), %.3g (float32 evaluation)\n", worst64, worst32)
}
