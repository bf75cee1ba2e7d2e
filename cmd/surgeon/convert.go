package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/surgeon-ml/surgeon/formats/detect"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

func init() {
	register("convert", command{
		usage: "convert SRC --to FORMAT -o DST [--dtype F32|F16|BF16] [--max-shard-bytes N] [--type f16|f32|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q4_k|q5_k|q6_k] | convert ADAPTER --to gguf-lora --base MODEL -o A.gguf | convert A.gguf --to peft --base MODEL -o DIR",
		short: "convert a checkpoint: gguf, hf, native, pytorch, safetensors, peft, native-adapter",
		run:   runConvert,
	})
}

// converterFormats are the converter format names of what formats/detect
// finds.
var converterFormats = map[detect.Format]string{
	detect.GGUF:          "gguf",
	detect.HFModel:       "hf",
	detect.Native:        "native",
	detect.NativeAdapter: "native-adapter",
	detect.PyTorch:       "pytorch",
	detect.PEFTAdapter:   "peft",
	detect.Safetensors:   "safetensors",
}

// sourceFormat tells what SRC holds, as a converter format name.
func sourceFormat(path string) (string, error) {
	f, err := detect.Path(path)
	if err != nil {
		return "", err
	}
	name, ok := converterFormats[f]
	if !ok {
		return "", fmt.Errorf("%s: a %s cannot be converted (convert a model folder, GGUF, PyTorch or native model, or an adapter)", path, f)
	}
	return name, nil
}

func runConvert(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	to := fs.String("to", "", "target format: hf, native, safetensors, gguf, gguf-lora, peft, native-adapter (required)")
	out := fs.String("o", "", "output path (required)")
	dtype := fs.String("dtype", "F32", "weight dtype for hf output")
	shard := fs.Int64("max-shard-bytes", 0, "shard hf output into files of at most N bytes")
	ggufType := fs.String("type", "f16", "gguf output: type of the 2-D weights (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)")
	quiet := fs.Bool("q", false, "no progress output")
	base := fs.String("base", "", "gguf-lora output, or peft output from a llama.cpp LoRA GGUF: the base model the adapter belongs to (required)")
	pos, err := parseArgs("convert", fs, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 1:
		return usagef("want exactly one SRC, got %d arguments", len(pos))
	case *to == "":
		return usagef("--to is required")
	case *out == "":
		return usagef("-o DST is required")
	}
	local, err := resolvePath(ctx, pos[0])
	if err != nil {
		return err
	}
	if *to == "gguf-lora" {
		return convertGGUFLoRA(ctx, stdout, local, *base, *out)
	}
	if *to == "peft" && attach.IsGGUF(local) && isGGUFAdapter(local) {
		return convertGGUFLoRAToPEFT(ctx, stdout, local, *base, *out)
	}
	from, err := sourceFormat(local)
	if err != nil {
		return err
	}
	mgr, err := newManager()
	if err != nil {
		return err
	}
	defer mgr.Close()
	p, comp, err := mgr.FindConverter(ctx, from, *to)
	if err != nil {
		return err
	}
	src, _ := filepath.Abs(local)
	dst, _ := filepath.Abs(*out)
	opts := map[string]any{}
	switch {
	case *to == "gguf":
		opts["type"] = *ggufType
	case from == "gguf" || from == "hf" || from == "native":
		opts["dtype"] = *dtype
		opts["max_shard_bytes"] = *shard
	}
	err = p.Convert(ctx, rpc.ConvertRequest{Converter: comp, Src: src, Dst: dst, To: *to, Options: opts}, func(pr rpc.Progress) {
		if !*quiet {
			fmt.Fprintf(stdout, "[%d/%d] %s\n", pr.Done, pr.Total, pr.Message)
		}
	})
	if err != nil {
		return fmt.Errorf("convert %s (%s) to %s with %s: %w", pos[0], from, *to, p.Name, err)
	}
	return nil
}
