package main

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/formats/gguf"
	"github.com/surgeon-ml/surgeon/formats/peft"
)

// A llama.cpp LoRA adapter GGUF reads back: convert --to peft gives the
// modules, A and B (q/k rows back in Hugging Face's layout) and the scale
// it was written with, and generate --adapter takes the GGUF file itself
// and the converted folder alike. A tensor whose base weight the model
// lacks, or that is no LoRA pair, is refused naming the file and tensor.
func TestGGUFLoRAReadsBack(t *testing.T) {
	fx := fixture(t, "stories260K-gguf/stories260K.gguf")
	withPlugins(t, "lora")
	l, err := checkpoint.Load(fx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := l.Model.HFConfig()
	l.Close()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	randv := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * 0.3)
		}
		return v
	}
	// stories260K: hidden 64, 8 heads, 4 KV heads of 8 (k_proj is [32, 64]).
	mods := []gguf.LoRAModule{
		{Module: "model.layers.0.self_attn.q_proj", R: 4, In: 64, Out: 64, Scale: 2},
		{Module: "model.layers.1.self_attn.k_proj", R: 4, In: 64, Out: 32, Scale: 2},
		{Module: "model.layers.2.mlp.down_proj", R: 4, In: 172, Out: 64, Scale: 2},
	}
	for i := range mods {
		mods[i].A, mods[i].B = randv(mods[i].R*mods[i].In), randv(mods[i].Out*mods[i].R)
	}
	lora := filepath.Join(dir, "lora.gguf")
	if err := gguf.WriteLlamaLoRA(lora, cfg, "test", mods); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "peft")
	if code, _, errs := runCLI("convert", lora, "--to", "peft", "--base", fx, "-o", out); code != 0 {
		t.Fatalf("convert --to peft: %s", errs)
	}
	a, err := peft.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if a.Config.PeftType != "LORA" || a.Config.R != 4 || a.Config.LoraAlpha != 8 {
		t.Fatalf("config: peft_type %s, r %d, lora_alpha %g; want LORA, 4, 8", a.Config.PeftType, a.Config.R, a.Config.LoraAlpha)
	}
	for _, m := range mods {
		got, ok := a.Modules[m.Module]
		if !ok {
			t.Fatalf("module %s missing from %v", m.Module, a.ModuleNames())
		}
		for name, want := range map[string][]float32{"lora_A.weight": m.A, "lora_B.weight": m.B} {
			tt := got[name]
			v, err := tt.Float32()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(v, want) {
				t.Fatalf("%s.%s differs from what was written", m.Module, name)
			}
		}
	}

	ids := func(adapter string) string {
		t.Helper()
		args := []string{"generate", fx, "--tokens", "1,403,407", "-n", "12", "--json"}
		if adapter != "" {
			args = append(args, "--adapter", adapter)
		}
		code, so, errs := runCLI(args...)
		if code != 0 {
			t.Fatalf("generate %v: %s", args, errs)
		}
		return so
	}
	plain, fromGGUF, fromPEFT := ids(""), ids(lora), ids(out)
	if fromGGUF != fromPEFT {
		t.Fatalf("generate --adapter lora.gguf %s, --adapter the converted folder %s", fromGGUF, fromPEFT)
	}
	if fromGGUF == plain {
		t.Fatal("the adapter does not change the greedy ids: the test could not tell")
	}

	for _, c := range []struct {
		name string
		mod  gguf.LoRAModule
		want string
	}{
		{"layer the base lacks", gguf.LoRAModule{Module: "model.layers.9.self_attn.q_proj", R: 2, In: 64, Out: 64, Scale: 1}, "model.layers.9.self_attn.q_proj"},
		{"wrong shape", gguf.LoRAModule{Module: "model.layers.0.self_attn.v_proj", R: 2, In: 64, Out: 64, Scale: 1}, "v_proj"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.mod.A, c.mod.B = randv(c.mod.R*c.mod.In), randv(c.mod.Out*c.mod.R)
			bad := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".gguf")
			if err := gguf.WriteLlamaLoRA(bad, cfg, "bad", []gguf.LoRAModule{c.mod}); err != nil {
				t.Fatal(err)
			}
			code, _, errs := runCLI("generate", fx, "--tokens", "1", "-n", "2", "--adapter", bad)
			if code == 0 {
				t.Fatal("generate accepted the bad adapter")
			}
			if !strings.Contains(errs, filepath.Base(bad)) || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
				t.Fatalf("error %q should be one line naming the file and %s", errs, c.want)
			}
			t.Logf("%s", errs)
		})
	}
	noPair := filepath.Join(dir, "nopair.gguf")
	at, _ := gguf.Quantize(gguf.TypeF32, randv(4*64))
	if err := gguf.Write(noPair, []gguf.KV{{Key: "general.architecture", Value: "llama"}, {Key: "general.type", Value: "adapter"},
		{Key: "adapter.type", Value: "lora"}}, []gguf.WriteTensor{{Name: "blk.0.attn_q.weight.lora_a", Shape: []int{4, 64}, Type: gguf.TypeF32, Data: at}}); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI("convert", noPair, "--to", "peft", "--base", fx, "-o", filepath.Join(dir, "x")); code == 0 ||
		!strings.Contains(errs, "nopair.gguf") || !strings.Contains(errs, "blk.0.attn_q.weight") {
		t.Fatalf("a lora_a without its lora_b: exit %d, %q", code, errs)
	} else {
		t.Logf("%s", errs)
	}
}
