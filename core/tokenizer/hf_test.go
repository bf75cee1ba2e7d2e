package tokenizer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// byteLevelVocab is a byte-level BPE vocabulary: the 256 byte characters, then
// the merged tokens.
func byteLevelVocab(extra ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < 256; i++ {
		fmt.Fprintf(&b, "%q: %d,", byteStrings[i], i)
	}
	for i, e := range extra {
		fmt.Fprintf(&b, "%q: %d,", e, 256+i)
	}
	return strings.TrimSuffix(b.String(), ",") + "}"
}

// Small tokenizer.json files exercising the components the fixture
// tokenizers do not use.
var (
	wordVocab = `{"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "hello": 3, "world": 4, "##s": 5, "12": 6, "3": 7, ",": 8, "!": 9, "▁hello": 10, "▁world": 11, "un": 12, "##aff": 13, "##able": 14, "<s>": 15, "</s>": 16, "a": 17, "▁": 18}`
	tinyBPE   = `{"type": "BPE", "vocab": ` + byteLevelVocab("he", "ll", "hell", "hello", "Ġw", "Ġwo") + `, "merges": [["h", "e"], ["l", "l"], ["he", "ll"], ["hell", "o"], ["Ġ", "w"], ["Ġw", "o"]]}`
)

func mustHF(t testing.TB, js string) *HF {
	t.Helper()
	h, err := ParseHF([]byte(js), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	return h
}

func TestHFComponents(t *testing.T) {
	wl := func(pre, extra string) string {
		return `{"model": {"type": "WordLevel", "vocab": ` + wordVocab + `, "unk_token": "[UNK]"}, "pre_tokenizer": ` + pre + extra + `}`
	}
	cases := []struct {
		name, json, text string
		special          bool
		want             []int
	}{
		{"Whitespace", wl(`{"type": "Whitespace"}`, ""), "hello, world!", false, []int{3, 8, 4, 9}},
		{"WhitespaceSplit", wl(`{"type": "WhitespaceSplit"}`, ""), " hello\tworld ", false, []int{3, 4}},
		{"Digits contiguous", wl(`{"type": "Digits", "individual_digits": false}`, ""), "12", false, []int{6}},
		{"Digits individual", wl(`{"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}]}`, ""), "3", false, []int{7}},
		{"Punctuation", wl(`{"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Punctuation", "behavior": "Isolated"}]}`, ""), "hello,world!", false, []int{3, 8, 4, 9}},
		{"Metaspace always", wl(`{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}`, ""), "hello world", false, []int{10, 11}},
		{"Metaspace never", wl(`{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": true}`, ""), "hello world", false, []int{3, 11}},
		{"Metaspace first", wl(`{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}`, `, "added_tokens": [{"id": 15, "content": "<s>", "special": true}]`), "<s>hello", false, []int{15, 3}},
		{"Split removed", wl(`{"type": "Split", "pattern": {"String": ","}, "behavior": "Removed", "invert": false}`, ""), "hello,world", false, []int{3, 4}},
		{"Split merged with previous", wl(`{"type": "Split", "pattern": {"Regex": "s"}, "behavior": "MergedWithPrevious", "invert": false}`, ""), "a", false, []int{17}},
		{"Split merged with next", wl(`{"type": "Split", "pattern": {"String": "▁"}, "behavior": "MergedWithNext"}`, ""), "▁hello▁world", false, []int{10, 11}},
		{"Split contiguous", wl(`{"type": "Split", "pattern": {"String": "▁"}, "behavior": "Contiguous"}`, ""), "▁a", false, []int{18, 17}},
		{"Split invert", wl(`{"type": "Split", "pattern": {"Regex": "[a-z]+"}, "behavior": "Isolated", "invert": true}`, ""), "hello world", false, []int{3, 0, 4}},
		{"BertProcessing", wl(`{"type": "WhitespaceSplit"}`, `, "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]}`), "hello", true, []int{1, 3, 2}},
		{"RobertaProcessing", wl(`{"type": "WhitespaceSplit"}`, `, "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 16], "cls": ["<s>", 15], "trim_offsets": true, "add_prefix_space": false}`), "hello", true, []int{15, 3, 16}},
		{"Template string form", wl(`{"type": "WhitespaceSplit"}`, `, "post_processor": {"type": "TemplateProcessing", "single": "[CLS] $A [SEP]", "pair": "", "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}}`), "world", true, []int{1, 4, 2}},
		{"Lowercase StripAccents NFD", wl(`{"type": "WhitespaceSplit"}`, `, "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"}]}`), "HÉLLO Wörld", false, []int{3, 4}},
		{"NFKC", wl(`{"type": "WhitespaceSplit"}`, `, "normalizer": {"type": "NFKC"}`), "ｈｅｌｌｏ", false, []int{3}},
		{"Strip normalizer", wl(`null`, `, "normalizer": {"type": "Strip", "strip_left": true, "strip_right": true}`), "  hello  ", false, []int{3}},
		{"added lstrip rstrip", wl(`{"type": "Split", "pattern": {"String": " "}, "behavior": "Isolated"}`, `, "added_tokens": [{"id": 1, "content": "[CLS]", "lstrip": true, "rstrip": true, "special": true}]`), "hello [CLS] world", false, []int{3, 1, 4}},
		{"added single_word", wl(`{"type": "Whitespace"}`, `, "added_tokens": [{"id": 17, "content": "a", "single_word": true}]`), "a una", false, []int{17, 0}},
		{"WordPiece", `{"model": {"type": "WordPiece", "vocab": ` + wordVocab + `, "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 10}, "pre_tokenizer": {"type": "BertPreTokenizer"}}`, "unaffable hellos xyz helloworlds", false, []int{12, 13, 14, 3, 5, 0, 0}},
		{"BPE byte-level", `{"model": ` + tinyBPE + `, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}}`, "hello wo", false, []int{259, 261}},
		{"BPE prefix space", `{"model": ` + tinyBPE + `, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true}}`, "wo", false, []int{261}},
		{"Unigram", `{"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0], ["▁", -2], ["he", -3], ["llo", -3], ["hello", -4], ["h", -5], ["e", -5], ["l", -5], ["o", -5], ["<0x7A>", -1]], "byte_fallback": false}, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never"}}`, "hello hezz", false, []int{4, 1, 2, 0}},
		{"Unigram byte fallback", `{"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0], ["a", -1], ["<0x7A>", -1]], "byte_fallback": true}}`, "az", false, []int{1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := mustHF(t, c.json)
			if got := h.Encode(c.text, c.special); !slices.Equal(got, c.want) {
				t.Fatalf("Encode(%q) = %v %q, want %v", c.text, got, h.Tokens(got), c.want)
			}
		})
	}
}

func TestHFDecoders(t *testing.T) {
	cases := []struct {
		name, decoder string
		toks          []string
		want          string
	}{
		{"ByteLevel", `{"type": "ByteLevel"}`, []string{"Hello", "Ġworld", "Ċ"}, "Hello world\n"},
		{"Metaspace", `{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}`, []string{"▁Hello", "▁world"}, "Hello world"},
		{"WordPiece", `{"type": "WordPiece", "prefix": "##", "cleanup": true}`, []string{"un", "##aff", "##able", "!", "do", "n't"}, "unaffable! don't"},
		{"BPEDecoder", `{"type": "BPEDecoder", "suffix": "</w>"}`, []string{"hel", "lo</w>", "world</w>"}, "hello world"},
		{"llama2 sequence", `{"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}`,
			[]string{"▁Hello", "<0xE2>", "<0x82>", "<0xAC>", "▁x", "<0xFF>"}, "Hello€ x\uFFFD"},
		{"CTC", `{"type": "CTC", "pad_token": "<pad>", "word_delimiter_token": "|", "cleanup": true}`, []string{"h", "h", "<pad>", "i", "|", "y", "o"}, "hi yo"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var vocab strings.Builder
			vocab.WriteByte('{')
			for i, tk := range c.toks {
				if i > 0 {
					vocab.WriteByte(',')
				}
				fmt.Fprintf(&vocab, "%q: %d", tk, i)
			}
			vocab.WriteByte('}')
			h := mustHF(t, `{"model": {"type": "WordLevel", "vocab": `+vocab.String()+`}, "decoder": `+c.decoder+`}`)
			ids := make([]int, len(c.toks))
			for i, tk := range c.toks {
				ids[i], _ = h.TokenID(tk)
			}
			if got := h.Decode(ids); got != c.want {
				t.Fatalf("Decode = %q, want %q", got, c.want)
			}
		})
	}
}

