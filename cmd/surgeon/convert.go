package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/surgeon-ml/surgeon/formats/native"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
)

func init() {
	register("convert", command{
		usage: "convert SRC --to FORMAT -o DST [--dtype F32|F16|BF16] [--max-shard-bytes N]",
		short: "convert a checkpoint: gguf, hf, native, pytorch, safetensors, peft, native-adapter",
		run:   runConvert,
	})
}

// sourceFormat tells what SRC holds, by content where possible.
func sourceFormat(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		switch {
		case exists(filepath.Join(path, "adapter_config.json")):
			return "peft", nil
		case exists(filepath.Join(path, "config.json")):
			return "hf", nil
		}
		return "", fmt.Errorf("%s: folder has neither config.json nor adapter_config.json", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 8)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	ext := strings.ToLower(filepath.Ext(path))
	switch {
	case bytes.HasPrefix(head, []byte("GGUF")):
		return "gguf", nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), len(head) > 0 && head[0] == 0x80, ext == ".bin" || ext == ".pt" || ext == ".pth":
		return "pytorch", nil
	case ext == ".safetensors":
		return "safetensors", nil
	case ext == native.Ext:
		if a, err := native.LoadAdapter(path); err == nil && a.ConfigJSON != "" {
			return "native-adapter", nil
		}
		return "native", nil
	}
	return "", fmt.Errorf("%s: cannot tell the format (GGUF, PyTorch pickle, .safetensors, %s, or a folder)", path, native.Ext)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func runConvert(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	to := fs.String("to", "", "target format: hf, native, safetensors, peft, native-adapter (required)")
	out := fs.String("o", "", "output path (required)")
	dtype := fs.String("dtype", "F32", "weight dtype for hf output")
	shard := fs.Int64("max-shard-bytes", 0, "shard hf output into files of at most N bytes")
	quiet := fs.Bool("q", false, "no progress output")
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
	from, err := sourceFormat(pos[0])
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
	src, _ := filepath.Abs(pos[0])
	dst, _ := filepath.Abs(*out)
	opts := map[string]any{}
	if from == "gguf" || from == "hf" || from == "native" {
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
