package lora

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
)

// surgeon connects to the LoRA family over real gRPC.
func surgeon(t *testing.T) (rpc.Interface, rpc.RankSurgeon) {
	t.Helper()
	c := sdktest.Connect(t, Adapters()...)
	rs, ok := c.(rpc.RankSurgeon)
	if !ok {
		t.Fatal("the client offers no rank surgery")
	}
	return c, rs
}

func randn(r *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * std)
	}
	return v
}

// dense returns s*B*A as a gonum matrix.
func dense(b, a []float32, out, r, in int, s float64) *mat.Dense {
	d := mat.NewDense(out, in, nil)
	for i := 0; i < out; i++ {
		for j := 0; j < in; j++ {
			var x float64
			for c := 0; c < r; c++ {
				x += float64(b[i*r+c]) * float64(a[c*in+j])
			}
			d.Set(i, j, s*x)
		}
	}
	return d
}

// truncated is the reference: the best rank-k approximation of d from a
// full dense SVD (no thin factors), and d's singular values.
func truncated(t *testing.T, d *mat.Dense, k int) (*mat.Dense, []float64) {
	var svd mat.SVD
	if !svd.Factorize(d, mat.SVDFull) {
		t.Fatal("reference SVD failed")
	}
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	s := svd.Values(nil)
	out, in := d.Dims()
	res := mat.NewDense(out, in, nil)
	for c := 0; c < k; c++ {
		for i := 0; i < out; i++ {
			for j := 0; j < in; j++ {
				res.Set(i, j, res.At(i, j)+u.At(i, c)*s[c]*v.At(j, c))
			}
		}
	}
	return res, s
}

func maxAbsDiff(a, b mat.Matrix) float64 {
	r, c := a.Dims()
	var m float64
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			m = math.Max(m, math.Abs(a.At(i, j)-b.At(i, j)))
		}
	}
	return m
}

func TestResizeMatchesTruncatedSVD(t *testing.T) {
	_, rs := surgeon(t)
	for _, tc := range []struct {
		name          string
		out, in, r, k int
		rslora        bool
	}{
		{"thin-qr", 40, 30, 16, 8, false},
		{"rslora", 24, 50, 12, 5, true},
		{"wide", 20, 64, 16, 8, false},
		{"rank-above-out", 10, 30, 16, 4, false}, // r > out: dense path
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, uint64(tc.r)))
			a := randn(r, tc.r*tc.in, 0.3)
			for c := 0; c < tc.r; c++ { // a decaying spectrum
				for j := 0; j < tc.in; j++ {
					a[c*tc.in+j] *= float32(math.Pow(0.8, float64(c)))
				}
			}
			b := randn(r, tc.out*tc.r, 0.2)
			alpha := 2.0 * float64(tc.r)
			s := alpha / float64(tc.r)
			if tc.rslora {
				s = alpha / math.Sqrt(float64(tc.r))
			}
			req := rpc.RankRequest{Adapter: "lora", Layer: rpc.Layer{Path: "m", Kind: "linear", In: tc.in, Out: tc.out},
				Config: map[string]any{"r": tc.r, "lora_alpha": alpha, "use_rslora": tc.rslora}, Select: rpc.RankSelection{Method: "rank", Rank: tc.k}}
			res, err := rs.Resize(context.Background(), req, map[string]rpc.Tensor{
				ParamA: {Shape: []int{tc.r, tc.in}, Data: a}, ParamB: {Shape: []int{tc.out, tc.r}, Data: b}})
			if err != nil {
				t.Fatal(err)
			}
			if res.NewRank != tc.k || res.OldRank != tc.r {
				t.Fatalf("ranks %d -> %d, want %d -> %d", res.OldRank, res.NewRank, tc.r, tc.k)
			}
			na, nb := res.Tensors[ParamA], res.Tensors[ParamB]
			if na.Shape[0] != tc.k || na.Shape[1] != tc.in || nb.Shape[0] != tc.out || nb.Shape[1] != tc.k {
				t.Fatalf("shapes %v %v", na.Shape, nb.Shape)
			}
			// The effective scale is kept: alpha'/r' (or /sqrt(r')) = s.
			alpha2 := res.Config["lora_alpha"].(float64)
			s2 := alpha2 / float64(tc.k)
			if tc.rslora {
				s2 = alpha2 / math.Sqrt(float64(tc.k))
			}
			if math.Abs(s2-s) > 1e-12 {
				t.Fatalf("scale %v after resize, %v before", s2, s)
			}
			full := dense(b, a, tc.out, tc.r, tc.in, s)
			want, sv := truncated(t, full, tc.k)
			got := dense(nb.Data, na.Data, tc.out, tc.k, tc.in, s2)
			if d := maxAbsDiff(got, want); d > 1e-5*sv[0] {
				t.Fatalf("s'B'A' differs from the exact truncated SVD by %g (largest singular value %g)", d, sv[0])
			}
			var kept, total float64
			for i, x := range sv {
				total += x * x
				if i < tc.k {
					kept += x * x
				}
			}
			if math.Abs(res.Energy-kept/total) > 1e-9 {
				t.Fatalf("energy %v, reference %v", res.Energy, kept/total)
			}
			for i := 0; i < min(tc.r, len(sv)); i++ {
				if math.Abs(res.SingularValues[i]-sv[i]) > 1e-9*sv[0] {
					t.Fatalf("singular value %d = %v, reference %v", i, res.SingularValues[i], sv[i])
				}
			}
		})
	}
}

