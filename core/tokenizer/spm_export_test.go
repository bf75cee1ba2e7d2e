package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// spmJSON is a small tokenizer.json of the SentencePiece kind (Llama 2's
// layout) with the top-level components and model settings in edits
// replaced.
func spmJSON(t *testing.T, edits, model map[string]string) []byte {
	t.Helper()
	vocab := map[string]int{"<unk>": 0, "<s>": 1, "</s>": 2}
	for b := range 256 {
		vocab[fmt.Sprintf("<0x%02X>", b)] = 3 + b
	}
	for i, p := range []string{"▁", "a", "b", "▁a", "ab", "▁ab"} {
		vocab[p] = 259 + i
	}
	v, _ := json.Marshal(vocab)
	m := map[string]string{
		"type": `"BPE"`, "unk_token": `"<unk>"`, "byte_fallback": "true", "fuse_unk": "true",
		"vocab": string(v), "merges": `["▁ a", "a b", "▁a b", "▁ ab"]`,
	}
	for k, x := range model {
		m[k] = x
	}
	top := map[string]string{
		"added_tokens":  `[{"id":0,"content":"<unk>","special":true},{"id":1,"content":"<s>","special":true},{"id":2,"content":"</s>","special":true}]`,
		"normalizer":    `{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}`,
		"pre_tokenizer": "null",
		"post_processor": `{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
			"pair":[],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}}`,
		"decoder": `{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}`,
	}
	for k, x := range edits {
		top[k] = x
	}
	var b strings.Builder
	b.WriteString("{")
	for k, x := range top {
		fmt.Fprintf(&b, "%q:%s,", k, x)
	}
	b.WriteString(`"model":{`)
	first := true
	for k, x := range m {
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "%q:%s", k, x)
	}
	b.WriteString("}}")
	return []byte(b.String())
}

// A tokenizer.json converted from SentencePiece comes apart into the
// parts of a GGUF "llama" vocabulary; one whose pipeline SentencePiece
// would not follow is refused naming the component, and one of another
// kind with ErrNotSentencePieceBPE.
func TestSentencePieceBPEParts(t *testing.T) {
	h, err := ParseHF(spmJSON(t, nil, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.SentencePieceBPE()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tokens) != 265 || p.Tokens[264] != "▁ab" || p.Unk != 0 || p.Bytes[0] != 3 || p.Bytes[255] != 258 ||
		!p.AddSpacePrefix || len(p.Added) != 3 || len(p.Prefix) != 1 || p.Prefix[0] != 1 || len(p.Suffix) != 0 || p.BOS != 1 {
		t.Errorf("parts %+v", p)
	}
	if want := [][2]string{{"▁", "a"}, {"a", "b"}, {"▁a", "b"}, {"▁", "ab"}}; fmt.Sprint(p.Merges) != fmt.Sprint(want) {
		t.Errorf("merges %q, want %q", p.Merges, want)
	}
	h, err = ParseHF(spmJSON(t, map[string]string{
		"normalizer":    `{"type":"Replace","pattern":{"String":" "},"content":"▁"}`,
		"pre_tokenizer": `{"type":"Sequence","pretokenizers":[]}`,
		"decoder":       `{"type":"Metaspace","replacement":"▁","prepend_scheme":"never"}`,
	}, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := h.SentencePieceBPE(); err != nil || p.AddSpacePrefix {
		t.Errorf("without Prepend: add space prefix %v, err %v", p.AddSpacePrefix, err)
	}

	for _, tc := range []struct {
		name        string
		edits       map[string]string
		model       map[string]string
		notThisKind bool
		want        string
	}{
		{"WordPiece", nil, map[string]string{"type": `"WordPiece"`, "merges": "null"}, true, "the model is a WordPiece"},
		{"no byte fallback", nil, map[string]string{"byte_fallback": "false"}, true, "no byte fallback"},
		{"byte token missing", nil, map[string]string{"vocab": `{"<unk>":0,"a":1}`, "merges": "[]"}, true, "no token <0x00>"},
		{"Metaspace pre-tokenizer", map[string]string{"pre_tokenizer": `{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false}`}, nil, false, "pre_tokenizer Metaspace"},
		{"splitting pre-tokenizer", map[string]string{"pre_tokenizer": `{"type":"Split","pattern":{"String":" "},"behavior":"MergedWithPrevious","invert":false}`}, nil, false, "pre_tokenizer Split"},
		{"lowercasing normalizer", map[string]string{"normalizer": `{"type":"Sequence","normalizers":[{"type":"Lowercase"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}`}, nil, false, "normalizer: Lowercase"},
		{"NFKC normalizer", map[string]string{"normalizer": `{"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}`}, nil, false, "normalizer: NFKC"},
		{"no normalizer", map[string]string{"normalizer": "null"}, nil, false, "spaces are not replaced"},
		{"other prepend", map[string]string{"normalizer": `{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"_"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}`}, nil, false, `Prepend "_"`},
		{"other replace", map[string]string{"normalizer": `{"type":"Replace","pattern":{"String":" "},"content":"_"}`}, nil, false, "a Replace other than"},
		{"continuing subword prefix", nil, map[string]string{"continuing_subword_prefix": `"##"`, "merges": "[]"}, false, "continuing_subword_prefix"},
		{"end of word suffix", nil, map[string]string{"end_of_word_suffix": `"</w>"`}, false, "end_of_word_suffix"},
		{"ignore merges", nil, map[string]string{"ignore_merges": "true"}, false, "ignore_merges"},
		{"byte-level decoder", map[string]string{"decoder": `{"type":"ByteLevel"}`}, nil, false, "decoder: ByteLevel"},
		{"stripping added token", map[string]string{"added_tokens": `[{"id":1,"content":"<s>","special":true,"lstrip":true}]`}, nil, false, `added token "<s>" (id 1) strips whitespace`},
		{"normalized added token", map[string]string{"added_tokens": `[{"id":264,"content":"ab","normalized":true}]`}, nil, false, `added token "ab" (id 264) is matched in the normalized text`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHF(spmJSON(t, tc.edits, tc.model), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = h.SentencePieceBPE()
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrNotSentencePieceBPE) != tc.notThisKind {
				t.Fatalf("err = %v, want one containing %q (ErrNotSentencePieceBPE: %v)", err, tc.want, tc.notThisKind)
			}
			t.Log(err)
		})
	}
}
