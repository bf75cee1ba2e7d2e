package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

func init() {
	register("tokenize", command{
		usage: "tokenize PATH (--text TEXT | --jsonl FILE) [--special] [--json]",
		short: "token ids of text: PATH is a model folder, a tokenizer.json or a GGUF file",
		run:   runTokenize,
	})
}

func runTokenize(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	text := fs.String("text", "", "text to tokenize")
	jsonl := fs.String("jsonl", "", `file of lines {"text": "..."} ("-": standard input); prints one {"ids": [...]} per line`)
	special := fs.Bool("special", false, "add the special tokens the tokenizer's post-processor adds (BOS, [CLS] ... [SEP])")
	asJSON := fs.Bool("json", false, `print {"ids": [...], "tokens": [...]} rather than a table`)
	pos, err := parseArgs("tokenize", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one PATH, got %d arguments", len(pos))
	}
	textSet := false
	fs.Visit(func(f *flag.Flag) { textSet = textSet || f.Name == "text" })
	if textSet == (*jsonl != "") {
		return usagef("give one of --text and --jsonl")
	}
	path, err := resolvePath(ctx, pos[0])
	if err != nil {
		return err
	}
	tok, err := checkpoint.OpenTokenizer(path)
	if err != nil {
		return err
	}
	if *jsonl != "" {
		return tokenizeJSONL(ctx, tok, *jsonl, *special, stdout)
	}
	ids := tok.Encode(*text, *special)
	pieces := tokenStrings(tok, ids)
	if *asJSON {
		return writeJSON(stdout, struct {
			IDs    []int    `json:"ids"`
			Tokens []string `json:"tokens"`
		}{ids, pieces})
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "#\tid\ttoken")
	for i, id := range ids {
		fmt.Fprintf(w, "%d\t%d\t%s\n", i, id, strconv.Quote(pieces[i]))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%d tokens\n", len(ids))
	return err
}

// tokenStrings spells ids as the vocabulary does.
func tokenStrings(tok tokenizer.Tokenizer, ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		switch t := tok.(type) {
		case interface{ Token(int) string }:
			out[i] = t.Token(id)
		case interface{ Piece(int) string }:
			out[i] = t.Piece(id)
		}
	}
	return out
}

// tokenizeJSONL encodes each {"text": ...} line of file, writing one
// {"ids": [...]} line per input line, in order.
func tokenizeJSONL(ctx context.Context, tok tokenizer.Tokenizer, file string, special bool, stdout io.Writer) (err error) {
	in := io.Reader(os.Stdin)
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	out := bufio.NewWriter(stdout)
	defer func() {
		if ferr := out.Flush(); err == nil {
			err = ferr
		}
	}()
	var line struct {
		Text *string `json:"text"`
	}
	buf := []byte{}
	for n := 1; sc.Scan(); n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		line.Text = nil
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("%s:%d: %w", file, n, err)
		}
		if line.Text == nil {
			return fmt.Errorf(`%s:%d: no "text"`, file, n)
		}
		buf = append(buf[:0], `{"ids":[`...)
		for i, id := range tok.Encode(*line.Text, special) {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = strconv.AppendInt(buf, int64(id), 10)
		}
		buf = append(buf, "]}\n"...)
		if _, err := out.Write(buf); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}
