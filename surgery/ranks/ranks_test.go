package ranks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
	"github.com/surgeon-ml/surgeon/plugins/builtin/lora"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

// The references in testdata come from tools/refgen/rankgen.py (PyTorch,
// torch.linalg.svd in float64); the LoRA plugin runs in-process over real
// gRPC.

const gpt2Fixture = "../../../shared/fixtures/peft-lora-gpt2-smartreview"

func connect(t *testing.T) Surgeon {
	t.Helper()
	c := sdktest.Connect(t, lora.Adapters()...)
	return struct {
		attach.Store
		rpc.RankSurgeon
	}{attach.InProcess(c), c.(rpc.RankSurgeon)}
}

type expected struct {
	Resize struct {
		Scale   float64 `json:"scale"`
		Rank    int     `json:"rank"`
		Modules map[string]struct {
			SingularValues []float64      `json:"singular_values"`
			Energy         float64        `json:"energy_r8"`
			Error          float64        `json:"error_r8"`
			Norm           float64        `json:"norm"`
			Ranks          map[string]int `json:"ranks"`
		} `json:"modules"`
	} `json:"resize"`
	Merge struct {
		Weights []float64 `json:"weights"`
		Rank    int       `json:"rank"`
		Modules map[string]struct {
			Energy float64 `json:"energy_r6"`
			Error  float64 `json:"error_r6"`
		} `json:"modules"`
	} `json:"merge"`
}