func TestResizeDoRAKeepsMagnitude(t *testing.T) {
	_, rs := surgeon(t)
	r := rand.New(rand.NewPCG(1, 2))
	mag := randn(r, 6, 1)
	req := rpc.RankRequest{Adapter: "dora", Layer: rpc.Layer{Path: "m", In: 8, Out: 6}, Config: map[string]any{"r": 4, "lora_alpha": 8.0},
		Select: rpc.RankSelection{Method: "rank", Rank: 2}}
	res, err := rs.Resize(context.Background(), req, map[string]rpc.Tensor{
		ParamA: {Shape: []int{4, 8}, Data: randn(r, 32, 1)}, ParamB: {Shape: []int{6, 4}, Data: randn(r, 24, 1)},
		ParamMagnitude: {Shape: []int{6}, Data: mag}})
	if err != nil {
		t.Fatal(err)
	}
	got := res.Tensors[ParamMagnitude].Data
	for i := range mag {
		if got[i] != mag[i] {
			t.Fatalf("magnitude changed at %d", i)
		}
	}
	if res.NewRank != 2 || res.Config["lora_alpha"].(float64) != 4 {
		t.Fatalf("rank %d alpha %v", res.NewRank, res.Config["lora_alpha"])
	}
}

func TestExtractRecoversLowRank(t *testing.T) {
	_, rs := surgeon(t)
	const out, in, k = 30, 20, 3
	r := rand.New(rand.NewPCG(3, 4))
	u, v := randn(r, out*k, 1), randn(r, k*in, 1)
	base := randn(r, out*in, 1)
	tuned := make([]float32, out*in)
	for i := 0; i < out; i++ {
		for j := 0; j < in; j++ {
			var d float64
			for c := 0; c < k; c++ {
				d += float64(u[i*k+c]) * float64(v[c*in+j])
			}
			tuned[i*in+j] = base[i*in+j] + float32(d)
		}
	}
	req := rpc.RankRequest{Adapter: "lora", Layer: rpc.Layer{Path: "m", In: in, Out: out}, Select: rpc.RankSelection{Method: "energy", Value: 0.999999}}
	res, err := rs.Extract(context.Background(), req, base, tuned)
	if err != nil {
		t.Fatal(err)
	}
	if res.NewRank != k || res.Config["lora_alpha"].(float64) != k {
		t.Fatalf("rank %d alpha %v, want %d", res.NewRank, res.Config["lora_alpha"], k)
	}
	got := dense(res.Tensors[ParamB].Data, res.Tensors[ParamA].Data, out, k, in, 1)
	for i := 0; i < out; i++ {
		for j := 0; j < in; j++ {
			if d := got.At(i, j) - (float64(tuned[i*in+j]) - float64(base[i*in+j])); math.Abs(d) > 1e-4 {
				t.Fatalf("B*A differs from the delta by %g at (%d,%d)", d, i, j)
			}
		}
	}
	// An unchanged weight is skipped.
	res, err = rs.Extract(context.Background(), req, base, base)
	if err != nil || !res.Skipped {
		t.Fatalf("zero delta: %+v %v", res, err)
	}
}

