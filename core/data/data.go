// Package data loads fine-tuning datasets (JSON Lines, JSON arrays, CSV, TSV
// and plain text), splits them into train, validation and test sets, turns
// them into token sequences and groups those into padded batches.
//
// Loading is strict about the things that silently ruin a run (a misspelt
// column, a label outside the class list) and reports them with the file,
// line and field, but forgiving about layout: blank lines are skipped and
// quote characters inside tab-separated fields are kept as text.
package data

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Example is one item of a dataset: a text and, for classification, the
// index of its class.
type Example struct {
	// Text is the document or sentence.
	Text string
	// Label is the class index, or -1 when the example has none.
	Label int
}

// Formats Load understands, as Options.Format spells them.
const (
	FormatJSONL = "jsonl"
	FormatJSON  = "json"
	FormatCSV   = "csv"
	FormatTSV   = "tsv"
	FormatText  = "text"
)

// Options says how to read a dataset file.
type Options struct {
	// Format is one of jsonl, json, csv, tsv and text. Empty means: tell it
	// from the file extension (.jsonl/.ndjson, .json, .csv, .tsv, .txt).
	Format string
	// TextField names the field (JSON), or column (CSV/TSV), holding the
	// text. Empty means "text", or column "0" in a table without a header.
	// In a table without a header, columns are named by their 0-based
	// index: "0", "1", ...
	TextField string
	// LabelField names the field or column holding the label. Empty means
	// the dataset is unlabelled and every Example has Label -1. When it is
	// set, records whose label is null, absent or an empty cell are skipped
	// and counted in Stats.Skipped.
	LabelField string
	// Header says the first row of a CSV or TSV file names the columns.
	Header bool
	// Labels lists the class names; a label value in the file is mapped to
	// the index of the name it equals or, when it is an integer, used as
	// an index into Labels. When Labels is empty, integer labels are used
	// as they are and other labels are numbered in sorted order of their
	// names (see Stats.Labels).
	Labels []string
	// Separator splits a text file into documents. Empty means the whole
	// file is one document. A separator without a newline ends a document
	// at every line equal to it (fortune files use "%"); a separator
	// containing a newline is matched as a plain string (e.g. "\n\n" for
	// paragraphs). Blank documents are dropped.
	Separator string
	// MaxExamples stops reading after that many examples; 0 means all.
	MaxExamples int
}

// Stats reports what Load saw beyond the examples themselves.
type Stats struct {
	// Skipped counts records dropped because their label was null, absent
	// or empty while Options.LabelField was set.
	Skipped int
	// Labels are the class names Label indexes: Options.Labels when given,
	// else the names found in the file in sorted order, or nil when the
	// labels were integers or absent.
	Labels []string
}

// record is one parsed row before its label is resolved.
type record struct {
	text     string
	label    string
	hasLabel bool
	line     int
}

// Load reads the dataset at path. See LoadStats for the records it skips.
func Load(path string, o Options) ([]Example, error) {
	ex, _, err := LoadStats(path, o)
	return ex, err
}

// LoadStats reads the dataset at path and also reports how many records
// were skipped for lack of a label and which class names the labels index.
func LoadStats(path string, o Options) ([]Example, Stats, error) {
	format, err := formatOf(path, o.Format)
	if err != nil {
		return nil, Stats{}, err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("data: %w", err)
	}
	if o.MaxExamples < 0 {
		o.MaxExamples = 0
	}
	var (
		recs    []record
		skipped int
	)
	switch format {
	case FormatText:
		recs = splitText(string(raw), o.Separator, o.MaxExamples)
	case FormatJSONL:
		recs, skipped, err = parseJSONL(raw, o)
	case FormatJSON:
		recs, skipped, err = parseJSON(raw, o)
	case FormatCSV:
		recs, skipped, err = parseCSV(raw, o)
	case FormatTSV:
		recs, skipped, err = parseTSV(raw, o)
	}
	if err != nil {
		return nil, Stats{}, fmt.Errorf("data: %s: %w", path, err)
	}
	ex, names, err := resolveLabels(recs, o.Labels)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("data: %s: %w", path, err)
	}
	return ex, Stats{Skipped: skipped, Labels: names}, nil
}

// formatOf returns the format named by f or, when f is empty, by the
// extension of path.
func formatOf(path, f string) (string, error) {
	if f != "" {
		switch f = strings.ToLower(f); f {
		case FormatJSONL, FormatJSON, FormatCSV, FormatTSV, FormatText:
			return f, nil
		case "ndjson":
			return FormatJSONL, nil
		case "txt":
			return FormatText, nil
		}
		return "", fmt.Errorf("data: %s: unknown format %q (want jsonl, json, csv, tsv or text)", path, f)
	}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".jsonl", ".ndjson":
		return FormatJSONL, nil
	case ".json":
		return FormatJSON, nil
	case ".csv":
		return FormatCSV, nil
	case ".tsv":
		return FormatTSV, nil
	case ".txt":
		return FormatText, nil
	}
	return "", fmt.Errorf("data: %s: cannot tell the format from the file name; set Options.Format to jsonl, json, csv, tsv or text", path)
}

// textField returns the field holding the text, applying the default.
func textField(o Options, headerless bool) string {
	switch {
	case o.TextField != "":
		return o.TextField
	case headerless:
		return "0"
	}
	return "text"
}

// resolveLabels maps the raw label values of recs to class indexes.
func resolveLabels(recs []record, labels []string) ([]Example, []string, error) {
	ex := make([]Example, len(recs))
	for i, r := range recs {
		ex[i] = Example{Text: r.text, Label: -1}
	}
	if len(labels) > 0 {
		index := make(map[string]int, len(labels))
		for i, l := range labels {
			if _, dup := index[l]; !dup {
				index[l] = i
			}
		}
		for i, r := range recs {
			if !r.hasLabel {
				continue
			}
			if k, ok := index[r.label]; ok {
				ex[i].Label = k
				continue
			}
			if n, err := strconv.Atoi(r.label); err == nil && n >= 0 && n < len(labels) {
				ex[i].Label = n
				continue
			}
			return nil, nil, fmt.Errorf("line %d: label %q is not one of the labels %q or an index into them", r.line, r.label, labels)
		}
		return ex, slices.Clone(labels), nil
	}
	// No class list: integers stand for themselves unless some label is a
	// name, in which case every distinct value is a name.
	names := map[string]bool{}
	allInts := true
	for _, r := range recs {
		if !r.hasLabel {
			continue
		}
		names[r.label] = true
		if _, err := strconv.Atoi(r.label); err != nil {
			allInts = false
		}
	}
	if allInts {
		for i, r := range recs {
			if !r.hasLabel {
				continue
			}
			n, _ := strconv.Atoi(r.label)
			if n < 0 {
				return nil, nil, fmt.Errorf("line %d: label %d is negative", r.line, n)
			}
			ex[i].Label = n
		}
		return ex, nil, nil
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	index := make(map[string]int, len(sorted))
	for i, n := range sorted {
		index[n] = i
	}
	for i, r := range recs {
		if r.hasLabel {
			ex[i].Label = index[r.label]
		}
	}
	return ex, sorted, nil
}
