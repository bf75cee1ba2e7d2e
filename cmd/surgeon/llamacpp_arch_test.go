package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/core/tokenizer"
	"github.com/surgeon-ml/surgeon/formats/peft"
)

// archPeerVocab is the vocabulary of the random models: <unk>, <s>, </s>,
// the 256 byte pieces and pieces "▁t<i>", a SentencePiece tokenizer.model
// that llama.cpp loads for any architecture.
const archPeerVocab = 320

// archPeerCases are small random models, one per family llama.cpp shares
// with surgeon, with shapes llama.cpp accepts: head sizes 16 or 32, the
// Qwen3, Gemma and Gemma 2 head size differing from hidden/heads, grouped
// keys and values, tied and untied heads, Gemma 2's sliding window
// shorter than the decoded sequence and its soft-capping, linear rope
// scaling, and Llama 3's rope scaling (llama.cpp's rope_freqs.weight).
var archPeerCases = []struct {
	name, config string
	types        []string
}{
	{"qwen2", `{"model_type":"qwen2","architectures":["Qwen2ForCausalLM"],"hidden_size":64,"intermediate_size":128,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-6,"rope_theta":1000000,
		"max_position_embeddings":128,"tie_word_embeddings":false}`, []string{"f32", "q8_0"}},
	{"qwen3", `{"model_type":"qwen3","architectures":["Qwen3ForCausalLM"],"hidden_size":64,"intermediate_size":128,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"rms_norm_eps":1e-6,
		"rope_theta":1000000,"max_position_embeddings":128,"tie_word_embeddings":true}`, []string{"f32"}},
	{"gemma", `{"model_type":"gemma","architectures":["GemmaForCausalLM"],"hidden_size":64,"intermediate_size":128,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":1,"head_dim":32,"rms_norm_eps":1e-6,
		"rope_theta":10000,"max_position_embeddings":128,"hidden_act":"gelu_pytorch_tanh","hidden_activation":"gelu_pytorch_tanh"}`, []string{"f32"}},
	{"gemma2", `{"model_type":"gemma2","architectures":["Gemma2ForCausalLM"],"hidden_size":64,"intermediate_size":128,
		"num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"query_pre_attn_scalar":32,
		"rms_norm_eps":1e-6,"rope_theta":10000,"max_position_embeddings":128,"sliding_window":8,
		"attn_logit_softcapping":4.0,"final_logit_softcapping":8.0,"hidden_activation":"gelu_pytorch_tanh"}`, []string{"f32"}},
	{"phi3", `{"model_type":"phi3","architectures":["Phi3ForCausalLM"],"hidden_size":64,"intermediate_size":128,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-5,"rope_theta":10000,
		"max_position_embeddings":128,"original_max_position_embeddings":128,"sliding_window":null,"tie_word_embeddings":false}`, []string{"f32"}},
	{"qwen3-rope-linear", `{"model_type":"qwen3","architectures":["Qwen3ForCausalLM"],"hidden_size":64,"intermediate_size":128,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,"rms_norm_eps":1e-6,
		"rope_theta":10000,"max_position_embeddings":128,"rope_scaling":{"rope_type":"linear","factor":4.0},"tie_word_embeddings":false}`, []string{"f32"}},
	{"llama-rope-llama3", `{"model_type":"llama","architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-5,"rope_theta":10000,
		"max_position_embeddings":128,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
		"original_max_position_embeddings":16},"tie_word_embeddings":false}`, []string{"f32"}},
	{"gpt2", `{"model_type":"gpt2","architectures":["GPT2LMHeadModel"],"n_embd":64,"n_layer":2,"n_head":4,"n_inner":192,
		"n_positions":128,"n_ctx":128,"layer_norm_epsilon":1e-5,"activation_function":"gelu_new"}`, []string{"f32"}},
}

