package data

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// row is one record of a table and the line it starts on.
type row struct {
	fields []string
	line   int
}

// parseCSV reads comma-separated values with encoding/csv. Bare quotes
// inside unquoted fields are accepted as text, as Python's csv module does.
func parseCSV(raw []byte, o Options) ([]record, int, error) {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(raw, []byte("\uFEFF"))))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	var rows []row
	for {
		f, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("invalid CSV: %w", err)
		}
		line, _ := r.FieldPos(0)
		rows = append(rows, row{fields: f, line: line})
	}
	return fromTable(rows, o)
}

// parseTSV reads tab-separated values: one record per line, fields split at
// tabs, no quoting. encoding/csv is not used because its quote handling
// lets a text that opens with a quote (`"Happy valentines day" I know...`,
// common in SMS and tweet datasets) swallow the lines that follow.
func parseTSV(raw []byte, o Options) ([]record, int, error) {
	raw = bytes.TrimPrefix(raw, []byte("\uFEFF"))
	var rows []row
	for i, ln := range strings.Split(string(raw), "\n") {
		ln = strings.TrimSuffix(ln, "\r")
		if strings.TrimSpace(ln) == "" {
			continue
		}
		rows = append(rows, row{fields: strings.Split(ln, "\t"), line: i + 1})
	}
	return fromTable(rows, o)
}

// fromTable picks the text and label columns out of rows.
func fromTable(rows []row, o Options) ([]record, int, error) {
	var header []string
	if o.Header {
		if len(rows) == 0 {
			return nil, 0, errors.New("empty file: no header row")
		}
		header = rows[0].fields
		for i := range header {
			header[i] = strings.TrimSpace(header[i])
		}
		rows = rows[1:]
	} else if len(rows) == 0 {
		return nil, 0, nil
	}
	width := len(header)
	if !o.Header {
		width = len(rows[0].fields)
	}
	column := func(name string) (int, error) {
		if o.Header {
			for i, h := range header {
				if h == name {
					return i, nil
				}
			}
			for i, h := range header {
				if strings.EqualFold(h, name) {
					return i, nil
				}
			}
			return 0, fmt.Errorf("no column %q (columns: %s)", name, strings.Join(header, ", "))
		}
		i, err := strconv.Atoi(name)
		if err != nil || i < 0 || i >= width {
			return 0, fmt.Errorf("no column %q: without a header, columns are named by their 0-based index (0 to %d here)", name, width-1)
		}
		return i, nil
	}
	textName := textField(o, !o.Header)
	textCol, err := column(textName)
	if err != nil {
		return nil, 0, err
	}
	labelCol := -1
	if o.LabelField != "" {
		if labelCol, err = column(o.LabelField); err != nil {
			return nil, 0, err
		}
	}
	var (
		recs    []record
		skipped int
	)
	for _, r := range rows {
		if textCol >= len(r.fields) {
			return nil, 0, fmt.Errorf("line %d: %d fields, no text column %q", r.line, len(r.fields), textName)
		}
		rec := record{text: r.fields[textCol], line: r.line}
		if labelCol >= 0 {
			if labelCol < len(r.fields) {
				rec.label = strings.TrimSpace(r.fields[labelCol])
			}
			if rec.label == "" {
				skipped++
				continue
			}
			rec.hasLabel = true
		}
		recs = append(recs, rec)
		if o.MaxExamples > 0 && len(recs) == o.MaxExamples {
			break
		}
	}
	return recs, skipped, nil
}
