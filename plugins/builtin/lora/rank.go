package lora

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/mat"

	"github.com/surgeon-ml/surgeon/plugins/sdk"
)

// Rank surgery on LoRA modules, as kohya's resize_lora.py (resize) and
// mergekit-extract-lora (extract) do it, in float64 with gonum.

// Resize reduces a trained module's rank: with A [r,in], B [out,r] and
// scale s it takes the SVD B*A = U S V^T (through thin QR factors of B and
// A^T, so the work is O((in+out) r^2)), keeps k singular values chosen by
// sel, and returns A' = sqrt(S_k) V_k^T, B' = U_k sqrt(S_k) with lora_alpha
// set so that the scale stays s (alpha' = s*k, or s*sqrt(k) with rsLoRA):
// s*B'*A' is the best rank-k approximation of s*B*A. A DoRA magnitude
// passes through unchanged. The reported singular values are those of
// s*B*A.
func Resize(l sdk.Layer, c sdk.Config, sel sdk.RankSelection, params map[string]sdk.Tensor) (*sdk.RankResult, error) {
	cfg, err := Decode(c, l)
	if err != nil {
		return nil, err
	}
	a, okA := params[ParamA]
	b, okB := params[ParamB]
	if !okA || !okB {
		return nil, fmt.Errorf("want %s and %s, got %v", ParamA, ParamB, names(params))
	}
	for n := range params {
		if n != ParamA && n != ParamB && n != ParamMagnitude {
			return nil, fmt.Errorf("unexpected parameter %q", n)
		}
	}
	if len(a.Shape) != 2 || len(b.Shape) != 2 || a.Shape[0] != b.Shape[1] {
		return nil, fmt.Errorf("%s %v and %s %v are not [r,in] and [out,r]", ParamA, a.Shape, ParamB, b.Shape)
	}
	r, in, out := a.Shape[0], a.Shape[1], b.Shape[0]
	if r != cfg.R {
		return nil, fmt.Errorf("%s has rank %d but r is %d", ParamA, r, cfg.R)
	}
	u, sv, v, err := factorSVD(b.Data, a.Data, out, r, in)
	if err != nil {
		return nil, err
	}
	k, energy, err := sdk.ChooseRank(sv, sel, r)
	if err != nil {
		return nil, err
	}
	na, nb := split(u, sv, v, k)
	// Report the singular values of the effective update s*B*A.
	scaled := make([]float64, len(sv))
	for i, x := range sv {
		scaled[i] = math.Abs(cfg.Scale()) * x
	}
	res := &sdk.RankResult{
		Tensors:        map[string]sdk.Tensor{ParamA: {Shape: []int{k, in}, Data: na}, ParamB: {Shape: []int{out, k}, Data: nb}},
		Config:         map[string]any{"r": k, "lora_alpha": alphaFor(cfg.Scale(), k, cfg.RSLoRA), "use_rslora": cfg.RSLoRA},
		OldRank:        r,
		NewRank:        k,
		Energy:         energy,
		SingularValues: scaled,
	}
	if m, ok := params[ParamMagnitude]; ok {
		res.Tensors[ParamMagnitude] = m
		res.Note = "DoRA: B*A resized, magnitude kept"
	}
	if sel.Method == "rank" && sel.Rank > r {
		res.Note = join(res.Note, fmt.Sprintf("rank %d exceeds the module's rank %d: kept", sel.Rank, r))
	}
	return res, nil
}

// Extract computes a LoRA module from a base and a fine-tuned weight, as
// mergekit-extract-lora does: the SVD delta = W_ft - W_base = U S V^T is
// truncated to the rank sel chooses, A = sqrt(S_k) V_k^T, B = U_k sqrt(S_k)
// and lora_alpha = k (scale 1). An all-zero delta is skipped.
func Extract(l sdk.Layer, _ sdk.Config, sel sdk.RankSelection, base, tuned []float32) (*sdk.RankResult, error) {
	out, in := l.Out, l.In
	d := mat.NewDense(out, in, nil)
	raw := d.RawMatrix()
	zero := true
	for i := 0; i < out; i++ {
		for j := 0; j < in; j++ {
			x := float64(tuned[i*in+j]) - float64(base[i*in+j])
			if x != 0 {
				zero = false
			}
			raw.Data[i*raw.Stride+j] = x
		}
	}
	if zero {
		return &sdk.RankResult{Skipped: true, Note: "unchanged: the fine-tuned weight equals the base"}, nil
	}
	var svd mat.SVD
	if !svd.Factorize(d, mat.SVDThin) {
		return nil, fmt.Errorf("SVD of the %dx%d delta did not converge", out, in)
	}
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	sv := svd.Values(nil)
	k, energy, err := sdk.ChooseRank(sv, sel, min(out, in))
	if err != nil {
		return nil, err
	}
	na, nb := split(&u, sv, &v, k)
	res := &sdk.RankResult{
		Tensors:        map[string]sdk.Tensor{ParamA: {Shape: []int{k, in}, Data: na}, ParamB: {Shape: []int{out, k}, Data: nb}},
		Config:         map[string]any{"r": k, "lora_alpha": float64(k), "use_rslora": false},
		NewRank:        k,
		Energy:         energy,
		SingularValues: sv,
	}
	if sel.Method == "rank" && sel.Rank > min(out, in) {
		res.Note = fmt.Sprintf("rank %d exceeds min(out,in) = %d", sel.Rank, min(out, in))
	}
	return res, nil
}

