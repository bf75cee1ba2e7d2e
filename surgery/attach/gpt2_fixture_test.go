package attach_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/plugins/builtin/lora"
	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

// gpt2Fixture is core/testdata/reference/gpt2-smartreview-peft.json,
// written by tools/refgen/gpt2peft.py.
type gpt2Fixture struct {
	Seed          uint64                        `json:"seed"`
	Rules         [][]any                       `json:"rules"`
	Config        map[string]any                `json:"config"`
	AdapterSHA256 string                        `json:"adapter_sha256"`
	Inputs        [][]int                       `json:"inputs"`
	BaseLogits    [][]float64                   `json:"base_logits"`
	Logits        [][][]float64                 `json:"logits"`
	Probe         map[string][]float64          `json:"probe"`
	Merged        map[string]map[string]float64 `json:"merged"`
}

// hashWeights is gpt2peft.py's counter-based generator: element i of the
// tensor called name is splitmix64(fnv1a64(name)+seed+(i+1)*golden) mapped
// to float32(2u-1)*amp + mean with u in [0,1) from the top 24 bits.
func hashWeights(name string, n int, seed uint64, amp, mean float32) []float32 {
	key := uint64(0xcbf29ce484222325)
	for _, b := range []byte(name) {
		key ^= uint64(b)
		key *= 0x100000001b3
	}
	key += seed
	out := make([]float32, n)
	for i := range out {
		z := key + uint64(i+1)*0x9E3779B97F4A7C15
		z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
		z = (z ^ z>>27) * 0x94D049BB133111EB
		z ^= z >> 31
		x := float32(int64(z>>40)*2-(1<<24)) / (1 << 24)
		out[i] = float32(x*amp) + mean
	}
	return out
}

func (f *gpt2Fixture) weights(name string, n int) []float32 {
	for _, r := range f.Rules {
		if strings.HasSuffix(name, r[0].(string)) {
			return hashWeights(name, n, f.Seed, float32(r[1].(float64)), float32(r[2].(float64)))
		}
	}
	panic("no rule for " + name)
}

// The real PEFT LoRA of ../shared/fixtures/peft-lora-gpt2-smartreview (r=8,
// alpha 16, fan_in_fan_out, on every c_attn of a 12-layer, 768-wide GPT-2)
// loads through the LoRA plugin onto a random GPT-2 base of its shapes
// (regenerated from the seed with the reference's hash generator) and gives
// tools/refgen/gpt2peft.py's logits to 1e-4, attached and merged; merged
// weights match its checksums; saved again it keeps fan_in_fan_out.
func TestGPT2PEFTFixture(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an 85M-parameter base (about 20 s)")
	}
	dir := "../../../shared/fixtures/peft-lora-gpt2-smartreview"
	raw, err := os.ReadFile(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Skipf("fixture not available (%v): see ../shared/fixtures/README.md", err)
	}
	js, err := os.ReadFile("../../core/testdata/reference/gpt2-smartreview-peft.json")
	if err != nil {
		t.Fatal(err)
	}
	var exp gpt2Fixture
	if err := json.Unmarshal(js, &exp); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != exp.AdapterSHA256 {
		t.Fatalf("adapter_model.safetensors sha256 %x, the reference was made from %s", sum, exp.AdapterSHA256)
	}
	cfg, _ := json.Marshal(exp.Config)
	m, err := model.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := map[string][]float32{}
	for _, p := range layer.Params(m) {
		n := 1
		for _, d := range p.Shape {
			n *= d
		}
		v := exp.weights(p.Path, n)
		p.SetStored(v)
		if strings.HasSuffix(p.Path, "c_attn.weight") {
			base[p.Path] = v
		}
		if want, ok := exp.Probe[p.Path]; ok {
			row := 0
			if strings.Contains(p.Path, "c_attn") {
				row = 5 * p.Shape[1]
			}
			for i, w := range want {
				if g := v[row+i]; g != float32(w) {
					t.Fatalf("%s: generated value %d = %v, the reference has %v", p.Path, i, g, w)
				}
			}
		}
	}
	layer.Freeze(m, true)

	compare := func(what string, got []float32, want [][]float64) {
		t.Helper()
		worst := 0.0
		for r := range want {
			for c, w := range want[r] {
				g := float64(got[r*len(want[r])+c])
				worst = math.Max(worst, math.Abs(g-w))
				if math.Abs(g-w) > 1e-4*math.Max(1, math.Abs(w)) {
					t.Fatalf("%s: logit [%d,%d] = %v, reference %v", what, r, c, g, w)
				}
			}
		}
		t.Logf("%s: max abs diff %.3g", what, worst)
	}
	compare("base", logitsOf(t, m, exp.Inputs[0]), exp.BaseLogits)

	ctx := context.Background()
	store := attach.InProcess(sdktest.Connect(t, lora.Adapters()...))
	am, err := attach.AttachFolder(ctx, m, store, dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(attach.Adapted(am)); n != 12 {
		t.Fatalf("%d adapted modules, want 12", n)
	}
	for i, in := range exp.Inputs {
		compare("adapter, input "+string(rune('0'+i)), logitsOf(t, am, in), exp.Logits[i])
	}

	saved, err := attach.ToPEFT(ctx, store, attach.Adapted(am), attach.Info{TaskType: "CAUSAL_LM"})
	if err != nil {
		t.Fatal(err)
	}
	if saved.Raw["fan_in_fan_out"] != true {
		t.Errorf("saved adapter: fan_in_fan_out = %v, want true", saved.Raw["fan_in_fan_out"])
	}

	if err := attach.Merge(am); err != nil {
		t.Fatal(err)
	}
	for i, in := range exp.Inputs {
		compare("merged, input "+string(rune('0'+i)), logitsOf(t, am, in), exp.Logits[i])
	}
	checked := 0
	for _, p := range layer.Params(am) {
		want, ok := exp.Merged[p.Path]
		if !ok {
			continue
		}
		checked++
		w, b := p.Stored(), base[p.Path]
		in, out := p.Shape[0], p.Shape[1]
		got := map[string]float64{}
		for i := 0; i < in; i++ {
			for j := 0; j < out; j++ {
				v, d := float64(w[i*out+j]), float64(w[i*out+j]-b[i*out+j])
				got["sum"] += v
				got["sum_sq"] += v * v
				got["delta_abs_sum"] += math.Abs(d)
				got["delta_signed"] += d * float64((i*31+j*17)%97-48)
			}
		}
		for k, wv := range want {
			if math.Abs(got[k]-wv) > 1e-4*math.Max(1, math.Abs(wv)) {
				t.Errorf("merged %s: %s = %v, reference %v", p.Path, k, got[k], wv)
			}
		}
	}
	if checked != 12 {
		t.Fatalf("checked %d merged weights, want 12", checked)
	}
}
