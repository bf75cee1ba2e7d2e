package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/generate"
)

func init() {
	register("generate", command{
		usage: "generate MODEL [--adapter PEFT_DIR ...] [--prompt TEXT] [-n N] [--temperature T] [--seed S]",
		short: "generate text with a causal language model",
		run:   runGenerate,
	})
}

func runGenerate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	prompt := fs.String("prompt", "", "text to continue (default: start from BOS)")
	n := fs.Int("n", 64, "number of tokens to generate")
	temperature := fs.Float64("temperature", 0, "sampling temperature (0: greedy)")
	seed := fs.Uint64("seed", 0, "random seed for sampling")
	tokens := fs.String("tokens", "", "prompt as comma-separated token ids instead of text")
	asJSON := fs.Bool("json", false, "print {\"prompt_ids\", \"ids\" (the generated ids), \"text\"} as JSON")
	var adapters listFlag
	fs.Var(&adapters, "adapter", "PEFT adapter folder to apply on the fly (repeatable)")
	pos, err := parseArgs("generate", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one MODEL, got %d arguments", len(pos))
	}
	if *n < 0 {
		return usagef("-n must be >= 0")
	}
	path, err := resolvePath(ctx, pos[0])
	if err != nil {
		return err
	}
	if adapters, err = resolvePaths(ctx, adapters); err != nil {
		return err
	}
	l, closeAll, err := loadWithAdapters(ctx, path, adapters)
	if err != nil {
		return err
	}
	defer closeAll()
	tok, err := checkpoint.LoadTokenizer(path, l)
	if err != nil {
		return err
	}
	var ids []int
	if *tokens != "" {
		if ids, err = parseTokens(*tokens); err != nil {
			return usagef("--tokens: %v", err)
		}
	} else {
		ids = tok.Encode(*prompt, true)
		if *prompt == "" {
			ids = []int{tok.BOS()}
		}
	}
	maxCtx := 0
	if v, ok := l.Model.HFConfig()["max_position_embeddings"].(float64); ok {
		maxCtx = int(v)
	}
	out, err := generate.Generate(ctx, l.Model, ids, generate.Options{
		MaxNew: *n, Temperature: *temperature, Seed: *seed, EOS: tok.EOS(), MaxContext: maxCtx,
	})
	text := tok.Decode(append(ids, out...))
	if *asJSON {
		if out == nil {
			out = []int{}
		}
		if jerr := writeJSON(stdout, map[string]any{"prompt_ids": ids, "ids": out, "text": text}); jerr != nil {
			return jerr
		}
	} else {
		fmt.Fprintln(stdout, text)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return err
}