func TestRankSurgeryErrors(t *testing.T) {
	c, rs := surgeon(t)
	d, err := c.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	caps := map[string][]string{}
	for _, comp := range d.Components {
		caps[comp.Name] = comp.Capabilities
	}
	if len(caps["lora"]) != 3 || len(caps["lora-merged"]) != 2 || len(caps["dora"]) != 1 || caps["dora"][0] != rpc.CapResize {
		t.Fatalf("capabilities %v", caps)
	}
	ok := map[string]rpc.Tensor{ParamA: {Shape: []int{2, 3}, Data: make([]float32, 6)}, ParamB: {Shape: []int{4, 2}, Data: make([]float32, 8)}}
	layer := rpc.Layer{Path: "m", In: 3, Out: 4}
	for name, tc := range map[string]struct {
		adapter string
		cfg     map[string]any
		sel     rpc.RankSelection
		params  map[string]rpc.Tensor
		unsup   bool
	}{
		"rank 0":          {"lora", map[string]any{"r": 2}, rpc.RankSelection{Method: "rank"}, ok, false},
		"unknown method":  {"lora", map[string]any{"r": 2}, rpc.RankSelection{Method: "magic", Value: 1}, ok, false},
		"r mismatch":      {"lora", map[string]any{"r": 3}, rpc.RankSelection{Method: "rank", Rank: 1}, ok, false},
		"missing B":       {"lora", map[string]any{"r": 2}, rpc.RankSelection{Method: "rank", Rank: 1}, map[string]rpc.Tensor{ParamA: ok[ParamA]}, false},
		"no such adapter": {"vera", map[string]any{}, rpc.RankSelection{Method: "rank", Rank: 1}, ok, false},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := rs.Resize(context.Background(), rpc.RankRequest{Adapter: tc.adapter, Layer: layer, Config: tc.cfg, Select: tc.sel}, tc.params)
			if err == nil {
				t.Fatal("accepted")
			}
			if errors.Is(err, rpc.ErrUnsupported) != tc.unsup {
				t.Fatalf("ErrUnsupported = %v: %v", !tc.unsup, err)
			}
		})
	}
	// dora does not extract: an ErrUnsupported that names the adapter.
	_, err = rs.Extract(context.Background(), rpc.RankRequest{Adapter: "dora", Layer: layer, Select: rpc.RankSelection{Method: "rank", Rank: 1}},
		make([]float32, 12), make([]float32, 12))
	if !errors.Is(err, rpc.ErrUnsupported) {
		t.Fatalf("dora extract: %v", err)
	}
}

// BenchmarkResize reports the resize of one 4096x4096 rank-64 module (the
// thin-QR path) against the dense SVD it avoids.
func BenchmarkResize(b *testing.B) {
	const out, in, r = 4096, 4096, 64
	rg := rand.New(rand.NewPCG(1, 1))
	a, bb := randn(rg, r*in, 1), randn(rg, out*r, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, _, err := factorSVD(bb, a, out, r, in); err != nil {
			b.Fatal(err)
		}
	}
}