// For each family, a random model saved as a Hugging Face folder with a
// SentencePiece tokenizer.model is written by surgeon convert --to gguf;
// llama.cpp (node-llama-cpp) loads the file and its greedy ids for 20
// tokens after a fixed prompt of ids equal surgeon generate's on the same
// file.
func TestLlamaCppArchitectures(t *testing.T) {
	script := llamaCppPeer(t)
	withPlugins(t, "convert")
	const prompt = "1,300,301,17,250,302"
	const n = 20
	for i, c := range archPeerCases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			folder := filepath.Join(dir, "hf")
			writeRandomFolder(t, folder, c.config, uint64(i+1))
			for _, typ := range c.types {
				path := filepath.Join(dir, typ+".gguf")
				if code, _, errs := runCLI("convert", folder, "--to", "gguf", "--type", typ, "-o", path); code != 0 {
					t.Fatalf("convert --type %s: %s", typ, errs)
				}
				code, out, errs := runCLI("generate", path, "--tokens", prompt, "-n", strconv.Itoa(n), "--json")
				if code != 0 {
					t.Fatalf("generate %s: %s", typ, errs)
				}
				var ours struct {
					IDs []int `json:"ids"`
				}
				if err := json.Unmarshal([]byte(out), &ours); err != nil {
					t.Fatal(err)
				}
				raw, err := exec.Command("node", script, path, strconv.Itoa(n), prompt).Output()
				if err != nil {
					msg := ""
					if ee, ok := err.(*exec.ExitError); ok {
						msg = string(ee.Stderr)
					}
					t.Fatalf("llama.cpp on %s %s: %v\n%s", c.name, typ, err, msg)
				}
				var theirs struct {
					IDs []int `json:"ids"`
				}
				if err := json.Unmarshal(raw, &theirs); err != nil {
					t.Fatalf("llama.cpp peer output %q: %v", raw, err)
				}
				if len(ours.IDs) != n {
					t.Fatalf("%s: surgeon generated %d ids, want %d: %v", typ, len(ours.IDs), n, ours.IDs)
				}
				if !slices.Equal(ours.IDs, theirs.IDs) {
					t.Fatalf("%s %s: surgeon %v\nllama.cpp %v", c.name, typ, ours.IDs, theirs.IDs)
				}
				if distinct := len(slices.Compact(slices.Sorted(slices.Values(ours.IDs)))); distinct < 3 {
					t.Fatalf("%s: only %d distinct ids %v: the test could not tell", typ, distinct, ours.IDs)
				}
				t.Logf("%s %s: %d greedy ids equal: %v", c.name, typ, n, ours.IDs)
			}
		})
	}
}

