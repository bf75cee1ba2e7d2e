// Package coef holds the constants shared by package vmath's Go kernels and
// the generator of its assembly kernels, so that both evaluate the same
// approximations.
package coef

// Exponential: Cody-Waite range reduction x = n*ln2 + r with n =
// floor(x*log2(e) + 1/2), ln2 split into a short high part (exact in
// products with small n) and a correction, then the Cephes expf polynomial
// exp(r) ~ 1 + r + r^2*P(r).
const (
	// ExpHi is the largest input whose exponential is finite in float32.
	ExpHi float32 = 88.72283
	// ExpLo is the smallest input whose exponential is a normal float32;
	// smaller inputs give 0.
	ExpLo float32 = -87.33654
	// Log2e is log2(e).
	Log2e float32 = 1.44269504088896341
	// Ln2Hi is the high part of ln 2.
	Ln2Hi float32 = 0.693359375
	// Ln2Lo is the correction ln2 = Ln2Hi - Ln2Lo.
	Ln2Lo float32 = 2.12194440e-4
)

// ExpPoly holds the coefficients of P, highest degree first.
var ExpPoly = [6]float32{
	1.9875691500e-4,
	1.3981999507e-3,
	8.3334519073e-3,
	4.1665795894e-2,
	1.6666665459e-1,
	5.0000001201e-1,
}

// Complementary error function: for z >= 0 and t = 1/(1 + z/2),
// erfc(z) = t * exp(-z^2) * P(t), where P is a degree-9 polynomial fitted
// for relative error (1.7e-8 in exact arithmetic, about 2e-7 evaluated in
// float32) over 0 <= z <= 9.5, beyond which erfc underflows float32. The
// coefficients come from `go run ./core/vmath/internal/erffit`.

// ErfcPoly holds the coefficients of P, highest degree first.
var ErfcPoly = [10]float32{
	0.0138515048,
	-0.131613851,
	0.448168218,
	-0.695043325,
	0.441477984,
	-0.10879121,
	0.229017243,
	0.237935036,
	0.282937795,
	0.282060593,
}

// Central range: for |x| < 1 the normal CDF is evaluated as
// Phi(x) = 1/2 + x*Q(x^2) (absolute error 2.4e-10 in exact arithmetic), where
// erfc's form would lose accuracy to the cancellation in 1 - erfc/2.
// The coefficients come from
// `go run ./core/vmath/internal/erffit -central -degree 5`.

// CentralPoly holds the coefficients of Q, highest degree first.
var CentralPoly = [6]float32{
	-7.65420828e-06,
	0.000113486371,
	-0.00118632999,
	0.00997332297,
	-0.0664903596,
	0.398942292,
}

const (
	// HalfSqrtHalf is 1/(2*sqrt(2)): t = 1/(1 + |x|*HalfSqrtHalf) for
	// z = |x|/sqrt(2).
	HalfSqrtHalf float32 = 0.35355339059327376
	// InvSqrt2Pi is 1/sqrt(2*pi), the Gaussian density at 0.
	InvSqrt2Pi float32 = 0.3989422804014327
)
