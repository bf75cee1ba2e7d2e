package data

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// countLabels returns how many examples carry each label.
func countLabels(ex []Example) map[int]int {
	c := map[int]int{}
	for _, e := range ex {
		c[e.Label]++
	}
	return c
}

func TestSMSSpamCollection(t *testing.T) {
	path := filepath.Join(fixtures(t), "sms-spam-collection", "SMSSpamCollection")
	tests := []struct {
		name   string
		labels []string
		ham    int
		spam   int
	}{
		{"discovered labels", nil, 0, 1},
		{"given labels", []string{"spam", "ham"}, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex, st, err := LoadStats(path, Options{Format: "tsv", Header: true, TextField: "SMS", LabelField: "Label", Labels: tc.labels})
			if err != nil {
				t.Fatal(err)
			}
			if len(ex) != 5574 {
				t.Fatalf("%d examples, want 5574", len(ex))
			}
			c := countLabels(ex)
			if c[tc.ham] != 4827 || c[tc.spam] != 747 {
				t.Errorf("counts %v, want ham(%d)=4827 spam(%d)=747", c, tc.ham, tc.spam)
			}
			if st.Labels[tc.ham] != "ham" || st.Labels[tc.spam] != "spam" || st.Skipped != 0 {
				t.Errorf("stats %+v", st)
			}
			// Line 618 opens with a quoted phrase; it must stay one field of one row.
			if got := ex[616].Text; !strings.HasPrefix(got, `"Happy valentines day" I know`) || strings.Contains(got, "\n") {
				t.Errorf("row 617 = %q", got)
			}
		})
	}
}

func TestUCISentiment(t *testing.T) {
	dir := filepath.Join(fixtures(t), "uci-sentiment-labelled-sentences")
	for _, name := range []string{"amazon", "imdb", "yelp"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".json")
			ex, st, err := LoadStats(path, Options{LabelField: "class"})
			if err != nil {
				t.Fatal(err)
			}
			if len(ex) != 1000 || st.Skipped != 1 {
				t.Fatalf("%d examples, %d skipped; want 1000 and 1", len(ex), st.Skipped)
			}
			if c := countLabels(ex); c[0] != 500 || c[1] != 500 {
				t.Errorf("label counts %v, want 500/500", c)
			}
			all, st, err := LoadStats(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 1001 || st.Skipped != 0 || all[0].Label != -1 {
				t.Errorf("unlabelled load: %d examples, %+v", len(all), st)
			}
		})
	}
	t.Run("amazon tsv matches json", func(t *testing.T) {
		tsv, err := Load(filepath.Join(dir, "amazon_cells_labelled.txt"), Options{Format: "tsv", TextField: "0", LabelField: "1"})
		if err != nil {
			t.Fatal(err)
		}
		js, err := Load(filepath.Join(dir, "amazon.json"), Options{LabelField: "class"})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tsv, js) {
			t.Errorf("tsv and json differ: %d vs %d examples", len(tsv), len(js))
		}
	})
}

func TestTextFixtures(t *testing.T) {
	fx := fixtures(t)
	tests := []struct {
		name   string
		path   string
		o      Options
		n      int
		prefix string
	}{
		{"shakespeare", "tinyshakespeare/input.txt", Options{}, 1, "First Citizen:"},
		{"fortunes wisdom", "fortunes/wisdom", Options{Format: "text", Separator: "%"}, 425, "(1) Avoid fried meats"},
		{"fortunes computers", "fortunes/computers", Options{Format: "text", Separator: "%"}, 1051, ""},
		{"max examples", "fortunes/computers", Options{Format: "text", Separator: "%", MaxExamples: 10}, 10, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex, err := Load(filepath.Join(fx, tc.path), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if len(ex) != tc.n {
				t.Fatalf("%d documents, want %d", len(ex), tc.n)
			}
			if !strings.HasPrefix(ex[0].Text, tc.prefix) {
				t.Errorf("first document starts %.40q", ex[0].Text)
			}
			for i, e := range ex {
				if e.Label != -1 || strings.TrimSpace(e.Text) == "" || slices.Contains(strings.Split(e.Text, "\n"), "%") {
					t.Fatalf("document %d = %+v", i, e)
				}
			}
		})
	}
}