// writeRandomFolder saves a model of the given config with random weights
// (matrices of std 0.15, Gemma's embeddings 0.02, norm scales near 1,
// biases of std 0.1; the EOS rows of the embedding and LM head zero, so
// neither side stops early) as a Hugging Face folder with a SentencePiece
// tokenizer.model.
func writeRandomFolder(t *testing.T, dir, config string, seed uint64) {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["vocab_size"], cfg["bos_token_id"], cfg["eos_token_id"], cfg["torch_dtype"] = archPeerVocab, 1, 2, "float32"
	js, _ := json.Marshal(cfg)
	m, err := model.New(js)
	if err != nil {
		t.Fatal(err)
	}
	gemma := strings.HasPrefix(cfg["model_type"].(string), "gemma")
	r := rand.New(rand.NewPCG(seed, 7))
	for _, p := range layer.Params(m) {
		d := ops.Data(p.Param)
		norm := strings.Contains(p.Path, "norm") || strings.Contains(p.Path, ".ln_")
		for i := range d {
			switch {
			case gemma && strings.HasSuffix(p.Path, "embed_tokens.weight"):
				// Gemma multiplies embeddings by sqrt(hidden) and ties the
				// head: larger ones would make every step repeat its input.
				d[i] = float32(r.NormFloat64() * 0.02)
			case len(p.Shape) == 2:
				d[i] = float32(r.NormFloat64() * 0.15)
			case norm && strings.HasSuffix(p.Path, ".weight") && !gemma:
				d[i] = float32(1 + r.NormFloat64()*0.1)
			default: // biases, and Gemma's norm weights (scales 1 + w)
				d[i] = float32(r.NormFloat64() * 0.1)
			}
		}
		if strings.HasSuffix(p.Path, "embed_tokens.weight") || strings.HasSuffix(p.Path, "wte.weight") || p.Path == "lm_head.weight" {
			cols := len(d) / archPeerVocab
			clear(d[2*cols : 3*cols])
		}
	}
	tokens := make([]string, archPeerVocab)
	scores := make([]float32, archPeerVocab)
	types := make([]int32, archPeerVocab)
	for i := range tokens {
		switch {
		case i == 0:
			tokens[i], types[i] = "<unk>", tokenizer.TypeUnknown
		case i <= 2:
			tokens[i], types[i] = []string{"", "<s>", "</s>"}[i], tokenizer.TypeControl
		case i < 3+256:
			tokens[i], types[i] = fmt.Sprintf("<0x%02X>", i-3), tokenizer.TypeByte
		default:
			tokens[i], scores[i], types[i] = fmt.Sprintf("\u2581t%d", i), -float32(i), tokenizer.TypeNormal
		}
	}
	spm, err := tokenizer.NewSPM(tokens, scores, types, 1, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := spm.MarshalModel()
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.SaveHF(dir, m, checkpoint.SaveOptions{Extra: map[string][]byte{"tokenizer.model": tm}}); err != nil {
		t.Fatal(err)
	}
}

// A random LoRA on the fused and transposed projections (GPT-2's Conv1D
// c_attn and c_fc, Phi-3's qkv_proj and gate_up_proj, Gemma 2's q_proj and
// v_proj) merged by surgeon merge -o out.gguf, and written by surgeon
// convert --to gguf-lora next to the base written by convert --to gguf:
// llama.cpp's greedy ids on the merged file and on the base with the LoRA
// GGUF, and surgeon's on the base GGUF with the LoRA GGUF read back, equal
// surgeon generate --adapter on the folder, and the adapter changes them.
func TestLlamaCppArchMerge(t *testing.T) {
	script := llamaCppPeer(t)
	withPlugins(t, "lora", "convert")
	const prompt = "1,300,301,17,250,302"
	const n = 20
	targets := map[string][]string{
		"gpt2":   {"c_attn", "c_fc"},
		"phi3":   {"qkv_proj", "gate_up_proj"},
		"gemma2": {"q_proj", "v_proj"},
	}
	for i, c := range archPeerCases {
		mods, ok := targets[c.name]
		if !ok {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			folder := filepath.Join(dir, "hf")
			writeRandomFolder(t, folder, c.config, uint64(i+1))
			adapter := filepath.Join(dir, "adapter")
			writeRandomLoRA(t, folder, adapter, mods, c.name == "gpt2", uint64(i+11))
			merged := filepath.Join(dir, "merged.gguf")
			if code, _, errs := runCLI("merge", folder, "--adapter", adapter, "--type", "f32", "-o", merged); code != 0 {
				t.Fatalf("merge: %s", errs)
			}
			surgeonIDs := func(args ...string) []int {
				t.Helper()
				code, out, errs := runCLI(append([]string{"generate", "--tokens", prompt, "-n", strconv.Itoa(n), "--json"}, args...)...)
				if code != 0 {
					t.Fatalf("generate %v: %s", args, errs)
				}
				var r struct {
					IDs []int `json:"ids"`
				}
				if err := json.Unmarshal([]byte(out), &r); err != nil {
					t.Fatal(err)
				}
				return r.IDs
			}
			plain := surgeonIDs(folder)
			ours := surgeonIDs(folder, "--adapter", adapter)
			if slices.Equal(plain, ours) {
				t.Fatalf("the adapter does not change the greedy ids %v: the test could not tell", ours)
			}
			base := filepath.Join(dir, "base.gguf")
			if code, _, errs := runCLI("convert", folder, "--to", "gguf", "--type", "f32", "-o", base); code != 0 {
				t.Fatalf("convert: %s", errs)
			}
			lora := filepath.Join(dir, "lora.gguf")
			if code, _, errs := runCLI("convert", adapter, "--to", "gguf-lora", "--base", folder, "-o", lora); code != 0 {
				t.Fatalf("convert --to gguf-lora: %s", errs)
			}
			if back := surgeonIDs(base, "--adapter", lora); !slices.Equal(back, ours) {
				t.Fatalf("surgeon generate on the base GGUF --adapter the LoRA GGUF %v, on the folder %v", back, ours)
			}
			for what, args := range map[string][]string{
				"the merged GGUF":           {merged, strconv.Itoa(n), prompt},
				"the base GGUF + LoRA GGUF": {base, strconv.Itoa(n), prompt, lora},
			} {
				raw, err := exec.Command("node", append([]string{script}, args...)...).Output()
				if err != nil {
					t.Fatalf("llama.cpp peer on %s: %v", what, err)
				}
				var theirs struct {
					IDs []int `json:"ids"`
				}
				if err := json.Unmarshal(raw, &theirs); err != nil {
					t.Fatalf("llama.cpp peer output %q: %v", raw, err)
				}
				if !slices.Equal(ours, theirs.IDs) {
					t.Fatalf("surgeon generate --adapter %v\nllama.cpp on %s %v", ours, what, theirs.IDs)
				}
			}
			t.Logf("%s: %d greedy ids equal: %v", c.name, n, ours)
		})
	}
}

// writeRandomLoRA writes a PEFT LoRA adapter (r 4, alpha 8, B and A of
// std 0.3) on the named modules of the model in folder.
func writeRandomLoRA(t *testing.T, folder, dir string, modules []string, fanInFanOut bool, seed uint64) {
	t.Helper()
	l, err := checkpoint.Load(folder)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const r = 4
	rng := rand.New(rand.NewPCG(seed, 3))
	mk := func(rows, cols int) tensor.Tensor {
		v := make([]float32, rows*cols)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.3)
		}
		b, _ := tensor.FromFloat32(tensor.F32, v)
		return tensor.Tensor{DType: tensor.F32, Shape: []int{rows, cols}, Data: b}
	}
	a := &peft.Adapter{Modules: map[string]map[string]tensor.Tensor{}, Saved: map[string]tensor.Tensor{}}
	a.Config = peft.Config{PeftType: "LORA", TaskType: "CAUSAL_LM", R: r, LoraAlpha: 8, TargetModules: modules,
		FanInFanOut: fanInFanOut, RankPattern: map[string]int{}, AlphaPattern: map[string]float64{}, BaseModel: folder}
	linears := layer.Linears(l.Model)
	paths := slices.Sorted(maps.Keys(linears))
	for _, path := range paths {
		lin := linears[path]
		if !slices.ContainsFunc(modules, func(m string) bool { return strings.HasSuffix(path, "."+m) }) {
			continue
		}
		a.Modules[path] = map[string]tensor.Tensor{"lora_A.weight": mk(r, lin.In()), "lora_B.weight": mk(lin.Out(), r)}
	}
	if len(a.Modules) == 0 {
		t.Fatalf("no module of %v in the model", modules)
	}
	if err := peft.Write(dir, a); err != nil {
		t.Fatal(err)
	}
}

