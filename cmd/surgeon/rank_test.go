package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
	"github.com/surgeon-ml/surgeon/plugins/builtin/lora"
	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
	"github.com/surgeon-ml/surgeon/surgery/attach"
	"github.com/surgeon-ml/surgeon/surgery/ranks"
)

// Rank surgery end to end with real plugin binaries. References: the
// PyTorch outputs of tools/refgen/rankgen.py in surgery/ranks/testdata.

const rankData = "../../surgery/ranks/testdata"

// peftDelta returns s*B*A of one module of a PEFT folder in float64.
func peftDelta(t *testing.T, a *peft.Adapter, m string) []float64 {
	t.Helper()
	at, bt := a.Modules[m]["lora_A.weight"], a.Modules[m]["lora_B.weight"]
	av, _ := at.Float32()
	bv, _ := bt.Float32()
	r, in, out := at.Shape[0], at.Shape[1], bt.Shape[0]
	s := a.Config.AlphaFor(m) / float64(a.Config.RankFor(m))
	if a.Config.UseRSLoRA {
		s = a.Config.AlphaFor(m) / math.Sqrt(float64(a.Config.RankFor(m)))
	}
	d := make([]float64, out*in)
	for i := 0; i < out; i++ {
		for c := 0; c < r; c++ {
			for j := 0; j < in; j++ {
				d[i*in+j] += s * float64(bv[i*r+c]) * float64(av[c*in+j])
			}
		}
	}
	return d
}

// relFrob returns ||got - want||_F / ||want||_F.
func relFrob(got []float64, want []float32) float64 {
	var d, n float64
	for i := range want {
		e := got[i] - float64(want[i])
		d += e * e
		n += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d / n)
}