// alphaFor returns the lora_alpha that gives scale s at rank k.
func alphaFor(s float64, k int, rslora bool) float64 {
	if rslora {
		return s * math.Sqrt(float64(k))
	}
	return s * float64(k)
}

// split turns the first k singular triplets into A = sqrt(S) V^T [k,in] and
// B = U sqrt(S) [out,k].
func split(u *mat.Dense, sv []float64, v *mat.Dense, k int) (a, b []float32) {
	out, _ := u.Dims()
	in, _ := v.Dims()
	a = make([]float32, k*in)
	b = make([]float32, out*k)
	for c := 0; c < k; c++ {
		root := math.Sqrt(sv[c])
		for j := 0; j < in; j++ {
			a[c*in+j] = float32(root * v.At(j, c))
		}
		for i := 0; i < out; i++ {
			b[i*k+c] = float32(u.At(i, c) * root)
		}
	}
	return a, b
}

// factorSVD returns the thin SVD of B*A (B [out,r], A [r,in]) without
// forming the product when r <= min(out,in): with B = Qb Rb and
// A^T = Qa Ra, B*A = Qb (Rb Ra^T) Qa^T and the SVD of the r x r core
// Rb Ra^T = Uc S Vc^T gives U = Qb Uc, V = Qa Vc. Columns of U [out,r] and
// V [in,r] are orthonormal; singular values are descending.
func factorSVD(b, a []float32, out, r, in int) (u *mat.Dense, s []float64, v *mat.Dense, err error) {
	if r > min(out, in) {
		return denseSVD(b, a, out, r, in)
	}
	bm := mat.NewDense(out, r, nil)
	for i := 0; i < out; i++ {
		for c := 0; c < r; c++ {
			bm.Set(i, c, float64(b[i*r+c]))
		}
	}
	at := mat.NewDense(in, r, nil)
	for c := 0; c < r; c++ {
		for j := 0; j < in; j++ {
			at.Set(j, c, float64(a[c*in+j]))
		}
	}
	qb, rb := thinQR(bm)
	qa, ra := thinQR(at)
	var core mat.Dense
	core.Mul(rb, ra.T())
	var svd mat.SVD
	if !svd.Factorize(&core, mat.SVDFull) {
		return nil, nil, nil, fmt.Errorf("SVD of the %dx%d core did not converge", r, r)
	}
	var uc, vc mat.Dense
	svd.UTo(&uc)
	svd.VTo(&vc)
	u, v = new(mat.Dense), new(mat.Dense)
	u.Mul(qb, &uc)
	v.Mul(qa, &vc)
	return u, svd.Values(nil), v, nil
}

// denseSVD is the SVD of the product B*A formed explicitly, for ranks
// above a dimension of the layer (where thin QR does not apply).
func denseSVD(b, a []float32, out, r, in int) (*mat.Dense, []float64, *mat.Dense, error) {
	bm := mat.NewDense(out, r, nil)
	am := mat.NewDense(r, in, nil)
	for i := 0; i < out; i++ {
		for c := 0; c < r; c++ {
			bm.Set(i, c, float64(b[i*r+c]))
		}
	}
	for c := 0; c < r; c++ {
		for j := 0; j < in; j++ {
			am.Set(c, j, float64(a[c*in+j]))
		}
	}
	var d mat.Dense
	d.Mul(bm, am)
	var svd mat.SVD
	if !svd.Factorize(&d, mat.SVDThin) {
		return nil, nil, nil, fmt.Errorf("SVD of the %dx%d update did not converge", out, in)
	}
	u, v := new(mat.Dense), new(mat.Dense)
	svd.UTo(u)
	svd.VTo(v)
	return u, svd.Values(nil), v, nil
}

// thinQR factors m [rows,cols] (rows >= cols) as Q [rows,cols] with
// orthonormal columns times the upper-triangular R [cols,cols], with
// LAPACK's Householder QR (gonum's mat.QR only returns the full Q).
func thinQR(m *mat.Dense) (q, r *mat.Dense) {
	rows, cols := m.Dims()
	g := blas64.General{Rows: rows, Cols: cols, Stride: cols, Data: make([]float64, rows*cols)}
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			g.Data[i*cols+j] = m.At(i, j)
		}
	}
	tau := make([]float64, cols)
	work := []float64{0}
	lapack64.Geqrf(g, tau, work, -1)
	work = make([]float64, max(1, int(work[0])))
	lapack64.Geqrf(g, tau, work, len(work))
	r = mat.NewDense(cols, cols, nil)
	for i := 0; i < cols; i++ {
		for j := i; j < cols; j++ {
			r.Set(i, j, g.Data[i*cols+j])
		}
	}
	lapack64.Orgqr(g, tau, work, -1)
	if need := int(work[0]); need > len(work) {
		work = make([]float64, need)
	}
	lapack64.Orgqr(g, tau, work, len(work))
	return mat.NewDense(rows, cols, g.Data), r
}

func names(m map[string]sdk.Tensor) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	return out
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