// TestSplitScanners checks the hand-written GPT-2 / Llama 3 / Qwen
// scanners on the cases their look-ahead exists for.
func TestSplitScanners(t *testing.T) {
	cases := []struct {
		name string
		m    matcher
		text string
		want []string
	}{
		{"gpt2 spaces before word", knownPatterns[gpt2Pattern], "a   b", []string{"a", "  ", " b"}},
		{"gpt2 trailing spaces", knownPatterns[gpt2Pattern], "a  ", []string{"a", "  "}},
		{"gpt2 contractions", knownPatterns[gpt2Pattern], "it's I'LL", []string{"it", "'s", " I", "'", "LL"}},
		{"gpt2 numbers", knownPatterns[gpt2Pattern], "x 12345", []string{"x", " 12345"}},
		{"llama3 contractions any case", knownPatterns[llama3Pattern], "I'LL", []string{"I", "'LL"}},
		{"llama3 digits by 3", knownPatterns[llama3Pattern], "1234567", []string{"123", "456", "7"}},
		{"llama3 newlines", knownPatterns[llama3Pattern], "a \n\n b", []string{"a", " \n\n", " b"}},
		{"llama3 punct newline", knownPatterns[llama3Pattern], "x.\n\ny", []string{"x", ".\n\n", "y"}},
		{"llama3 prefix", knownPatterns[llama3Pattern], "(hello", []string{"(hello"}},
		{"qwen single digits", knownPatterns[qwenPattern], "123", []string{"1", "2", "3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, m := range c.m.find(nil, c.text) {
				got = append(got, c.text[m[0]:m[1]])
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("%q: %q, want %q", c.text, got, c.want)
			}
		})
	}
}