// The reference folders of every family, converted by llama.cpp's own
// convert_hf_to_gguf.py (run by tools/llamacpp/convert_nodeps.py from the
// llama.cpp source node-llama-cpp carries, with the system's torch), load
// in surgeon (Load and LoadStored) as the same family with the folder's
// logits. Gemma 2's copy sets query_pre_attn_scalar to head_dim: the
// converter drops the key and llama.cpp scales by head_dim.
func TestLlamaCppConverterFiles(t *testing.T) {
	llamaCppPeer(t)
	if testing.Short() {
		t.Skip("-short: runs llama.cpp's Python converter")
	}
	bundle, _ := filepath.Abs("../../tools/llamacpp/node_modules/node-llama-cpp/llama/gitRelease.bundle")
	script, _ := filepath.Abs("../../tools/llamacpp/convert_nodeps.py")
	python := ""
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import torch, numpy").Run() == nil {
			python = p
			break
		}
	}
	if python == "" {
		t.Skip("no python3 with torch and numpy: llama.cpp's converter needs them")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: the llama.cpp source is a git bundle")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "llama.cpp")
	for _, args := range [][]string{
		{"clone", "-q", "--no-checkout", bundle, src},
		{"-C", src, "checkout", "-q", "HEAD", "--", "convert_hf_to_gguf.py", "conversion", "gguf-py"},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Skipf("llama.cpp source from %s: git %v: %v\n%s", bundle, args, err, out)
		}
	}
	for _, c := range []string{"llama-gqa-f32", "qwen2-gqa-f32", "qwen2-tied-bf16-sharded", "qwen3-gqa-f32", "gemma-gqa-f32",
		"gemma2-gqa-window3-f32", "phi3-gqa-f32", "phi3-mha-window5-f16", "gpt2-f32", "rope-llama3-f32"} { // the converter cannot map gpt2-untied-f16's old attn.bias buffers
		t.Run(c, func(t *testing.T) {
			folder := filepath.Join(refDir, c)
			if strings.HasPrefix(c, "gemma2") {
				folder = gemma2ScalarCopy(t, folder)
			}
			out := filepath.Join(t.TempDir(), c+".gguf")
			if msg, err := exec.Command(python, script, src, folder, out).CombinedOutput(); err != nil {
				t.Fatalf("convert_hf_to_gguf.py: %v\n%s", err, msg)
			}
			hf, err := checkpoint.Load(folder)
			if err != nil {
				t.Fatal(err)
			}
			defer hf.Close()
			in := model.NewBatch([][]int{{1, 31, 17, 66, 74, 5, 9}}, 0)
			want, err := hf.Model.Logits(in)
			if err != nil {
				t.Fatal(err)
			}
			for _, load := range []func(string) (*checkpoint.Loaded, error){checkpoint.Load, checkpoint.LoadStored} {
				l, err := load(out)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := l.Model.HFConfig()["model_type"], hf.Model.HFConfig()["model_type"]; got != want {
					t.Fatalf("model_type %v, want %v", got, want)
				}
				got, err := l.Model.Logits(in)
				if err != nil {
					t.Fatal(err)
				}
				w, g := ops.Data(want), ops.Data(got)
				for i := range w {
					if d := float64(g[i] - w[i]); d > 1e-6 || d < -1e-6 {
						t.Fatalf("logit %d = %v, the folder's %v", i, g[i], w[i])
					}
				}
				l.Close()
			}
		})
	}
}

// gemma2ScalarCopy copies a Gemma 2 folder with query_pre_attn_scalar set
// to head_dim.
func gemma2ScalarCopy(t *testing.T, folder string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(folder)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(folder, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "config.json" {
			var cfg map[string]any
			if err := json.Unmarshal(data, &cfg); err != nil {
				t.Fatal(err)
			}
			cfg["query_pre_attn_scalar"] = cfg["head_dim"]
			data, _ = json.Marshal(cfg)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