func readExpected(t *testing.T) (*expected, *safetensors.File) {
	t.Helper()
	var e expected
	raw, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open("testdata/expected.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &e, f
}

// Delta returns s*B*A of a module of a PEFT adapter, row-major [out,in],
// in float64.
func Delta(t testing.TB, a *peft.Adapter, module string) ([]float64, int, int) {
	t.Helper()
	at, bt := a.Modules[module]["lora_A.weight"], a.Modules[module]["lora_B.weight"]
	av, err := at.Float32()
	if err != nil {
		t.Fatal(err)
	}
	bv, err := bt.Float32()
	if err != nil {
		t.Fatal(err)
	}
	r, in, out := at.Shape[0], at.Shape[1], bt.Shape[0]
	s := scale(&a.Config, module)
	d := make([]float64, out*in)
	for i := 0; i < out; i++ {
		for c := 0; c < r; c++ {
			bic := s * float64(bv[i*r+c])
			for j := 0; j < in; j++ {
				d[i*in+j] += bic * float64(av[c*in+j])
			}
		}
	}
	return d, out, in
}

// frob returns ||x - y||_F and ||y||_F.
func frob(x []float64, y []float32) (diff, norm float64) {
	for i := range x {
		d := x[i] - float64(y[i])
		diff += d * d
		norm += float64(y[i]) * float64(y[i])
	}
	return math.Sqrt(diff), math.Sqrt(norm)
}

func TestResizeMatchesTorch(t *testing.T) {
	exp, ref := readExpected(t)
	a, err := peft.Read("testdata/lora-r16")
	if err != nil {
		t.Fatal(err)
	}
	s := connect(t)
	res, stats, err := Resize(context.Background(), s, a, rpc.RankSelection{Method: "rank", Rank: 8})
	if err != nil {
		t.Fatal(err)
	}
	if res.Config.R != 8 || res.Config.LoraAlpha != 16 || len(res.Config.RankPattern) != 0 {
		t.Fatalf("config r=%d alpha=%v rank_pattern=%v, want 8, 16 (scale 2 kept), none", res.Config.R, res.Config.LoraAlpha, res.Config.RankPattern)
	}
	if len(stats) != len(exp.Resize.Modules) {
		t.Fatalf("%d modules, want %d", len(stats), len(exp.Resize.Modules))
	}
	var worst float64
	for _, st := range stats {
		m := st.Module
		e := exp.Resize.Modules[m]
		want, err := ref.Float32("resize/" + m + ".delta_r8")
		if err != nil {
			t.Fatal(err)
		}
		full, _ := ref.Float32("resize/" + m + ".delta")
		got, _, _ := Delta(t, res, m)
		diff, norm := frob(got, want)
		// Distance to the exact truncated SVD, against the truncation error
		// itself (what resizing to rank 8 must lose) and float32 rounding.
		if diff > 1e-5*norm {
			t.Errorf("%s: ||s'B'A' - truncSVD_8||_F = %.3g (||truncSVD_8|| = %.3g, truncation error %.3g)", m, diff, norm, e.Error)
		}
		worst = math.Max(worst, diff/norm)
		trunc, _ := frob(got, full)
		if math.Abs(trunc-e.Error) > 1e-5*e.Norm {
			t.Errorf("%s: ||s'B'A' - sBA||_F = %.6g, torch truncation error %.6g", m, trunc, e.Error)
		}
		if math.Abs(st.Energy-e.Energy) > 1e-9 {
			t.Errorf("%s: energy %.9f, torch %.9f", m, st.Energy, e.Energy)
		}
		for i, sv := range e.SingularValues {
			if math.Abs(st.SingularValues[i]-sv) > 1e-9*e.SingularValues[0] {
				t.Errorf("%s: singular value %d = %v, torch %v", m, i, st.SingularValues[i], sv)
			}
		}
		if st.OldRank != 16 || st.NewRank != 8 {
			t.Errorf("%s: %d -> %d", m, st.OldRank, st.NewRank)
		}
	}
	t.Logf("resize 16 -> 8: max ||s'B'A' - exact truncated SVD||_F / ||truncated SVD||_F = %.2g", worst)

	// Dynamic methods choose the ranks the reference chooses; ranks that
	// differ go to rank_pattern and read back per module.
	for key, sel := range map[string]rpc.RankSelection{
		"energy 0.9":        {Method: "energy", Value: 0.9},
		"sv_fro 0.9":        {Method: "sv_fro", Value: 0.9},
		"sv_ratio 4":        {Method: "sv_ratio", Value: 4},
		"sv_cumulative 0.7": {Method: "sv_cumulative", Value: 0.7},
	} {
		res, stats, err := Resize(context.Background(), s, a, sel)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range stats {
			want := exp.Resize.Modules[st.Module].Ranks[key]
			if st.NewRank != want || res.Config.RankFor(st.Module) != want {
				t.Errorf("%s, %s: rank %d (config %d), torch %d", key, st.Module, st.NewRank, res.Config.RankFor(st.Module), want)
			}
			if got := res.Config.AlphaFor(st.Module) / float64(want); math.Abs(got-2) > 1e-12 {
				t.Errorf("%s, %s: scale %v, want 2", key, st.Module, got)
			}
		}
	}
}

// The written folder reads back with the same modules, ranks and deltas.
func TestResizeWritesPEFT(t *testing.T) {
	a, err := peft.Read("testdata/lora-r16")
	if err != nil {
		t.Fatal(err)
	}
	res, _, err := Resize(context.Background(), connect(t), a, rpc.RankSelection{Method: "energy", Value: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := peft.Write(dir, res); err != nil {
		t.Fatal(err)
	}
	back, err := peft.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Config.RankPattern) == 0 {
		t.Fatal("ranks differ per module but rank_pattern is empty")
	}
	for _, m := range res.ModuleNames() {
		x, _, _ := Delta(t, res, m)
		y, _, _ := Delta(t, back, m)
		for i := range x {
			if x[i] != y[i] {
				t.Fatalf("%s changed through the folder", m)
			}
		}
	}
}

type gpt2Expected struct {
	SHA256   string  `json:"sha256"`
	SHA256CP string  `json:"sha256_checkpoint_2500"`
	Scale    float64 `json:"scale"`
	Modules  map[string]struct {
		SingularValues []float64 `json:"singular_values"`
		Energy         float64   `json:"energy_r4"`
		Error          float64   `json:"error_r4"`
		Norm           float64   `json:"norm"`
		DiffSV         []float64 `json:"diff_singular_values"`
		DiffEnergy     float64   `json:"diff_energy_r8"`
		DiffNorm       float64   `json:"diff_norm"`
	} `json:"modules"`
}

func gpt2(t *testing.T) (*gpt2Expected, *peft.Adapter) {
	t.Helper()
	path := filepath.Join(gpt2Fixture, peft.WeightsFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("fixture peft-lora-gpt2-smartreview not available (../shared/fixtures missing): %v", err)
	}
	var e gpt2Expected
	js, err := os.ReadFile("testdata/gpt2-smartreview.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &e); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != e.SHA256 {
		t.Fatalf("%s is not the file the reference was computed from", path)
	}
	a, err := peft.Read(gpt2Fixture)
	if err != nil {
		t.Fatal(err)
	}
	return &e, a
}

// The real GPT-2 adapter (r=8, fan_in_fan_out) resized to rank 4: the
// retained energies and truncation errors match PyTorch's SVD.
func TestResizeGPT2Adapter(t *testing.T) {
	exp, a := gpt2(t)
	res, stats, err := Resize(context.Background(), connect(t), a, rpc.RankSelection{Method: "rank", Rank: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res.Config.R != 4 || res.Config.LoraAlpha != 8 || !res.Config.FanInFanOut {
		t.Fatalf("config r=%d alpha=%v fan_in_fan_out=%v", res.Config.R, res.Config.LoraAlpha, res.Config.FanInFanOut)
	}
	if len(stats) != 12 {
		t.Fatalf("%d modules, want 12", len(stats))
	}
	for _, st := range stats {
		e, ok := exp.Modules[st.Module]
		if !ok {
			t.Fatalf("module %s not in the reference", st.Module)
		}
		if math.Abs(st.Energy-e.Energy) > 1e-7 {
			t.Errorf("%s: energy %.9f, torch %.9f", st.Module, st.Energy, e.Energy)
		}
		full, _, _ := Delta(t, a, st.Module)
		got, _, _ := Delta(t, res, st.Module)
		var d float64
		for i := range full {
			d += (full[i] - got[i]) * (full[i] - got[i])
		}
		if math.Abs(math.Sqrt(d)-e.Error) > 1e-5*e.Norm {
			t.Errorf("%s: truncation error %.6g, torch %.6g", st.Module, math.Sqrt(d), e.Error)
		}
		t.Logf("%-28s energy %.4f%%  error %.4g of %.4g", st.Module, 100*st.Energy, math.Sqrt(d), e.Norm)
	}
}

// Extract on two PEFT-derived weight sets of the real adapter: its final
// update and that of checkpoint-2500 (the GPT-2 base, which surgeon does not
// load, cancels in the difference). The difference has rank <= 16; at rank
// 16 it is recovered exactly, at rank 8 with PyTorch's retained energy.
func TestExtractGPT2Checkpoints(t *testing.T) {
	exp, final := gpt2(t)
	early, err := peft.Read(filepath.Join(gpt2Fixture, "checkpoint-2500"))
	if err != nil {
		t.Fatal(err)
	}
	s := connect(t)
	modules := final.ModuleNames()
	if testing.Short() {
		modules = modules[:2]
	}
	for _, m := range modules {
		ft, out, in := Delta(t, final, m)
		bs, _, _ := Delta(t, early, m)
		tuned, base := make([]float32, len(ft)), make([]float32, len(bs))
		for i := range ft {
			tuned[i], base[i] = float32(ft[i]), float32(bs[i])
		}
		l := rpc.Layer{Path: m, Kind: "linear", In: in, Out: out}
		e := exp.Modules[m]
		for _, k := range []int{8, 16} {
			r, err := s.Extract(context.Background(), rpc.RankRequest{Adapter: "lora", Layer: l, Select: rpc.RankSelection{Method: "rank", Rank: k}}, base, tuned)
			if err != nil {
				t.Fatal(err)
			}
			if k == 8 && math.Abs(r.Energy-e.DiffEnergy) > 1e-5 {
				t.Errorf("%s: rank-8 energy %.7f, torch %.7f", m, r.Energy, e.DiffEnergy)
			}
			if k == 16 {
				if r.Energy < 1-1e-6 {
					t.Errorf("%s: rank-16 energy %v, want 1", m, r.Energy)
				}
				// B*A (scale 1) reproduces the difference of the float32 weights.
				a, b := r.Tensors["lora_A.weight"].Data, r.Tensors["lora_B.weight"].Data
				var d, n float64
				for i := 0; i < out; i++ {
					for j := 0; j < in; j++ {
						var x float64
						for c := 0; c < k; c++ {
							x += float64(b[i*k+c]) * float64(a[c*in+j])
						}
						want := float64(tuned[i*in+j]) - float64(base[i*in+j])
						d += (x - want) * (x - want)
						n += want * want
					}
				}
				if math.Sqrt(d) > 1e-5*math.Sqrt(n) {
					t.Errorf("%s: rank-16 extraction error %.3g of %.3g", m, math.Sqrt(d), math.Sqrt(n))
				}
			}
			for i := 0; i < 8; i++ {
				if math.Abs(r.SingularValues[i]-e.DiffSV[i]) > 1e-5*e.DiffSV[0] {
					t.Errorf("%s: singular value %d = %v, torch %v", m, i, r.SingularValues[i], e.DiffSV[i])
				}
			}
		}
	}
}

// cat is exact and svd is the truncated SVD of the weighted sum.
func TestCatAndSVDMatchTorch(t *testing.T) {
	exp, ref := readExpected(t)
	var as []*peft.Adapter
	for _, d := range []string{"testdata/lora-r16", "testdata/lora-r8"} {
		a, err := peft.Read(d)
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, a)
	}
	w := exp.Merge.Weights
	cat, err := Cat(context.Background(), connect(t), as, w)
	if err != nil {
		t.Fatal(err)
	}
	if got := cat.Config.RankFor("model.layers.0.self_attn.q_proj"); got != 24 {
		t.Fatalf("q_proj rank %d, want 16+8", got)
	}
	if got := cat.Config.RankFor("model.layers.0.self_attn.k_proj"); got != 8 {
		t.Fatalf("k_proj rank %d, want 8", got)
	}
	svd, stats, err := SVD(context.Background(), connect(t), as, w, rpc.RankSelection{Method: "rank", Rank: exp.Merge.Rank})
	if err != nil {
		t.Fatal(err)
	}
	if len(cat.Modules) != len(exp.Merge.Modules) || len(stats) != len(exp.Merge.Modules) {
		t.Fatalf("%d/%d modules, want %d", len(cat.Modules), len(stats), len(exp.Merge.Modules))
	}
	for _, st := range stats {
		m := st.Module
		sum, _ := ref.Float32("sum/" + m)
		want, _ := ref.Float32("svd/" + m)
		got, _, _ := Delta(t, cat, m)
		if d, n := frob(got, sum); d > 1e-6*n {
			t.Errorf("cat %s: ||cat - sum||_F = %.3g of %.3g", m, d, n)
		}
		got, _, _ = Delta(t, svd, m)
		if d, n := frob(got, want); d > 1e-5*n {
			t.Errorf("svd %s: ||svd - truncSVD_6(sum)||_F = %.3g of %.3g", m, d, n)
		}
		if e := exp.Merge.Modules[m]; math.Abs(st.Energy-e.Energy) > 1e-7 { // B' = w*s*B rounded to float32
			t.Errorf("svd %s: energy %v, torch %v", m, st.Energy, e.Energy)
		}
	}
	// DoRA and fully trained tensors are refused with a reason.
	dora := *as[0]
	dora.Raw = map[string]any{}
	for k, v := range as[0].Raw {
		dora.Raw[k] = v
	}
	dora.Raw["use_dora"] = true
	if _, err := Cat(context.Background(), connect(t), []*peft.Adapter{&dora}, []float64{1}); !errors.Is(err, rpc.ErrUnsupported) {
		t.Fatalf("cat of a DoRA adapter: %v", err)
	}
}

func TestNaturalLess(t *testing.T) {
	for _, c := range [][2]string{{"h.2.attn", "h.10.attn"}, {"a", "b"}, {"layers.1.q", "layers.1.v"}, {"x9", "x10"}, {"x", "x0"}} {
		if !NaturalLess(c[0], c[1]) || NaturalLess(c[1], c[0]) {
			t.Errorf("%q < %q expected", c[0], c[1])
		}
	}
}

// scale is a PEFT LoRA module's scaling factor, read from the config as
// PEFT does (the test's own reading, independent of the plugin).
func scale(c *peft.Config, module string) float64 {
	r := float64(c.RankFor(module))
	if c.UseRSLoRA {
		return c.AlphaFor(module) / math.Sqrt(r)
	}
	return c.AlphaFor(module) / r
}
