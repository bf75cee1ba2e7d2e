package ops

import (
	"math"

	"github.com/nlpodyssey/spago/mat"
)

// rmsNormFn computes y = x / rms(x) * w row by row.
type rmsNormFn struct {
	x, w mat.Tensor
	eps  float32
	inv  []float32 // 1/rms per row, kept for backward
}

// RMSNorm normalises each row of x by its root mean square and scales it by
// w: y = x * rsqrt(mean(x^2) + eps) * w (Llama's RMSNorm).
func RMSNorm(x, w mat.Tensor, eps float32) mat.Tensor {
	if Cols(x) != w.Value().Size() {
		panic("ops: RMSNorm: weight size does not match the features")
	}
	return run(&rmsNormFn{x: x, w: w, eps: eps})
}

func (f *rmsNormFn) Operands() []mat.Tensor { return []mat.Tensor{f.x, f.w} }

func (f *rmsNormFn) Forward() (mat.Tensor, error) {
	n, d := Rows(f.x), Cols(f.x)
	x, w := Data(f.x), Data(f.w)
	y := allocOutput(n * d)
	f.inv = make([]float32, n)
	rowsParallel(n, d, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xi := x[i*d : (i+1)*d]
			r := float32(1 / math.Sqrt(sumSquares(xi)/float64(d)+float64(f.eps)))
			f.inv[i] = r
			yi := y[i*d : (i+1)*d]
			for j, v := range xi {
				yi[j] = v * r * w[j]
			}
		}
	})
	return New(n, d, y), nil
}

func (f *rmsNormFn) Backward(gy mat.Tensor) error {
	n, d := Rows(f.x), Cols(f.x)
	x, w, g := Data(f.x), Data(f.w), Data(gy)
	var gx, gw []float32
	if f.x.RequiresGrad() {
		gx = allocDirty(n * d) // every row is written below
	}
	if f.w.RequiresGrad() {
		gw = alloc(d)
	}
	if gw != nil { // summed over the rows in order, on one core
		for i := 0; i < n; i++ {
			xi, gi, r := x[i*d:(i+1)*d], g[i*d:(i+1)*d], f.inv[i]
			for j := range xi {
				gw[j] += gi[j] * xi[j] * r
			}
		}
	}
	if gx != nil {
		rowsParallel(n, d, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				xi, gi, r := x[i*d:(i+1)*d], g[i*d:(i+1)*d], f.inv[i]
				c := float32(dot3(gi, w, xi)) * r * r * r / float32(d)
				gxi := gx[i*d : (i+1)*d]
				for j := range xi {
					gxi[j] = gi[j]*w[j]*r - xi[j]*c
				}
			}
		})
	}
	if gx != nil {
		accGrad(f.x, n, d, gx)
	}
	if gw != nil {
		accGrad(f.w, d, 1, gw)
	}
	return nil
}

func (f *rmsNormFn) backwardReads() []mat.Tensor { return []mat.Tensor{f.x, f.w} }

