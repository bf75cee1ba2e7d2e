// Package convert implements surgeon's checkpoint converters: GGUF (Llama)
// to a Hugging Face folder or spago native, Hugging Face folder <-> spago
// native, PyTorch pickles to safetensors, and PEFT adapters <-> native
// adapters. The surgeon-plugin-convert binary serves them; converters read
// and write files themselves (tensors never cross the plugin socket).
package convert

import (
	"context"
	"fmt"
	"strings"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/detect"
	"github.com/surgeon-ml/surgeon/formats/native"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/formats/pickle"
	"github.com/surgeon-ml/surgeon/plugins/sdk"
)

// Format names used by the converters and `surgeon convert --to`.
const (
	GGUF          = "gguf"
	HF            = "hf"          // Hugging Face folder: config.json + safetensors
	Safetensors   = "safetensors" // a single .safetensors file of the parameters
	Native        = "native"      // spago gob model
	PyTorch       = "pytorch"     // torch.save pickle (.bin, .pt, .pth)
	PEFT          = "peft"        // PEFT adapter folder
	NativeAdapter = "native-adapter"
)

// converter is an sdk.Converter from fields.
type converter struct {
	name, doc string
	keys      []sdk.ConfigKey
	from, to  []string
	run       func(ctx context.Context, src, dst, to string, c sdk.Config, progress func(int64, int64, string)) error
}

func (c *converter) Name() string            { return c.name }
func (c *converter) Doc() string             { return c.doc }
func (c *converter) Config() []sdk.ConfigKey { return c.keys }
func (c *converter) From() []string          { return c.from }
func (c *converter) To() []string            { return c.to }
func (c *converter) Convert(ctx context.Context, src, dst, to string, cfg sdk.Config, progress func(done, total int64, msg string)) error {
	ok := false
	for _, t := range c.to {
		ok = ok || t == to
	}
	if !ok {
		return fmt.Errorf("converter %s writes %s, not %q", c.name, strings.Join(c.to, ", "), to)
	}
	return c.run(ctx, src, dst, to, cfg, progress)
}

var modelKeys = []sdk.ConfigKey{
	{Name: "dtype", Type: "string", Default: "F32", Doc: "weight dtype of Hugging Face output: F32, F16 or BF16"},
	{Name: "max_shard_bytes", Type: "int", Default: 0, Doc: "split Hugging Face output into shards of at most this many bytes (0: one file)"},
}

// convertToGGUF loads a model and writes it as a llama.cpp GGUF file; a
// Hugging Face folder streams, one tensor at a time (checkpoint.StreamGGUF).
func convertToGGUF(ctx context.Context, src, dst, _ string, c sdk.Config, progress func(int64, int64, string)) error {
	if f, err := detect.Path(src); err == nil && f == detect.HFModel {
		progress(0, 2, "opening "+src)
		sk, err := checkpoint.OpenSkeleton(src)
		if err != nil {
			return err
		}
		defer sk.Close()
		progress(1, 2, "streaming to "+dst+" ("+c.String("type")+")")
		if err := checkpoint.StreamGGUF(ctx, dst, sk, c.String("type")); err != nil {
			return err
		}
		progress(2, 2, "wrote "+dst+" (streamed)")
		return nil
	}
	progress(0, 3, "loading "+src)
	l, err := checkpoint.Load(src)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := ctx.Err(); err != nil {
		return err
	}
	progress(1, 3, "writing "+dst+" ("+c.String("type")+")")
	if err := checkpoint.SaveGGUF(dst, l, c.String("type")); err != nil {
		return err
	}
	progress(3, 3, "wrote "+dst)
	return nil
}

