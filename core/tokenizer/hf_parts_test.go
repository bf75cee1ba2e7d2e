package tokenizer

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Qwen 3.5's pattern keeps combining marks with their letters
// ([\p{L}\p{M}]+) where Qwen 2's splits them off.
func TestQwen35Scanner(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		qwen2      []string
		qwen35     []string
	}{
		{"decomposed é", "re\u0301sume\u0301 x", []string{"re", "\u0301sume", "\u0301", " x"}, []string{"re\u0301sume\u0301", " x"}},
		{"mark after space", "a \u0301b", []string{"a", " \u0301", "b"}, []string{"a", " \u0301b"}},
		{"marks and digits", "1\u03012", []string{"1", "\u0301", "2"}, []string{"1", "\u0301", "2"}},
		{"mark before punctuation", "x\u0301!", []string{"x", "\u0301!"}, []string{"x\u0301", "!"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				pattern string
				want    []string
			}{{qwenPattern, tc.qwen2}, {qwen35Pattern, tc.qwen35}} {
				m := knownPatterns[c.pattern]
				var got []string
				for _, s := range m.find(nil, tc.text) {
					got = append(got, tc.text[s[0]:s[1]])
				}
				if !slices.Equal(got, c.want) {
					t.Errorf("%q: %q, want %q", c.pattern[:40], got, c.want)
				}
			}
		})
	}
}

// A tokenizer that is not a byte-level BPE cannot be taken apart; one
// that is comes back together the same.
func TestByteLevelBPEParts(t *testing.T) {
	wp := fixtureHF(t, "tokenizers/bert-base-uncased")
	if _, err := wp.ByteLevelBPE(); !errors.Is(err, ErrNotByteLevelBPE) {
		t.Errorf("WordPiece: err = %v, want ErrNotByteLevelBPE", err)
	}
	sp := fixtureHF(t, "tokenizers/llama2")
	if _, err := sp.ByteLevelBPE(); !errors.Is(err, ErrNotByteLevelBPE) {
		t.Errorf("SentencePiece-style BPE: err = %v, want ErrNotByteLevelBPE", err)
	}
	h := fixtureHF(t, filepath.Join("peft-lora-gpt2-smartreview", "gpt2-tokenizer"))
	p, err := h.ByteLevelBPE()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Merges) != 50000 || p.Merges[0] != [2]string{"Ġ", "t"} || len(p.Tokens) != 50257 {
		t.Fatalf("%d merges (first %q), %d tokens", len(p.Merges), p.Merges[0], len(p.Tokens))
	}
	back, err := NewByteLevelBPE(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"Hello world<|endoftext|> 12345  \n日本語 😀", ""} {
		if got, want := back.Encode(text, true), h.Encode(text, true); !slices.Equal(got, want) {
			t.Errorf("%q: %v, want %v", text, got, want)
		}
	}
	p.Prefix = []int{1 << 20}
	if _, err := NewByteLevelBPE(p); err == nil {
		t.Error("a template id outside the vocabulary was accepted")
	}
}

// The generic matcher of patterns ending in GPT-4's whitespace
// alternatives splits every reference text (and random mixes of the
// characters that matter) exactly as the hand-written scanners of the
// GPT-2, Llama 3, Qwen 2 and Qwen 3.5 patterns do.
func TestTailMatcherEqualsScanners(t *testing.T) {
	var texts []refText
	readGzipJSON(t, filepath.Join("testdata", "tokref", "texts.json.gz"), &texts)
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "a", "B", "é", "e\u0301", "\u0301", "1", "٣", "'s", "'LL", "'", "!", "?.", "/", "日", "😀", "\u200d"}
	for range 2000 {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		texts = append(texts, refText{Text: b.String()})
	}
	for _, p := range []string{gpt2Pattern, llama3Pattern, qwenPattern, qwen35Pattern} {
		tm, ok := newTailMatcher(p)
		if !ok {
			t.Fatalf("%q: no tail matcher", p)
		}
		sc := knownPatterns[p]
		bad := 0
		for _, x := range texts {
			want, got := sc.find(nil, x.Text), tm.find(nil, x.Text)
			if !slices.Equal(got, want) {
				if bad++; bad <= 3 {
					t.Errorf("%.30q... on %q:\n got %v\nwant %v", p, x.Text, got, want)
				}
			}
		}
	}
}

// GPT-4o's pattern (cased letter runs with contractions, digits by three)
// is read through the generic matcher.
func TestTailMatcherGPT4o(t *testing.T) {
	const gpt4o = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	m, err := newMatcher(pattern{Regex: ptr(gpt4o)}, "pattern")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(tailMatcher); !ok {
		t.Fatalf("matcher %T", m)
	}
	text := "Hello World's 12345 camelCase\u00a0 x\n\n  y"
	var got []string
	for _, s := range m.find(nil, text) {
		got = append(got, text[s[0]:s[1]])
	}
	want := []string{"Hello", " World's", " ", "123", "45", " camel", "Case", "\u00a0", " x", "\n\n", " ", " y"}
	if !slices.Equal(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

// FuzzTailMatcher checks the generic matcher against the hand-written
// scanners on any text.
func FuzzTailMatcher(f *testing.F) {
	for _, s := range []string{"Hello World's 12345", "  \n\n x\t\u00a0y", "e\u0301'LL 日本😀", "\r\n\r \n", ""} {
		f.Add(s)
	}
	pats := []string{gpt2Pattern, llama3Pattern, qwenPattern, qwen35Pattern}
	tms := make([]tailMatcher, len(pats))
	for i, p := range pats {
		tms[i], _ = newTailMatcher(p)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for i, p := range pats {
			if got, want := tms[i].find(nil, text), knownPatterns[p].find(nil, text); !slices.Equal(got, want) {
				t.Fatalf("%.30q... on %q:\n got %v\nwant %v", p, text, got, want)
			}
		}
	})
}