func TestHFErrors(t *testing.T) {
	cases := []struct{ name, json, want string }{
		{"unknown normalizer", `{"model": ` + tinyBPE + `, "normalizer": {"type": "Sequence", "normalizers": [{"type": "Nope"}]}}`, `normalizer.normalizers[0]: unknown type "Nope"`},
		{"untyped", `{"model": ` + tinyBPE + `, "decoder": {}}`, `decoder: unknown type: no "type"`},
		{"merge outside vocab", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}`, `model.merges[0]: "a" + "b": token not in the vocabulary`},
		{"bad merge", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["ab"]}}`, `model.merges[0]: "ab" is not two tokens`},
		{"dropout", `{"model": {"type": "BPE", "dropout": 0.1, "vocab": {"a": 0}, "merges": []}}`, `model.dropout`},
		{"no model", `{}`, `model: missing`},
		{"truncated", `{"model": {"type": "BPE", "vocab": {"a": 0`, `model.vocab: malformed JSON`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseHF([]byte(c.json), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if strings.Contains(c.want, "unknown type") && !errors.Is(err, ErrUnknownComponent) {
				t.Fatalf("%v is not ErrUnknownComponent", err)
			}
		})
	}
}

// FuzzHFParse feeds arbitrary bytes to the tokenizer.json parser and, when
// they parse, encodes and decodes a few texts: nothing may panic or hang.
func FuzzHFParse(f *testing.F) {
	f.Add([]byte(`{"model": ` + tinyBPE + `, "pre_tokenizer": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"}}`))
	f.Add([]byte(`{"model": {"type": "WordPiece", "vocab": ` + wordVocab + `, "unk_token": "[UNK]"}, "normalizer": {"type": "BertNormalizer"}, "pre_tokenizer": {"type": "BertPreTokenizer"}, "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]}, "added_tokens": [{"id": 1, "content": "[CLS]", "special": true, "lstrip": true}]}`))
	f.Add([]byte(`{"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0], ["a", -1.5]]}, "pre_tokenizer": {"type": "Metaspace"}, "decoder": {"type": "Metaspace"}}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<0x41>": 3}, "merges": ["a b"], "byte_fallback": true, "continuing_subword_prefix": "##"}, "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHF(data, nil)
		if err != nil {
			return
		}
		for _, s := range []string{"", "hello world", "ab AB\t\n 123 é 漢字 <0x41>", "\xff\xfe bad utf8"} {
			ids := h.Encode(s, true)
			for _, id := range ids {
				if id < 0 || id >= h.VocabSize() {
					t.Fatalf("Encode(%q): id %d outside [0, %d)", s, id, h.VocabSize())
				}
			}
			_ = h.Decode(ids)
		}
	})
}

// FuzzHFEncode encodes arbitrary text with a byte-level BPE and a WordPiece
// pipeline: no panics, ids in range, and byte-level BPE decodes back to the
// (valid UTF-8) text.
func FuzzHFEncode(f *testing.F) {
	bpe := mustHF(f, `{"model": `+tinyBPE+`, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "`+strings.ReplaceAll(llama3Pattern, `\`, `\\`)+`"}, "behavior": "Isolated"}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}, "decoder": {"type": "ByteLevel"}}`)
	bpe2 := mustHF(f, `{"model": `+tinyBPE+`, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "decoder": {"type": "ByteLevel"}}`)
	wp := mustHF(f, `{"model": {"type": "WordPiece", "vocab": `+wordVocab+`, "unk_token": "[UNK]"}, "normalizer": {"type": "BertNormalizer"}, "pre_tokenizer": {"type": "BertPreTokenizer"}, "added_tokens": [{"id": 1, "content": "[CLS]", "special": true, "single_word": true, "rstrip": true}]}`)
	for _, s := range []string{"hello world", "  \n\t x's 1234 ", "家族 👨‍👩‍👧 e\u0301", "[CLS] hello [CLS]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, h := range []*HF{bpe, bpe2, wp} {
			for _, id := range h.Encode(s, true) {
				if id < 0 || id >= h.VocabSize() {
					t.Fatalf("id %d out of range", id)
				}
			}
		}
		if !strings.ContainsRune(s, '\uFFFD') && strings.ToValidUTF8(s, "\uFFFD") == s {
			if got := bpe.Decode(bpe.Encode(s, false)); got != s {
				t.Fatalf("byte-level round trip: %q -> %q", s, got)
			}
			if got := bpe2.Decode(bpe2.Encode(s, false)); got != s {
				t.Fatalf("ByteLevel round trip: %q -> %q", s, got)
			}
		}
	})
}
