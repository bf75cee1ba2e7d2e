package data

import "strings"

// splitText cuts a text file into documents as Options.Separator says.
func splitText(s, sep string, max int) []record {
	if sep == "" {
		if strings.TrimSpace(s) == "" {
			return nil
		}
		return []record{{text: s, line: 1}}
	}
	var recs []record
	add := func(doc string, line int) bool {
		if strings.TrimSpace(doc) == "" {
			return true
		}
		recs = append(recs, record{text: doc, line: line})
		return max <= 0 || len(recs) < max
	}
	if strings.Contains(sep, "\n") {
		line := 1
		for _, doc := range strings.Split(s, sep) {
			trimmed := strings.TrimLeft(doc, "\r\n")
			start := line + strings.Count(doc[:len(doc)-len(trimmed)], "\n")
			if !add(strings.TrimRight(trimmed, "\r\n"), start) {
				break
			}
			line += strings.Count(doc, "\n") + strings.Count(sep, "\n")
		}
		return recs
	}
	var (
		doc   []string
		start = 1
	)
	for i, ln := range strings.Split(s, "\n") {
		if strings.TrimSuffix(ln, "\r") == sep {
			if !add(strings.Join(doc, "\n"), start) {
				return recs
			}
			doc, start = doc[:0], i+2
			continue
		}
		doc = append(doc, strings.TrimSuffix(ln, "\r"))
	}
	add(strings.TrimRight(strings.Join(doc, "\n"), "\n"), start)
	return recs
}