// sumSquares returns the sum of the squares of x in float64, in four
// interleaved partial sums: one running sum would wait on the latency of
// every addition, which for the short rows of small models is most of
// the cost of a normalisation.
func sumSquares(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := (*[4]float32)(x[i : i+4])
		s0 += float64(v[0]) * float64(v[0])
		s1 += float64(v[1]) * float64(v[1])
		s2 += float64(v[2]) * float64(v[2])
		s3 += float64(v[3]) * float64(v[3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i]) * float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// dot3 returns the sum of a[j]*b[j]*c[j] (each product in float32) in
// float64, in four interleaved partial sums; b and c are at least as long
// as a.
func dot3(a, b, c []float32) float64 {
	b, c = b[:len(a)], c[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i] * b[i] * c[i])
		s1 += float64(a[i+1] * b[i+1] * c[i+1])
		s2 += float64(a[i+2] * b[i+2] * c[i+2])
		s3 += float64(a[i+3] * b[i+3] * c[i+3])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i] * b[i] * c[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// layerNormFn computes y = (x - mean) / std * w + b row by row.
type layerNormFn struct {
	x, w, b mat.Tensor
	eps     float32
	// Per-row mean and 1/std, kept for backward, which recomputes the
	// normalised rows from x rather than keeping a copy of them.
	mean, inv []float64
}

// xhat writes row i of the normalised input into h, exactly as Forward
// computed it.
func (f *layerNormFn) xhat(h, xi []float32, i int) {
	mean, r := f.mean[i], f.inv[i]
	for j, v := range xi {
		h[j] = float32((float64(v) - mean) * r)
	}
}

// LayerNorm normalises each row of x to zero mean and unit (biased)
// variance, then scales by w and shifts by b.
func LayerNorm(x, w, b mat.Tensor, eps float32) mat.Tensor {
	if Cols(x) != w.Value().Size() || Cols(x) != b.Value().Size() {
		panic("ops: LayerNorm: weight or bias size does not match the features")
	}
	return run(&layerNormFn{x: x, w: w, b: b, eps: eps})
}

func (f *layerNormFn) Operands() []mat.Tensor { return []mat.Tensor{f.x, f.w, f.b} }

func (f *layerNormFn) Forward() (mat.Tensor, error) {
	n, d := Rows(f.x), Cols(f.x)
	x, w, b := Data(f.x), Data(f.w), Data(f.b)
	y := allocOutput(n * d)
	keep := requires(f.x, f.w, f.b)
	if keep {
		f.mean, f.inv = make([]float64, n), make([]float64, n)
	}
	rowsParallel(n, d, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xi := x[i*d : (i+1)*d]
			var mean float64
			for _, v := range xi {
				mean += float64(v)
			}
			mean /= float64(d)
			var vs float64
			for _, v := range xi {
				dv := float64(v) - mean
				vs += dv * dv
			}
			r := 1 / math.Sqrt(vs/float64(d)+float64(f.eps))
			if keep {
				f.mean[i], f.inv[i] = mean, r
			}
			yi := y[i*d : (i+1)*d]
			for j, v := range xi {
				h := float32((float64(v) - mean) * r)
				yi[j] = h*w[j] + b[j]
			}
		}
	})
	return New(n, d, y), nil
}

func (f *layerNormFn) Backward(gy mat.Tensor) error {
	n, d := Rows(f.x), Cols(f.x)
	x, w, g := Data(f.x), Data(f.w), Data(gy)
	if f.w.RequiresGrad() || f.b.RequiresGrad() {
		hi := make([]float32, d)
		gw, gb := alloc(d), alloc(d)
		for i := 0; i < n; i++ {
			gi := g[i*d : (i+1)*d]
			f.xhat(hi, x[i*d:(i+1)*d], i)
			for j := range gi {
				gw[j] += gi[j] * hi[j]
				gb[j] += gi[j]
			}
		}
		accGrad(f.w, d, 1, gw)
		accGrad(f.b, d, 1, gb)
	}
	if f.x.RequiresGrad() {
		gx := allocDirty(n * d)
		rowsParallel(n, d, func(lo, hi int) {
			h := make([]float32, d)
			for i := lo; i < hi; i++ {
				gi := g[i*d : (i+1)*d]
				f.xhat(h, x[i*d:(i+1)*d], i)
				var s1, s2 float64
				for j := range gi {
					gh := float64(gi[j] * w[j])
					s1 += gh
					s2 += gh * float64(h[j])
				}
				s1 /= float64(d)
				s2 /= float64(d)
				r := float32(f.inv[i])
				gxi := gx[i*d : (i+1)*d]
				for j := range gi {
					gxi[j] = r * (gi[j]*w[j] - float32(s1) - h[j]*float32(s2))
				}
			}
		})
		accGrad(f.x, n, d, gx)
	}
	return nil
}

func (f *layerNormFn) backwardReads() []mat.Tensor { return []mat.Tensor{f.x, f.w} }
