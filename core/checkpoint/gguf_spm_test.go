package checkpoint

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

// spmSurgeonDifferences are the reference texts on which surgeon's
// SentencePiece tokenizer read from the GGUF file written for Llama 2's
// tokenizer.json departs from transformers.js, with the reason.
var spmSurgeonDifferences = map[int]string{
	53: "tokenizer.SPM reads special-token text (<s>, </s>, <unk>) as characters; Hugging Face and llama.cpp match it as the special token",
}

// A Llama folder whose only tokenizer is Llama 2's tokenizer.json (BPE
// with byte fallback, "▁" for spaces) converts to GGUF with a "llama"
// vocabulary; the tokenizer read back gives transformers.js's ids on the
// reference texts, with and without BOS (which the file says is added),
// but for special-token text (spmSurgeonDifferences).
func TestSaveGGUFSentencePieceBPE(t *testing.T) {
	var texts []tokrefText
	readTokref(t, "texts", &texts)
	var ref struct {
		IDs     [][]int `json:"ids"`
		Special [][]int `json:"special"`
	}
	readTokref(t, "llama2", &ref)
	path := ggufOfFixture(t, "tokenizers/llama2")
	l, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if m, _ := l.GGUF.String("tokenizer.ggml.model"); m != "llama" {
		t.Errorf("tokenizer.ggml.model = %q, want llama", m)
	}
	tok, err := LoadTokenizer(path, l)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := tok.(*tokenizer.SPM)
	if !ok {
		t.Fatalf("tokenizer %T, want *tokenizer.SPM", tok)
	}
	if sp := SpecialTokens(path, l, tok); !sp.BOS || sp.EOS {
		t.Errorf("special tokens %+v, want BOS and no EOS", sp)
	}
	if s.VocabSize() != 32000 || s.BOS() != 1 || s.EOS() != 2 || s.UNK() != 0 {
		t.Errorf("vocab %d bos %d eos %d unk %d", s.VocabSize(), s.BOS(), s.EOS(), s.UNK())
	}
	equal := 0
	for i, x := range texts {
		same := true
		for _, c := range []struct {
			bos  bool
			want []int
		}{{false, ref.IDs[i]}, {true, ref.Special[i]}} {
			if c.want != nil && !slices.Equal(s.Encode(x.Text, c.bos), c.want) {
				same = false
			}
		}
		if same {
			equal++
		}
		why, known := spmSurgeonDifferences[i]
		switch {
		case !same && !known:
			t.Errorf("%s text %d %q:\n got %v\nwant %v", x.Set, i, x.Text, s.Encode(x.Text, false), ref.IDs[i])
		case same && known:
			t.Errorf("text %d %q: listed as a difference (%s) but surgeon now agrees", i, x.Text, why)
		}
	}
	t.Logf("%d of %d texts: ids equal transformers.js's, with and without BOS", equal, len(texts))
}

// llamaCppSPMDifferences are the reference texts on which llama.cpp's
// tokenization of the GGUF file written for Llama 2's tokenizer.json
// departs from transformers.js, with the reason.
var llamaCppSPMDifferences = map[int]string{}

// llama.cpp (node-llama-cpp) tokenizes the reference texts with the GGUF
// file written for Llama 2's tokenizer.json into transformers.js's ids
// (special tokens in the text parsed), except llamaCppSPMDifferences.
func TestLlamaCppTokenizeSentencePieceBPE(t *testing.T) {
	llamaCppTokenizeScript(t)
	var texts []tokrefText
	readTokref(t, "texts", &texts)
	var ref struct {
		IDs [][]int `json:"ids"`
	}
	readTokref(t, "llama2", &ref)
	path := ggufOfFixture(t, "tokenizers/llama2")
	theirs := llamaCppTokenize(t, textList(texts), path)[0]
	equal := 0
	for i, x := range texts {
		same := slices.Equal(theirs[i], ref.IDs[i])
		if same {
			equal++
		}
		why, known := llamaCppSPMDifferences[i]
		switch {
		case !same && !known:
			t.Errorf("%s text %d %q:\n llama.cpp       %v\n transformers.js %v", x.Set, i, x.Text, theirs[i], ref.IDs[i])
		case !same:
			t.Logf("known llama.cpp difference, text %d %q: %s", i, x.Text, why)
		case known:
			t.Errorf("text %d %q: listed as a llama.cpp difference (%s) but llama.cpp now agrees", i, x.Text, why)
		}
	}
	t.Logf("%d of %d texts: llama.cpp's ids equal transformers.js's", equal, len(texts))
}