func TestLoadTables(t *testing.T) {
	const csvHeader = "id,text,label\n1,\"hello, world\",pos\n2,\"two\nlines\",neg\n\n3,say \"hi\",pos\n4,no label,\n"
	tests := []struct {
		name    string
		file    string
		content string
		o       Options
		want    []Example
		skipped int
	}{
		{
			name: "csv header", file: "d.csv", content: csvHeader,
			o:    Options{Header: true, LabelField: "label", Labels: []string{"neg", "pos"}},
			want: []Example{{"hello, world", 1}, {"two\nlines", 0}, {`say "hi"`, 1}}, skipped: 1,
		},
		{
			name: "csv header case-insensitive, no labels", file: "d.csv", content: csvHeader,
			o:    Options{Header: true, TextField: "TEXT"},
			want: []Example{{"hello, world", -1}, {"two\nlines", -1}, {`say "hi"`, -1}, {"no label", -1}},
		},
		{
			name: "csv no header", file: "d.csv", content: "0,good\n1,bad\n",
			o:    Options{TextField: "1", LabelField: "0", Labels: []string{"pos", "neg"}},
			want: []Example{{"good", 0}, {"bad", 1}},
		},
		{
			name: "csv no header default column", file: "d.csv", content: "good,x\nbad,y\n",
			o:    Options{},
			want: []Example{{"good", -1}, {"bad", -1}},
		},
		{
			name: "tsv crlf", file: "d.tsv", content: "text\tlabel\r\na \"b\tspam\r\n\"c\" d\tham\r\n",
			o:    Options{Header: true, LabelField: "label"},
			want: []Example{{`a "b`, 1}, {`"c" d`, 0}},
		},
		{
			name: "jsonl", file: "d.jsonl", content: "{\"text\":\"a\",\"y\":1}\n\n{\"text\":\"b\",\"y\":null}\n{\"text\":\"c\"}\n{\"text\":\"d\",\"y\":\"0\"}\n",
			o:    Options{LabelField: "y"},
			want: []Example{{"a", 1}, {"d", 0}}, skipped: 2,
		},
		{
			name: "json integer index into labels", file: "d.json", content: `[{"t":"a","c":1},{"t":"b","c":"neg"}]`,
			o:    Options{TextField: "t", LabelField: "c", Labels: []string{"neg", "pos"}},
			want: []Example{{"a", 1}, {"b", 0}},
		},
		{
			name: "text paragraphs", file: "d.txt", content: "one\ntwo\n\n\nthree\n\n",
			o:    Options{Separator: "\n\n"},
			want: []Example{{"one\ntwo", -1}, {"three", -1}},
		},
		{
			name: "text whole file", file: "d.txt", content: "one\n%\ntwo\n",
			o:    Options{},
			want: []Example{{"one\n%\ntwo\n", -1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex, st, err := LoadStats(writeFile(t, tc.file, tc.content), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ex, tc.want) {
				t.Errorf("got %+v\nwant %+v", ex, tc.want)
			}
			if st.Skipped != tc.skipped {
				t.Errorf("skipped %d, want %d", st.Skipped, tc.skipped)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		content string // "" with file "missing" means no file
		o       Options
		is      error
		want    []string // substrings of the message
	}{
		{name: "missing file", file: "missing", is: fs.ErrNotExist, o: Options{Format: "csv"}, want: []string{"missing"}},
		{name: "unknown extension", file: "d.xyz", content: "x", want: []string{"d.xyz", "Options.Format"}},
		{name: "unknown format", file: "d.csv", content: "x", o: Options{Format: "xml"}, want: []string{`"xml"`}},
		{name: "missing text column", file: "d.csv", content: "sentence,label\na,1\n", o: Options{Header: true},
			want: []string{`no column "text"`, "columns: sentence, label"}},
		{name: "missing label column", file: "d.tsv", content: "Label\tSMS\nham\thi\n", o: Options{Header: true, TextField: "SMS", LabelField: "class"},
			want: []string{`no column "class"`, "columns: Label, SMS"}},
		{name: "headerless column out of range", file: "d.csv", content: "a,b\n", o: Options{TextField: "2"},
			want: []string{`no column "2"`, "0 to 1"}},
		{name: "short row", file: "d.csv", content: "text,label\na,1\nb\n", o: Options{Header: true, TextField: "label"},
			want: []string{"line 3", `"label"`}},
		{name: "label not in labels", file: "d.csv", content: "text,label\na,pos\nb,meh\n", o: Options{Header: true, LabelField: "label", Labels: []string{"neg", "pos"}},
			want: []string{`label "meh"`, "line 3", `["neg" "pos"]`}},
		{name: "label index out of range", file: "d.jsonl", content: "{\"text\":\"a\",\"l\":2}\n", o: Options{LabelField: "l", Labels: []string{"neg", "pos"}},
			want: []string{`label "2"`, "line 1"}},
		{name: "json label field absent everywhere", file: "d.json", content: "[{\"text\":\"a\",\"class\":1}]", o: Options{LabelField: "label"},
			want: []string{`no label field "label"`, "fields: class, text"}},
		{name: "json text field absent", file: "d.json", content: "[\n{\"text\":\"a\"},\n{\"sentence\":\"b\"}\n]", o: Options{},
			want: []string{"line 3", `no field "text"`, "fields: sentence"}},
		{name: "json text not a string", file: "d.json", content: "[{\"text\":3}]",
			want: []string{"line 1", "a number"}},
		{name: "malformed json", file: "d.json", content: "[\n{\"text\":\"a\"},\n{\"text\" \"b\"}\n]",
			want: []string{"line 3", "invalid JSON"}},
		{name: "truncated json", file: "d.json", content: "[\n{\"text\":\"a\"},\n{\"text\":",
			want: []string{"line 3", "end of file"}},
		{name: "json not an array", file: "d.json", content: "{\"text\":\"a\"}",
			want: []string{"line 1", "array"}},
		{name: "malformed jsonl", file: "d.jsonl", content: "{\"text\":\"a\"}\n\n{\"text\":\n",
			want: []string{"line 3", "invalid JSON"}},
		{name: "negative label", file: "d.jsonl", content: "{\"text\":\"a\",\"l\":-2}\n", o: Options{LabelField: "l"},
			want: []string{"line 1", "negative"}},
		{name: "fractional label", file: "d.jsonl", content: "{\"text\":\"a\",\"l\":0.5}\n", o: Options{LabelField: "l"},
			want: []string{"line 1", "0.5"}},
		{name: "header required", file: "d.csv", content: "", o: Options{Header: true},
			want: []string{"no header"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.file)
			if tc.file != "missing" {
				path = writeFile(t, tc.file, tc.content)
			}
			_, err := Load(path, tc.o)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			msg := err.Error()
			if !strings.Contains(msg, filepath.Base(path)) {
				t.Errorf("error %q does not name the file", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestLoadOddInputDoesNotPanic(t *testing.T) {
	inputs := []string{"", "\uFEFF", "[", "]", "[null]", "[1,2]", "[{}]", "{}", "null", "\n\n", "\"", ",,,\n\"", "\t\t\n", "%\n%\n"}
	for _, format := range []string{"json", "jsonl", "csv", "tsv", "text"} {
		for _, in := range inputs {
			for _, o := range []Options{
				{Format: format, Separator: "%"},
				{Format: format, Header: true, LabelField: "l", Labels: []string{"a"}},
			} {
				_, _ = Load(writeFile(t, "f", in), o) // must not panic
			}
		}
	}
}
