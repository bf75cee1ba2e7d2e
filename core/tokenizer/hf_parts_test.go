package tokenizer

import (
	"errors"
	"path/filepath"
	"slices"
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