// A tokenizer.json of the SentencePiece kind that GGUF's "llama"
// vocabulary cannot reproduce is refused when converting, with one line
// naming tokenizer.json and the reason; one of no kind GGUF holds says
// why it is not a byte-level BPE.
func TestSaveGGUFRefusesSentencePieceBPE(t *testing.T) {
	dir := tinyLlamaWithTokenizer(t, "tokenizers/llama2")
	file := filepath.Join(dir, TokenizerJSONFile)
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// movedMerge moves the second of the first two consecutive merges
	// making the same piece to the end.
	movedMerge := func(merges []string) []string {
		for i := 0; i+1 < len(merges); i++ {
			if strings.ReplaceAll(merges[i], " ", "") == strings.ReplaceAll(merges[i+1], " ", "") {
				m := merges[i+1]
				return append(slices.Delete(slices.Clone(merges), i+1, i+2), m)
			}
		}
		t.Fatal("no piece has two merges")
		return nil
	}
	for _, tc := range []struct {
		name string
		edit func(top, model map[string]json.RawMessage, merges []string) []string
		want string
	}{
		{"Metaspace pre-tokenizer", func(top, _ map[string]json.RawMessage, m []string) []string {
			top["pre_tokenizer"] = json.RawMessage(`{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false}`)
			return m
		}, "SentencePiece-style BPE: pre_tokenizer Metaspace: SentencePiece encodes the normalized text whole"},
		{"lowercasing normalizer", func(top, _ map[string]json.RawMessage, m []string) []string {
			top["normalizer"] = json.RawMessage(`{"type":"Sequence","normalizers":[{"type":"Lowercase"},{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}`)
			return m
		}, "SentencePiece-style BPE: normalizer: Lowercase"},
		{"end-of-word suffix", func(_, model map[string]json.RawMessage, m []string) []string {
			model["end_of_word_suffix"] = json.RawMessage(`"</w>"`)
			return m
		}, `end_of_word_suffix "</w>" has no SentencePiece equivalent`},
		{"stripping special token", func(top, _ map[string]json.RawMessage, m []string) []string {
			top["added_tokens"] = json.RawMessage(`[{"id":1,"content":"<s>","special":true,"lstrip":true,"rstrip":false,"single_word":false,"normalized":false}]`)
			return m
		}, `added token "<s>" (id 1) strips whitespace`},
		{"merge missing", func(_, _ map[string]json.RawMessage, m []string) []string {
			return m[1:] // "▁ t"
		}, `token 261 "▁t": SentencePiece would join "▁" and "t" into it, and no merge does`},
		{"merges of a piece apart", func(_, _ map[string]json.RawMessage, m []string) []string {
			return movedMerge(m)
		}, "with other merges between: one SentencePiece score per piece cannot order them"},
		{"merged piece not in the vocabulary", func(_, _ map[string]json.RawMessage, m []string) []string {
			return append(m, "▁t ▁t")
		}, `"▁t" + "▁t": token not in the vocabulary`},
		{"no byte fallback", func(_, model map[string]json.RawMessage, m []string) []string {
			model["byte_fallback"] = json.RawMessage(`false`)
			return m
		}, "not a byte-level BPE tokenizer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var top, model map[string]json.RawMessage
			var merges []string
			if err := json.Unmarshal(orig, &top); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(top["model"], &model); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(model["merges"], &merges); err != nil {
				t.Fatal(err)
			}
			merges = tc.edit(top, model, merges)
			var err error
			if model["merges"], err = json.Marshal(merges); err != nil {
				t.Fatal(err)
			}
			if top["model"], err = json.Marshal(model); err != nil {
				t.Fatal(err)
			}
			edited, err := json.Marshal(top)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, edited, 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := Load(dir)
			if err == nil {
				err = SaveGGUF(filepath.Join(t.TempDir(), "x.gguf"), l, "f32")
				l.Close()
			}
			if err == nil || !strings.Contains(err.Error(), TokenizerJSONFile) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line naming %s and containing %q", err, TokenizerJSONFile, tc.want)
			}
			t.Log(err)
		})
	}
}