func readPEFT(t *testing.T, dir string) *peft.Adapter {
	t.Helper()
	a, err := peft.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func openST(t *testing.T, path string) *safetensors.File {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

type resizeJSON struct {
	Modules []ranks.Stat `json:"modules"`
}

func TestResizeCLI(t *testing.T) {
	withPlugins(t, "lora")
	ref := openST(t, filepath.Join(rankData, "expected.safetensors"))
	var exp struct {
		Resize struct {
			Modules map[string]struct {
				Energy float64        `json:"energy_r8"`
				Ranks  map[string]int `json:"ranks"`
			} `json:"modules"`
		} `json:"resize"`
	}
	readJSON(t, filepath.Join(rankData, "expected.json"), &exp)
	src := filepath.Join(rankData, "lora-r16")
	dir := t.TempDir()

	out := filepath.Join(dir, "r8")
	code, stdout, errs := runCLI("resize", src, "--rank", "8", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"model.layers.0.self_attn.q_proj", "16", "8", "98.4945%", "6 modules (rank 8): 14336 -> 7168 adapter parameters"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("resize output lacks %q:\n%s", want, stdout)
		}
	}
	res := readPEFT(t, out)
	if res.Config.R != 8 || res.Config.LoraAlpha != 16 {
		t.Fatalf("r=%d alpha=%v, want 8 and 16 (scale 2 kept)", res.Config.R, res.Config.LoraAlpha)
	}
	var worst float64
	for _, m := range res.ModuleNames() {
		want, err := ref.Float32("resize/" + m + ".delta_r8")
		if err != nil {
			t.Fatal(err)
		}
		e := relFrob(peftDelta(t, res, m), want)
		if e > 1e-5 {
			t.Errorf("%s: resized update differs from the exact rank-8 truncated SVD by %.3g (relative)", m, e)
		}
		worst = math.Max(worst, e)
	}
	t.Logf("resize 16 -> 8 through the CLI: worst relative Frobenius distance to torch's truncated SVD %.2g", worst)

	// Dynamic methods: ranks per module as the reference chooses them, in
	// rank_pattern.
	for _, tc := range []struct {
		key  string
		args []string
	}{
		{"energy 0.9", []string{"--energy", "0.9"}},
		{"sv_ratio 4", []string{"--method", "sv_ratio", "--value", "4"}},
		{"sv_fro 0.9", []string{"--method", "sv_fro", "--value", "0.9"}},
		{"sv_cumulative 0.7", []string{"--method", "sv_cumulative", "--value", "0.7"}},
	} {
		o := filepath.Join(dir, strings.ReplaceAll(tc.key, " ", "-"))
		code, stdout, errs := runCLI(append([]string{"resize", src, "-o", o, "--json"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.key, code, errs)
		}
		var r resizeJSON
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		a := readPEFT(t, o)
		for _, st := range r.Modules {
			want := exp.Resize.Modules[st.Module].Ranks[tc.key]
			if st.NewRank != want || a.Config.RankFor(st.Module) != want {
				t.Errorf("%s %s: rank %d (config %d), torch %d", tc.key, st.Module, st.NewRank, a.Config.RankFor(st.Module), want)
			}
		}
	}
	// A rank cap with a dynamic method.
	o := filepath.Join(dir, "capped")
	if code, _, errs := runCLI("resize", src, "--energy", "0.99", "--rank", "3", "-o", o); code != 0 {
		t.Fatal(errs)
	}
	if a := readPEFT(t, o); a.Config.R != 3 || len(a.Config.RankPattern) != 0 {
		t.Fatalf("capped: r=%d rank_pattern=%v", a.Config.R, a.Config.RankPattern)
	}
}

// The real GPT-2 adapter resized to rank 4: PyTorch's retained energies,
// and the rest of its adapter_config.json kept.
func TestResizeGPT2CLI(t *testing.T) {
	src := fixture(t, "peft-lora-gpt2-smartreview")
	withPlugins(t, "lora")
	var exp struct {
		Modules map[string]struct {
			Energy float64 `json:"energy_r4"`
		} `json:"modules"`
	}
	readJSON(t, filepath.Join(rankData, "gpt2-smartreview.json"), &exp)
	out := filepath.Join(t.TempDir(), "gpt2-r4")
	code, stdout, errs := runCLI("resize", src, "--rank", "4", "-o", out, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r resizeJSON
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Modules) != 12 {
		t.Fatalf("%d modules", len(r.Modules))
	}
	for _, st := range r.Modules {
		if math.Abs(st.Energy-exp.Modules[st.Module].Energy) > 1e-7 {
			t.Errorf("%s: energy %.8f, torch %.8f", st.Module, st.Energy, exp.Modules[st.Module].Energy)
		}
	}
	a := readPEFT(t, out)
	if a.Config.R != 4 || a.Config.LoraAlpha != 8 || !a.Config.FanInFanOut || a.Config.Extra["megatron_core"] != "megatron.core" {
		t.Fatalf("config: r=%d alpha=%v fan_in_fan_out=%v extra=%v", a.Config.R, a.Config.LoraAlpha, a.Config.FanInFanOut, a.Config.Extra["megatron_core"])
	}
}

// DoRA: B*A is resized and the magnitude kept; the result still merges.
func TestResizeDoRACLI(t *testing.T) {
	withPlugins(t, "lora")
	src := filepath.Join(refDir, "peft", "llama-dora-qkvo")
	out := filepath.Join(t.TempDir(), "dora-r2")
	if code, _, errs := runCLI("resize", src, "--rank", "2", "-o", out); code != 0 {
		t.Fatal(errs)
	}
	a, b := readPEFT(t, src), readPEFT(t, out)
	if !b.Config.UseDoRA || b.Config.R != 2 {
		t.Fatalf("use_dora=%v r=%d", b.Config.UseDoRA, b.Config.R)
	}
	for _, m := range a.ModuleNames() {
		x, y := a.Modules[m]["lora_magnitude_vector.weight"], b.Modules[m]["lora_magnitude_vector.weight"]
		if !bytes.Equal(x.Data, y.Data) {
			t.Fatalf("%s: magnitude changed", m)
		}
	}
	if code, _, errs := runCLI("merge", filepath.Join(refDir, "llama-mha-tied-f16"), "--adapter", out, "-o", filepath.Join(t.TempDir(), "m")); code != 0 {
		t.Fatal(errs)
	}
}

func TestRankSurgeryErrors(t *testing.T) {
	withPlugins(t, "lora", "ia3")
	src := filepath.Join(rankData, "lora-r16")
	base := filepath.Join(refDir, "llama-gqa-f32")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	// An IA3 adapter: its plugin offers no rank surgery.
	ia3 := filepath.Join(dir, "ia3")
	l := make([]byte, 4*64)
	err := peft.Write(ia3, &peft.Adapter{
		Config: peft.Config{PeftType: "IA3", TargetModules: []any{"q_proj"}},
		Modules: map[string]map[string]tensor.Tensor{
			"model.layers.0.self_attn.q_proj": {"ia3_l": {DType: tensor.F32, Shape: []int{64, 1}, Data: l}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  []string
	}{
		{"unknown method", []string{"resize", src, "--method", "sv_magic", "--value", "1", "-o", out}, 2, []string{`unknown --method "sv_magic"`}},
		{"rank 0", []string{"resize", src, "--rank", "0", "-o", out}, 2, []string{"--rank must be positive"}},
		{"no selection", []string{"resize", src, "-o", out}, 2, []string{"one of --rank, --energy or --method"}},
		{"energy > 1", []string{"resize", src, "--energy", "1.5", "-o", out}, 2, []string{"fraction in (0,1]"}},
		{"method without value", []string{"resize", src, "--method", "sv_fro", "-o", out}, 2, []string{"needs --value"}},
		{"ia3", []string{"resize", ia3, "--rank", "2", "-o", out}, 1, []string{"plugin ia3", "adapter ia3 does not offer resize"}},
		{"extract rank 0", []string{"extract", base, base, "--rank", "0", "-o", out}, 2, []string{"--rank must be positive"}},
		{"extract identical", []string{"extract", base, base, "--rank", "2", "-o", out}, 1, []string{"identical"}},
		{"merge unknown method", []string{"merge", base, "--adapter", src, "--method", "slerp", "-o", out}, 2, []string{`unknown --method "slerp"`}},
		{"merge svd rank 0", []string{"merge", "--adapter", src, "--method", "svd", "--rank", "0", "--adapter-out", out}, 2, []string{"--rank must be positive"}},
		{"merge svd without rank", []string{"merge", "--adapter", src, "--method", "svd", "--adapter-out", out}, 2, []string{"needs --rank"}},
		{"merge ties without density", []string{"merge", base, "--adapter", src, "--method", "ties", "-o", out}, 2, []string{"needs --density"}},
		{"merge ties adapter-out", []string{"merge", "--adapter", src, "--method", "ties", "--density", "0.5", "--adapter-out", out}, 2, []string{"--adapter-out applies to --method cat or svd"}},
		{"merge rank with linear", []string{"merge", base, "--adapter", src, "--rank", "4", "-o", out}, 2, []string{"apply to --method svd"}},
		{"merge cat of ia3", []string{"merge", "--adapter", ia3, "--method", "cat", "--adapter-out", out}, 1, []string{"adapter ia3 does not offer concat"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, errs)
			}
			for _, m := range tc.msg {
				if !strings.Contains(errs, m) {
					t.Fatalf("error lacks %q: %s", m, errs)
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatal("output written on error")
			}
		})
	}
}

// fineTune returns a copy of the base model whose every linear weight W is
// W + L + N with L of rank `rank` (||L|| about ||W||/2) and N iid noise of
// std noise, plus the clean copy W + L; it also changes the token
// embeddings when embed is set. It returns the noise norm per module.
func fineTune(t *testing.T, base string, rank int, noise float64, embed bool) (ft, clean string, noiseNorm map[string]float64) {
	t.Helper()
	dir := t.TempDir()
	lt, err := checkpoint.Load(base)
	if err != nil {
		t.Fatal(err)
	}
	defer lt.Close()
	lc, err := checkpoint.Load(base)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	r := rand.New(rand.NewPCG(11, 12))
	noiseNorm = map[string]float64{}
	cslots := attach.Slots(lc.Model)
	for _, path := range sortedSlotPaths(attach.Slots(lt.Model)) {
		w := ops.Data(attach.Slots(lt.Model)[path].Base().Weight)
		c := ops.Data(cslots[path].Base().Weight)
		lin := attach.Slots(lt.Model)[path].Base()
		out, in := lin.Out(), lin.In()
		var wn float64
		for _, x := range w {
			wn += float64(x) * float64(x)
		}
		u := make([]float64, out*rank)
		v := make([]float64, rank*in)
		for i := range u {
			u[i] = r.NormFloat64()
		}
		for i := range v {
			v[i] = r.NormFloat64()
		}
		// ||U V||_F is about sqrt(out*in*rank); scale it to ||W||/2.
		sc := 0.5 * math.Sqrt(wn/float64(out*in*rank))
		var nn float64
		for i := 0; i < out; i++ {
			for j := 0; j < in; j++ {
				var l float64
				for k := 0; k < rank; k++ {
					l += u[i*rank+k] * v[k*in+j]
				}
				n := noise * r.NormFloat64()
				nn += n * n
				c[i*in+j] = float32(float64(w[i*in+j]) + sc*l)
				w[i*in+j] = float32(float64(w[i*in+j]) + sc*l + n)
			}
		}
		noiseNorm[path] = math.Sqrt(nn)
	}
	if embed {
		for _, p := range layer.Params(lt.Model) {
			if p.Path == "model.embed_tokens.weight" {
				d := ops.Data(p.Param)
				for i := range d {
					d[i] += float32(0.01 * r.NormFloat64())
				}
				cd := ops.Data(paramByPath(t, lc.Model, p.Path).Param)
				copy(cd, d)
			}
		}
	}
	ft, clean = filepath.Join(dir, "ft"), filepath.Join(dir, "clean")
	if err := checkpoint.SaveHF(ft, lt.Model, checkpoint.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.SaveHF(clean, lc.Model, checkpoint.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return ft, clean, noiseNorm
}

func sortedSlotPaths(m map[string]*layer.Slot) []string {
	var out []string
	for p := range m {
		out = append(out, p)
	}
	sortStrings(out)
	return out
}

func paramByPath(t *testing.T, m nn.Model, path string) layer.Param {
	t.Helper()
	for _, p := range layer.Params(m) {
		if p.Path == path {
			return p
		}
	}
	t.Fatalf("no parameter %s", path)
	return layer.Param{}
}

func logitsOf(t *testing.T, model, tokens string) [][]float64 {
	t.Helper()
	code, out, errs := runCLI("forward", model, "--tokens", tokens, "--json")
	if code != 0 {
		t.Fatalf("forward %s: %s", model, errs)
	}
	var r struct {
		Logits [][]float64 `json:"logits"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	return r.Logits
}

func maxLogitDiff(a, b [][]float64) float64 {
	var m float64
	for i := range a {
		for j := range a[i] {
			m = math.Max(m, math.Abs(a[i][j]-b[i][j]))
		}
	}
	return m
}

// Extract from a full fine-tune: the fine-tuned copy differs from the base
// by a known rank-4 delta plus small noise (and changed embeddings, saved
// whole). The adapter extracted at rank 4, merged by surgeon merge, is
// within the noise of the fine-tune: by Eckart-Young its per-module
// Frobenius error is at most the noise's, and its logits are as close to
// the fine-tune's as the noise-free fine-tune's are.
func TestExtractCLI(t *testing.T) {
	withPlugins(t, "lora")
	base := filepath.Join(refDir, "llama-gqa-f32")
	const noise = 2e-4
	ft, clean, noiseNorm := fineTune(t, base, 4, noise, true)
	dir := t.TempDir()
	ad := filepath.Join(dir, "adapter")
	code, stdout, errs := runCLI("extract", base, ft, "--rank", "4", "-o", ad, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Modules       []ranks.Stat `json:"modules"`
		ModulesToSave []string     `json:"modules_to_save"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	a := readPEFT(t, ad)
	if len(a.Modules) != len(noiseNorm) || a.Config.R != 4 || a.Config.LoraAlpha != 4 || len(a.Config.RankPattern) != 0 {
		t.Fatalf("%d modules r=%d alpha=%v rank_pattern=%v, want %d modules at rank 4, alpha 4", len(a.Modules), a.Config.R, a.Config.LoraAlpha, a.Config.RankPattern, len(noiseNorm))
	}
	if len(res.ModulesToSave) != 1 || res.ModulesToSave[0] != "model.embed_tokens" {
		t.Fatalf("modules_to_save %v", res.ModulesToSave)
	}
	merged := filepath.Join(dir, "merged")
	if code, _, errs := runCLI("merge", base, "--adapter", ad, "-o", merged); code != 0 {
		t.Fatal(errs)
	}
	got := openST(t, filepath.Join(merged, "model.safetensors"))
	want := openST(t, filepath.Join(ft, "model.safetensors"))
	var worstRatio float64
	for path, nn := range noiseNorm {
		g, _ := got.Float32(path + ".weight")
		w, _ := want.Float32(path + ".weight")
		var d float64
		for i := range w {
			d += float64(g[i]-w[i]) * float64(g[i]-w[i])
		}
		ratio := math.Sqrt(d) / nn
		// Eckart-Young: ||trunc_4(L+N) - (L+N)|| <= ||N||; float32 slack.
		if ratio > 1.001 {
			t.Errorf("%s: ||merged - fine-tuned||_F = %.4g > noise %.4g", path, math.Sqrt(d), nn)
		}
		worstRatio = math.Max(worstRatio, ratio)
	}
	g, _ := got.Float32("model.embed_tokens.weight")
	w, _ := want.Float32("model.embed_tokens.weight")
	for i := range w {
		if g[i] != w[i] {
			t.Fatal("embeddings (modules_to_save) not restored exactly")
		}
	}
	toks := "1,5,9,13,2,7,30,41"
	lm, lf, lc, lb := logitsOf(t, merged, toks), logitsOf(t, ft, toks), logitsOf(t, clean, toks), logitsOf(t, base, toks)
	errMerged, errClean, effect := maxLogitDiff(lm, lf), maxLogitDiff(lc, lf), maxLogitDiff(lb, lf)
	if errMerged > 1.5*errClean+1e-5 || errMerged > 0.01*effect {
		t.Errorf("logits: |merged - fine-tuned| = %.3g, noise-free fine-tune %.3g, fine-tune effect %.3g", errMerged, errClean, effect)
	}
	t.Logf("extract rank 4 (noise std %g): weight error / noise norm <= %.4f; max |logit| error %.3g (noise-free fine-tune %.3g, fine-tune effect %.3g)",
		noise, worstRatio, errMerged, errClean, effect)

	// --save-changed=false skips the embeddings with a note.
	ad2 := filepath.Join(dir, "adapter2")
	code, stdout, errs = runCLI("extract", base, ft, "--energy", "0.999", "--save-changed=false", "-o", ad2)
	if code != 0 || !strings.Contains(stdout, "model.embed_tokens") || !strings.Contains(stdout, "not saved") {
		t.Fatalf("exit %d: %s %s", code, stdout, errs)
	}
	if a2 := readPEFT(t, ad2); len(a2.Saved) != 0 || a2.Config.R != 4 {
		t.Fatalf("energy 0.999: r=%d saved=%d (the delta has rank 4)", a2.Config.R, len(a2.Saved))
	}
}

// BASE may be any model surgeon loads: a GGUF file against a Hugging Face
// folder of its fine-tune.
func TestExtractFromGGUF(t *testing.T) {
	model := fixture(t, "stories260K-gguf/stories260K.gguf")
	withPlugins(t, "lora")
	ft, _, noiseNorm := fineTune(t, model, 2, 0, false)
	ad := filepath.Join(t.TempDir(), "adapter")
	code, stdout, errs := runCLI("extract", model, ft, "--rank", "2", "-o", ad)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if a := readPEFT(t, ad); len(a.Modules) != len(noiseNorm) || a.Config.R != 2 {
		t.Fatalf("%d modules at rank %d:\n%s", len(a.Modules), a.Config.R, stdout)
	}
}

// merge --method cat|svd|ties|dare against the references.
func TestMergeMethodsCLI(t *testing.T) {
	withPlugins(t, "lora")
	base := filepath.Join(refDir, "llama-gqa-f32")
	a1, a2 := filepath.Join(rankData, "lora-r16"), filepath.Join(rankData, "lora-r8")
	ref := openST(t, filepath.Join(rankData, "expected.safetensors"))
	baseST := openST(t, filepath.Join(base, "model.safetensors"))
	dir := t.TempDir()
	two := []string{"--adapter", a1, "--adapter", a2, "--weight", "0.7", "--weight", "0.5"}
	merge := func(args ...string) {
		t.Helper()
		if code, _, errs := runCLI(append(append([]string{"merge"}, args...), two...)...); code != 0 {
			t.Fatalf("merge %v: %s", args, errs)
		}
	}
	modules := []string{}
	for _, n := range ref.Names() {
		if m, ok := strings.CutPrefix(n, "sum/"); ok {
			modules = append(modules, m)
		}
	}
	// checkMerged compares W_merged - W with the reference deltas.
	checkMerged := func(dir, prefix string, tol float64) {
		t.Helper()
		got := openST(t, filepath.Join(dir, "model.safetensors"))
		for _, m := range modules {
			w, _ := baseST.Float32(m + ".weight")
			g, _ := got.Float32(m + ".weight")
			want, _ := ref.Float32(prefix + m)
			d := make([]float64, len(w))
			for i := range w {
				d[i] = float64(g[i]) - float64(w[i])
			}
			if e := relFrob(d, want); e > tol {
				t.Errorf("%s %s: merged delta differs from the reference by %.3g (relative)", prefix, m, e)
			}
		}
	}
	// cat: exact weighted sum, as an adapter and as merged weights.
	catAd, catW := filepath.Join(dir, "cat-adapter"), filepath.Join(dir, "cat-merged")
	merge("--method", "cat", "--adapter-out", catAd)
	merge(base, "--method", "cat", "-o", catW)
	cat := readPEFT(t, catAd)
	for _, m := range modules {
		want, _ := ref.Float32("sum/" + m)
		if e := relFrob(peftDelta(t, cat, m), want); e > 1e-6 {
			t.Errorf("cat adapter %s: %.3g from the weighted sum", m, e)
		}
	}
	checkMerged(catW, "sum/", 1e-5)
	// linear gives the same weights (a different route to the same sum).
	linW := filepath.Join(dir, "linear")
	merge(base, "-o", linW)
	checkMerged(linW, "sum/", 1e-5)
	// svd: the truncated SVD of the sum.
	svdAd, svdW := filepath.Join(dir, "svd-adapter"), filepath.Join(dir, "svd-merged")
	merge(base, "--method", "svd", "--rank", "6", "--adapter-out", svdAd, "-o", svdW)
	svd := readPEFT(t, svdAd)
	for _, m := range modules {
		want, _ := ref.Float32("svd/" + m)
		if e := relFrob(peftDelta(t, svd, m), want); e > 1e-5 {
			t.Errorf("svd adapter %s: %.3g from truncSVD_6(sum)", m, e)
		}
	}
	checkMerged(svdW, "svd/", 1e-5)

	// ties and dare: the CLI result equals ranks.Combine on the adapters'
	// deltas computed in-process (the arithmetic itself is checked by hand
	// in surgery/ranks), and dare is determined by its seed.
	inproc := attach.InProcess(sdktest.Connect(t, lora.Adapters()...))
	want := func(method string, density float64, seed uint64) string {
		l, err := checkpoint.Load(base)
		if err != nil {
			t.Fatal(err)
		}
		var ds []map[string][]float32
		for _, d := range []string{a1, a2} {
			delta, err := ranks.Deltas(context.Background(), l.Model, inproc, readPEFT(t, d))
			if err != nil {
				t.Fatal(err)
			}
			ds = append(ds, delta)
		}
		if err := ranks.Combine(l.Model, ds, []float64{0.7, 0.5}, method, density, seed); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), method)
		if err := checkpoint.SaveHF(out, l.Model, checkpoint.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	weights := func(dir string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tiesW := filepath.Join(dir, "ties")
	merge(base, "--method", "ties", "--density", "0.4", "-o", tiesW)
	if !bytes.Equal(weights(tiesW), weights(want("ties", 0.4, 0))) {
		t.Error("ties through the CLI differs from ranks.Combine")
	}
	d1, d2, d3 := filepath.Join(dir, "dare1"), filepath.Join(dir, "dare2"), filepath.Join(dir, "dare3")
	merge(base, "--method", "dare", "--density", "0.5", "--seed", "3", "-o", d1)
	merge(base, "--method", "dare", "--density", "0.5", "--seed", "3", "-o", d2)
	merge(base, "--method", "dare", "--density", "0.5", "--seed", "4", "-o", d3)
	if !bytes.Equal(weights(d1), weights(d2)) || bytes.Equal(weights(d1), weights(d3)) {
		t.Error("dare is not determined by --seed")
	}
	if !bytes.Equal(weights(d1), weights(want("dare", 0.5, 3))) {
		t.Error("dare through the CLI differs from ranks.Combine")
	}
}