// convertModel loads any model surgeon reads and writes it as to. A
// Hugging Face folder written as one streams, one tensor at a time.
func convertModel(ctx context.Context, src, dst, to string, c sdk.Config, progress func(int64, int64, string)) error {
	if f, err := detect.Path(src); err == nil && f == detect.HFModel && (to == HF || to == Safetensors) {
		return streamModel(ctx, src, dst, c, progress)
	}
	progress(0, 3, "loading "+src)
	l, err := checkpoint.Load(src)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := ctx.Err(); err != nil {
		return err
	}
	progress(1, 3, "writing "+dst)
	switch to {
	case HF, Safetensors: // a model as safetensors is a Hugging Face folder
		dt, err := tensor.ParseDType(c.String("dtype"))
		if err != nil {
			return err
		}
		extra, err := checkpoint.TokenizerFiles(l)
		if err != nil {
			return err
		}
		err = checkpoint.SaveHF(dst, l.Model, checkpoint.SaveOptions{DType: dt, MaxShardBytes: int64(c.Int("max_shard_bytes")), Extra: extra})
		if err != nil {
			return err
		}
	case Native:
		if err := checkpoint.SaveNative(dst, l); err != nil {
			return err
		}
	default:
		return fmt.Errorf("cannot write a model as %q", to)
	}
	progress(3, 3, "wrote "+dst)
	return nil
}

// streamModel rewrites a Hugging Face folder (dtype, shards) tensor by
// tensor (checkpoint.Skeleton.Stream).
func streamModel(ctx context.Context, src, dst string, c sdk.Config, progress func(int64, int64, string)) error {
	dt, err := tensor.ParseDType(c.String("dtype"))
	if err != nil {
		return err
	}
	progress(0, 2, "opening "+src)
	sk, err := checkpoint.OpenSkeleton(src)
	if err != nil {
		return err
	}
	defer sk.Close()
	extra, err := checkpoint.TokenizerFiles(sk.Loaded())
	if err != nil {
		return err
	}
	progress(1, 2, "streaming to "+dst)
	if err := sk.Stream(ctx, dst, checkpoint.SaveOptions{DType: dt, MaxShardBytes: int64(c.Int("max_shard_bytes")), Extra: extra}, nil); err != nil {
		return err
	}
	progress(2, 2, "wrote "+dst+" (streamed)")
	return nil
}

func convertPickle(ctx context.Context, src, dst, to string, c sdk.Config, progress func(int64, int64, string)) error {
	progress(0, 1, "converting "+src)
	if err := pickle.ToSafetensors(src, dst); err != nil {
		return err
	}
	progress(1, 1, "wrote "+dst)
	return nil
}

func convertAdapter(ctx context.Context, src, dst, to string, c sdk.Config, progress func(int64, int64, string)) error {
	progress(0, 1, "converting "+src)
	switch to {
	case NativeAdapter:
		a, err := peft.Read(src)
		if err != nil {
			return err
		}
		n, err := native.FromPEFT(a)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		if err := native.SaveAdapter(dst, n); err != nil {
			return err
		}
	case PEFT:
		n, err := native.LoadAdapter(src)
		if err != nil {
			return err
		}
		a, err := n.ToPEFT()
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		if err := peft.Write(dst, a); err != nil {
			return err
		}
	}
	progress(1, 1, "wrote "+dst)
	return nil
}

// Converters returns the plugin's components.
func Converters() []any {
	return []any{
		&converter{name: "gguf", doc: "GGUF (Llama) to a Hugging Face folder (HF names, rotate-half q/k layout, tokenizer.model) or spago native",
			keys: modelKeys, from: []string{GGUF}, to: []string{HF, Native, Safetensors}, run: convertModel},
		&converter{name: "to-gguf", doc: "Llama model (GGUF, Hugging Face folder or spago native) to a llama.cpp GGUF file, quantized as --type says",
			keys: []sdk.ConfigKey{{Name: "type", Type: "string", Default: "f16", Doc: "type of the 2-D weights: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k (vectors stay F32; rows that do not divide into blocks F16)"}},
			from: []string{GGUF, HF, Native}, to: []string{GGUF}, run: convertToGGUF},
		&converter{name: "hf-native", doc: "Hugging Face folder <-> spago native model (nn.Dump/nn.Load gob)",
			keys: modelKeys, from: []string{HF, Native}, to: []string{Native, HF, Safetensors}, run: convertModel},
		&converter{name: "pytorch", doc: "PyTorch pickle (.bin, .pt, .pth) to safetensors, through a restricted unpickler",
			from: []string{PyTorch}, to: []string{Safetensors}, run: convertPickle},
		&converter{name: "peft-native", doc: "PEFT adapter folder <-> native adapter (gob of spago params)",
			from: []string{PEFT, NativeAdapter}, to: []string{NativeAdapter, PEFT}, run: convertAdapter},
	}
}