// Above exactLimit, Extract takes the leading triplets from subspace
// iteration: its truncation error equals the exact truncated SVD's, for a
// low-rank-plus-noise delta and for a slowly decaying spectrum.
func TestExtractLargeMatchesExactSVD(t *testing.T) {
	_, rs := surgeon(t)
	const out, in = 420, 300
	for _, tc := range []struct {
		name  string
		noise float64
		decay float64
		sel   rpc.RankSelection
	}{
		{"low-rank+noise", 1e-3, 0.7, rpc.RankSelection{Method: "rank", Rank: 6}},
		{"slow-decay", 0, 0.97, rpc.RankSelection{Method: "rank", Rank: 12}},
		{"energy", 1e-3, 0.9, rpc.RankSelection{Method: "energy", Value: 0.95}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			const k = 40
			u, v := randn(r, out*k, 1), randn(r, k*in, 1)
			base, tuned := make([]float32, out*in), make([]float32, out*in)
			delta := mat.NewDense(out, in, nil)
			for i := 0; i < out; i++ {
				for j := 0; j < in; j++ {
					var d float64
					for c := 0; c < k; c++ {
						d += math.Pow(tc.decay, float64(c)) * float64(u[i*k+c]) * float64(v[c*in+j]) / 20
					}
					d += tc.noise * r.NormFloat64()
					base[i*in+j] = float32(r.NormFloat64())
					tuned[i*in+j] = base[i*in+j] + float32(d)
					delta.Set(i, j, float64(tuned[i*in+j])-float64(base[i*in+j]))
				}
			}
			res, err := rs.Extract(context.Background(), rpc.RankRequest{Adapter: "lora", Layer: rpc.Layer{Path: "m", In: in, Out: out}, Select: tc.sel}, base, tuned)
			if err != nil {
				t.Fatal(err)
			}
			kk := res.NewRank
			want, sv := truncated(t, delta, kk)
			var tail, total float64
			for i, x := range sv {
				total += x * x
				if i >= kk {
					tail += x * x
				}
			}
			if tc.sel.Method == "energy" {
				var cum float64
				wantK := 0
				for i, x := range sv {
					cum += x * x
					if cum/total >= tc.sel.Value {
						wantK = i + 1
						break
					}
				}
				if kk != wantK {
					t.Fatalf("energy %v chose rank %d, exact SVD %d", tc.sel.Value, kk, wantK)
				}
			}
			got := dense(res.Tensors[ParamB].Data, res.Tensors[ParamA].Data, out, kk, in, 1)
			var errGot, dist float64
			for i := 0; i < out; i++ {
				for j := 0; j < in; j++ {
					e := got.At(i, j) - delta.At(i, j)
					errGot += e * e
					w := got.At(i, j) - want.At(i, j)
					dist += w * w
				}
			}
			// The error is the optimal one: sqrt(sum of the dropped s_i^2).
			if math.Abs(math.Sqrt(errGot)-math.Sqrt(tail)) > 1e-5*math.Sqrt(total) {
				t.Fatalf("truncation error %.6g, optimal %.6g (||delta|| %.4g)", math.Sqrt(errGot), math.Sqrt(tail), math.Sqrt(total))
			}
			if math.Abs(res.Energy-(total-tail)/total) > 1e-6 {
				t.Fatalf("energy %v, exact %v", res.Energy, (total-tail)/total)
			}
			t.Logf("rank %d: error %.4g (optimal %.4g), distance to the exact truncated SVD %.3g of %.3g",
				kk, math.Sqrt(errGot), math.Sqrt(tail), math.Sqrt(dist), math.Sqrt(total-tail))
		})
	}
}

func TestRankConformance(t *testing.T) {
	sdktest.RunRank(t, Adapters(), []sdktest.Case{
		{Adapter: "lora", Config: map[string]any{"r": 4, "lora_alpha": 8.0}, In: 12, Out: 10, Bias: true},
		{Adapter: "lora", Config: map[string]any{"r": 3, "lora_alpha": 6.0, "use_rslora": true}, In: 9, Out: 14},
		{Adapter: "lora", Config: map[string]any{"r": 4, "init_lora_weights": "pissa"}, In: 12, Out: 10},
		{Adapter: "lora-merged", Config: map[string]any{"r": 2, "lora_alpha": 4.0}, In: 7, Out: 5, Bias: true},
		{Adapter: "dora", Config: map[string]any{"r": 4, "lora_alpha": 16.0}, In: 12, Out: 10, Bias: true},
	})
}
