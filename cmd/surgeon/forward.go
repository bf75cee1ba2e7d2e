package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
)

func init() {
	register("forward", command{
		usage: "forward MODEL --tokens 1,5,9 [--json] [--adapter PEFT_DIR ...]",
		short: "run a model on token ids and print its logits",
		run:   runForward,
	})
}

func runForward(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("forward", flag.ContinueOnError)
	tokens := fs.String("tokens", "", "comma-separated token ids (required)")
	asJSON := fs.Bool("json", false, `print {"logits": [[...]]} as JSON`)
	top := fs.Int("top", 5, "without --json: show the N highest logits per row")
	var adapters listFlag
	weights := fs.String("weights", "auto", weightsDoc)
	fs.Var(&adapters, "adapter", "PEFT adapter folder to apply on the fly (repeatable)")
	pos, err := parseArgs("forward", fs, args, stdout)
	if err != nil {
		return err
	}
	if err := checkWeights(*weights); err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one MODEL, got %d arguments", len(pos))
	}
	if *tokens == "" {
		return usagef("--tokens is required")
	}
	ids, err := parseTokens(*tokens)
	if err != nil {
		return usagef("--tokens: %v", err)
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
	logits, err := l.Model.Logits(model.Batch{IDs: [][]int{ids}})
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	rows, cols := ops.Rows(logits), ops.Cols(logits)
	data := ops.Data(logits)
	for _, v := range data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%s: the model produced non-finite logits", pos[0])
		}
	}
	if *asJSON {
		out := struct {
			Model  string      `json:"model"`
			Task   model.Task  `json:"task"`
			Tokens []int       `json:"tokens"`
			Shape  []int       `json:"shape"`
			Logits [][]float32 `json:"logits"`
		}{Model: pos[0], Task: l.Model.Task(), Tokens: ids, Shape: []int{rows, cols}}
		for r := 0; r < rows; r++ {
			out.Logits = append(out.Logits, data[r*cols:(r+1)*cols])
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintf(stdout, "%s: %s, logits [%d, %d]\n", pos[0], l.Model.Task(), rows, cols)
	for r := 0; r < rows; r++ {
		row := data[r*cols : (r+1)*cols]
		idx := make([]int, cols)
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
		fmt.Fprintf(stdout, "row %d:", r)
		for _, i := range idx[:min(*top, cols)] {
			fmt.Fprintf(stdout, "  %d=%.4f", i, row[i])
		}
		fmt.Fprintln(stdout)
	}
	return nil
}
