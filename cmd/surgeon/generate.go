package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/generate"
)

func init() {
	register("generate", command{
		usage: "generate MODEL [--adapter PEFT_DIR ...] [--prompt TEXT | --tokens IDS] [-n N] [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--json] [--timings]",
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
	topK := fs.Int("top-k", 0, "sample among the K most likely tokens (0: all)")
	topP := fs.Float64("top-p", 1, "sample among the most likely tokens whose probabilities add up to P (1: all)")
	minP := fs.Float64("min-p", 0, "drop tokens less likely than P times the most likely one (0: none)")
	repeatPenalty := fs.Float64("repeat-penalty", 1, "penalise the tokens of the last --repeat-last-n (1: off)")
	repeatLastN := fs.Int("repeat-last-n", 64, "tokens the repeat penalty looks back at (-1: the whole sequence)")
	noCache := fs.Bool("no-cache", false, "recompute the whole prefix for every token instead of using the key/value cache")
	timings := fs.Bool("timings", false, "print prompt and decode tokens/s to stderr as JSON")
	tokens := fs.String("tokens", "", "prompt as comma-separated token ids instead of text")
	asJSON := fs.Bool("json", false, "print {\"prompt_ids\", \"ids\" (the generated ids), \"text\"} as JSON")
	var adapters listFlag
	weights := fs.String("weights", "auto", weightsDoc)
	fs.Var(&adapters, "adapter", "PEFT adapter folder to apply on the fly (repeatable)")
	pos, err := parseArgs("generate", fs, args, stdout)
	if err != nil {
		return err
	}
	if err := checkWeights(*weights); err != nil {
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
	l, closeAll, err := loadWithAdapters(ctx, path, adapters, *weights)
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
	for _, key := range []string{"max_position_embeddings", "n_positions"} { // Llama families, GPT-2
		if v, ok := l.Model.HFConfig()[key].(float64); ok {
			maxCtx = int(v)
		}
	}
	if *repeatLastN == 0 { // no look-back: nothing to penalise
		*repeatPenalty = 1
	}
	var stats generate.Stats
	opts := generate.Options{
		MaxNew: *n, Temperature: *temperature, TopK: *topK, TopP: *topP, MinP: *minP,
		RepeatPenalty: *repeatPenalty, RepeatLastN: *repeatLastN, Seed: *seed,
		EOS: tok.EOS(), MaxContext: maxCtx, NoCache: *noCache, Stats: &stats,
	}
	out, err := generate.Generate(ctx, l.Model, ids, opts)
	if *timings {
		rate := func(n int, d time.Duration) float64 {
			if d <= 0 {
				return 0
			}
			return float64(n) / d.Seconds()
		}
		tj, _ := json.Marshal(map[string]any{
			"cached": stats.Cached, "threads": runtime.GOMAXPROCS(0),
			"prompt_tokens": stats.PromptTokens, "prompt_seconds": stats.PromptTime.Seconds(),
			"prompt_tokens_per_second": rate(stats.PromptTokens, stats.PromptTime),
			"decode_tokens":            stats.DecodeTokens, "decode_seconds": stats.DecodeTime.Seconds(),
			"decode_tokens_per_second": rate(stats.DecodeTokens, stats.DecodeTime),
		})
		fmt.Fprintln(os.Stderr, string(tj))
	}
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
