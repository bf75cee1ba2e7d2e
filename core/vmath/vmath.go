// Package vmath holds vectorized float32 kernels over slices: the
// exponential and the functions built on it that softmax, SiLU and GELU
// need. On amd64 CPUs with AVX2 and FMA the kernels are assembly generated
// by an avo program (internal/asmgen); elsewhere they are plain Go
// evaluating the same approximations.
//
// Functions that write a dst slice require len(dst) >= len(src) and write
// dst[:len(src)]; dst may be src itself.
package vmath

// Accelerated reports whether the assembly kernels are in use.
func Accelerated() bool { return hasAsm }

func checkDst(fn string, dst, src []float32) {
	if len(dst) < len(src) {
		panic("vmath: " + fn + ": dst shorter than src")
	}
}

// Exp sets dst[i] = exp(src[i]), accurate to about one ulp. Results below
// 2^-126 flush to zero, inputs above 88.72283 give +Inf and NaN stays NaN.
func Exp(dst, src []float32) {
	checkDst("Exp", dst, src)
	if hasAsm {
		expAVX2(dst, src)
		return
	}
	expGeneric(dst, src)
}

// ExpSum sets dst[i] = exp(src[i] - shift) and returns the sum of those
// values, the unnormalized softmax of a row shifted by its maximum. The
// summation order depends only on len(src), so results are reproducible.
func ExpSum(dst, src []float32, shift float32) float32 {
	checkDst("ExpSum", dst, src)
	if hasAsm {
		return expSumAVX2(dst, src, shift)
	}
	return expSumGeneric(dst, src, shift)
}

// Max returns the largest element of x, ignoring NaNs; -Inf when x is empty
// or all NaN.
func Max(x []float32) float32 {
	if hasAsm {
		return maxAVX2(x)
	}
	return maxGeneric(x)
}

// Scale multiplies every element of x by a.
func Scale(x []float32, a float32) {
	if hasAsm {
		scaleAVX2(x, a)
		return
	}
	scaleGeneric(x, a)
}

// Sigmoid sets dst[i] = 1/(1+exp(-src[i])).
func Sigmoid(dst, src []float32) {
	checkDst("Sigmoid", dst, src)
	if hasAsm {
		sigmoidAVX2(dst, src)
		return
	}
	sigmoidGeneric(dst, src)
}

// GELU sets dst[i] = src[i] * Phi(src[i]), the exact Gaussian error linear
// unit (PyTorch's nn.GELU() default, not its tanh approximation). Phi, the
// standard normal CDF, is evaluated in float32 through erfc = t * exp(-z^2)
// * P(t) with an absolute error of about 1e-7.
func GELU(dst, src []float32) {
	checkDst("GELU", dst, src)
	if hasAsm {
		geluAVX2(dst, src)
		return
	}
	geluGeneric(dst, src)
}

// GELUGrad sets dst[i] = gy[i] * GELU'(x[i]), where GELU'(x) = Phi(x) +
// x*phi(x) with phi the standard normal density. len(gy) must be at least
// len(x).
func GELUGrad(dst, x, gy []float32) {
	checkDst("GELUGrad", dst, x)
	if len(gy) < len(x) {
		panic("vmath: GELUGrad: gy shorter than x")
	}
	if hasAsm {
		geluGradAVX2(dst, x, gy)
		return
	}
	geluGradGeneric(dst, x, gy)
}

// SoftmaxGrad sets d[i] = p[i]*(d[i]-dot)*scale for every i < len(p): the
// gradient of a softmax row p scaled by scale, given d = dL/dp and
// dot = sum(p*d).
func SoftmaxGrad(d, p []float32, dot, scale float32) {
	checkDst("SoftmaxGrad", d, p)
	if hasAsm {
		softmaxGradAVX2(d, p, dot, scale)
		return
	}
	softmaxGradGeneric(d, p, dot, scale)
}

// SwiGLUGrad computes the gradients of y = gate*sigmoid(gate)*up given
// sig = sigmoid(gate) and dy = dL/dy: gu = dy*gate*sig and
// gg = dy*up*sig*(1+gate*(1-sig)), over len(gate) elements.
func SwiGLUGrad(gg, gu, gate, up, sig, dy []float32) {
	n := len(gate)
	if len(gg) < n || len(gu) < n || len(up) < n || len(sig) < n || len(dy) < n {
		panic("vmath: SwiGLUGrad: slice shorter than gate")
	}
	if hasAsm {
		swigluGradAVX2(gg, gu, gate, up, sig, dy)
		return
	}
	swigluGradGeneric(gg, gu, gate, up, sig, dy)
}
