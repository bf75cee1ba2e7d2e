package gguf

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

// encodeParsingSpecial encodes text as llama.cpp does with special tokens
// parsed: the control and unknown tokens written in the text are matched
// first (leftmost, longest), and each stretch of text between them is
// encoded on its own, with its own dummy prefix. tokenizer.SPM itself
// reads such text as ordinary characters.
func encodeParsingSpecial(s *tokenizer.SPM, text string, addBOS bool) []int {
	var specials []int
	for id := range s.VocabSize() {
		if t := s.Type(id); t == tokenizer.TypeControl || t == tokenizer.TypeUnknown {
			specials = append(specials, id)
		}
	}
	var out []int
	if addBOS && s.BOS() >= 0 {
		out = append(out, s.BOS())
	}
	start := 0
	for i := 0; i < len(text); {
		best := -1
		for _, id := range specials {
			if p := s.Piece(id); strings.HasPrefix(text[i:], p) && (best < 0 || len(p) > len(s.Piece(best))) {
				best = id
			}
		}
		if best < 0 {
			i++
			continue
		}
		out = append(out, s.Encode(text[start:i], false)...)
		out = append(out, best)
		i += len(s.Piece(best))
		start = i
	}
	return append(out, s.Encode(text[start:], false)...)
}

// TestSentencePieceGGUFRoundTrip writes the Llama 2 tokenizer.json (BPE
// with byte fallback) as a GGUF "llama" vocabulary, reads it back as
// surgeon's SentencePiece tokenizer, and checks its ids on every text of
// core/tokenizer's reference set, with and without BOS, equal those
// transformers.js computed from the tokenizer.json, and its decoding the
// tokenizer.json's (but for the unknown token). tokenizer.SPM reads special-token text such as "<s>"
// as characters: the texts that hold some are checked with the special
// tokens split out first, as llama.cpp does.
func TestSentencePieceGGUFRoundTrip(t *testing.T) {
	var texts []struct {
		Set  string `json:"set"`
		Text string `json:"text"`
	}
	readGzipJSON(t, filepath.Join(tokrefDir, "texts.json.gz"), &texts)
	file := filepath.Join(fixtures, "tokenizers", "llama2", "tokenizer.json")
	if _, err := os.Stat(file); err != nil {
		t.Skipf("fixture %s not available (%v); it lives in ../shared/fixtures next to the repository", file, err)
	}
	var ref struct {
		IDs     [][]int `json:"ids"`
		Special [][]int `json:"special"`
	}
	readGzipJSON(t, filepath.Join(tokrefDir, "llama2.json.gz"), &ref)
	h, err := tokenizer.LoadHF(file, &tokenizer.HFConfig{BOS: "<s>", EOS: "</s>"}) // tokenizer_config.json's
	if err != nil {
		t.Fatal(err)
	}
	parts, err := h.SentencePieceBPE()
	if err != nil {
		t.Fatal(err)
	}
	kvs, err := SentencePieceMetadata(parts, 0)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tok.gguf")
	if err := Write(path, kvs, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for key, want := range map[string]any{
		"tokenizer.ggml.model":            "llama",
		"tokenizer.ggml.add_bos_token":    true,
		"tokenizer.ggml.add_eos_token":    false,
		"tokenizer.ggml.add_space_prefix": true,
		"tokenizer.ggml.bos_token_id":     uint64(1),
		"tokenizer.ggml.eos_token_id":     uint64(2),
		"tokenizer.ggml.unknown_token_id": uint64(0),
	} {
		v, err := f.Value(key)
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		got := any(nil)
		switch want.(type) {
		case string:
			got, _ = v.AsString()
		case bool:
			got, _ = v.AsBool()
		case uint64:
			x, _ := v.AsInt()
			got = uint64(x)
		}
		if got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	tok, err := Tokenizer(f)
	if err != nil {
		t.Fatal(err)
	}
	s := tok.(*tokenizer.SPM)
	if s.VocabSize() != h.VocabSize() {
		t.Errorf("%d tokens, tokenizer.json %d", s.VocabSize(), h.VocabSize())
	}
	for _, c := range []struct {
		id, typ int
		score   float32
	}{
		{0, tokenizer.TypeUnknown, 0}, {1, tokenizer.TypeControl, 0}, {2, tokenizer.TypeControl, 0},
		{3, tokenizer.TypeByte, 0}, {258, tokenizer.TypeByte, 0},
		{261, tokenizer.TypeNormal, 0},                             // "▁t", merge 0
		{262, tokenizer.TypeNormal, -1},                            // "in", merge 1
		{259, tokenizer.TypeNormal, -58876},                        // "▁▁", merge 58876
		{29871, tokenizer.TypeNormal, -float32(len(parts.Merges))}, // "▁", a character
	} {
		if s.Type(c.id) != c.typ || s.Score(c.id) != c.score {
			t.Errorf("token %d %q: type %d score %g, want %d %g", c.id, s.Piece(c.id), s.Type(c.id), s.Score(c.id), c.typ, c.score)
		}
	}
	bad, plain, parsed := 0, 0, 0
	for i, x := range texts {
		for _, c := range []struct {
			bos  bool
			want []int
		}{{false, ref.IDs[i]}, {true, ref.Special[i]}} {
			if c.want == nil {
				continue
			}
			got := s.Encode(x.Text, c.bos)
			if !c.bos && slices.Equal(got, c.want) {
				plain++
			}
			if !slices.Equal(got, c.want) {
				got = encodeParsingSpecial(s, x.Text, c.bos)
				if !c.bos && slices.Equal(got, c.want) {
					parsed++
				}
			}
			if !slices.Equal(got, c.want) {
				if bad++; bad <= 5 {
					t.Errorf("BOS %v, %s text %d %q:\n got %v\nwant %v", c.bos, x.Set, i, x.Text, got, c.want)
				}
			}
		}
		if slices.Contains(ref.IDs[i], s.UNK()) {
			continue // SentencePiece decodes it " ⁇ ", Hugging Face skips it as a special token
		}
		if d, want := s.Decode(ref.IDs[i]), h.Decode(ref.IDs[i]); d != want {
			if bad++; bad <= 5 {
				t.Errorf("Decode of text %d: %q, tokenizer.json %q", i, d, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d differences over %d texts", bad, len(texts))
	}
	t.Logf("%d of %d texts: GGUF ids equal transformers.js's as SPM.Encode gives them, %d more with the special tokens in the text split out first", plain, len(texts), parsed)
}

// TestSentencePieceMetadata writes a small SentencePiece-style BPE: scores
// from the merge ranks, token types, padding, the template as add_bos /
// add_eos, and refusals of what SentencePiece scores cannot reproduce.
func TestSentencePieceMetadata(t *testing.T) {
	base := func() tokenizer.SentencePieceBPE {
		p := tokenizer.SentencePieceBPE{
			Tokens: []string{"<unk>", "<s>", "</s>"},
			Unk:    0, BOS: 1, EOS: 2,
			Added: []tokenizer.AddedToken{
				{ID: 0, Content: "<unk>", Special: true},
				{ID: 1, Content: "<s>", Special: true},
				{ID: 2, Content: "</s>", Special: true},
				{ID: 266, Content: "<tool>"},
			},
			AddSpacePrefix: true,
			Prefix:         []int{1},
		}
		for b := range 256 {
			p.Bytes[b] = len(p.Tokens)
			p.Tokens = append(p.Tokens, fmt.Sprintf("<0x%02X>", b))
		}
		// 259 ▁, 260 a, 261 b, 262 ▁a, 263 ab, 264 ▁ab
		p.Tokens = append(p.Tokens, "▁", "a", "b", "▁a", "ab", "▁ab")
		p.Merges = [][2]string{{"▁", "a"}, {"a", "b"}, {"▁a", "b"}, {"▁", "ab"}}
		return p
	}
	get := func(kvs []KV, key string) any {
		for _, kv := range kvs {
			if kv.Key == key {
				return kv.Value
			}
		}
		return nil
	}
	t.Run("written", func(t *testing.T) {
		kvs, err := SentencePieceMetadata(base(), 268)
		if err != nil {
			t.Fatal(err)
		}
		tokens := get(kvs, "tokenizer.ggml.tokens").([]string)
		types := get(kvs, "tokenizer.ggml.token_type").([]int32)
		scores := get(kvs, "tokenizer.ggml.scores").([]float32)
		if len(tokens) != 268 || tokens[265] != "[PAD265]" || tokens[266] != "<tool>" || tokens[267] != "[PAD267]" || tokens[3] != "<0x00>" {
			t.Fatalf("tokens %d: %q", len(tokens), tokens[259:])
		}
		if want := []int32{TokenUnknown, TokenControl, TokenControl, TokenByte}; !slices.Equal(types[:4], want) {
			t.Errorf("types %v, want %v", types[:4], want)
		}
		if want := []int32{TokenNormal, TokenNormal, TokenNormal, TokenNormal, TokenNormal, TokenNormal, TokenUnused, TokenUserDefined, TokenUnused}; !slices.Equal(types[259:], want) {
			t.Errorf("types %v, want %v", types[259:], want)
		}
		if want := []float32{-4, -4, -4, 0, -1, -2, 0, 0, 0}; !slices.Equal(scores[259:], want) {
			t.Errorf("scores %v, want %v", scores[259:], want)
		}
		for key, want := range map[string]any{
			"tokenizer.ggml.model": "llama", "tokenizer.ggml.add_bos_token": true, "tokenizer.ggml.add_eos_token": false,
			"tokenizer.ggml.add_space_prefix": true, "tokenizer.ggml.bos_token_id": uint32(1),
			"tokenizer.ggml.eos_token_id": uint32(2), "tokenizer.ggml.unknown_token_id": uint32(0),
		} {
			if got := get(kvs, key); got != want {
				t.Errorf("%s = %v, want %v", key, got, want)
			}
		}
		s, err := tokenizer.NewSPM(tokens, scores, types, 1, 2, 0)
		if err != nil {
			t.Fatal(err)
		}
		// ▁ a b: ▁a (rank 0) before ab (rank 1), then ▁a + b.
		if got := s.Encode("ab é", true); !slices.Equal(got, []int{1, 264, 259, 3 + 0xC3, 3 + 0xA9}) {
			t.Errorf("Encode = %v", got)
		}
	})
	for _, tc := range []struct {
		name  string
		edit  func(*tokenizer.SentencePieceBPE)
		vocab int
		want  string
	}{
		{"vocabulary too small", func(*tokenizer.SentencePieceBPE) {}, 200, "only 200 rows"},
		{"two-token template", func(p *tokenizer.SentencePieceBPE) { p.Prefix = []int{1, 1} }, 0, "GGUF can say only"},
		{"merged piece missing", func(p *tokenizer.SentencePieceBPE) { p.Merges = append(p.Merges, [2]string{"b", "a"}) }, 0, `merge 4: "b" + "a": a token not in the vocabulary`},
		{"merge of a byte token", func(p *tokenizer.SentencePieceBPE) {
			p.Tokens = append(p.Tokens, "<0x00>a")
			p.Merges = append(p.Merges, [2]string{"<0x00>", "a"})
		}, 0, `"<0x00>" is a byte token`},
		{"merge of a control token", func(p *tokenizer.SentencePieceBPE) {
			p.Tokens = append(p.Tokens, "<s>a")
			p.Merges = append(p.Merges, [2]string{"<s>", "a"})
		}, 0, `"<s>" is a control token`},
		{"merges of a piece apart", func(p *tokenizer.SentencePieceBPE) {
			p.Merges = [][2]string{{"▁", "a"}, {"▁a", "b"}, {"a", "b"}, {"▁", "ab"}}
		}, 0, `makes "▁ab", as merge 1 does, with other merges between`},
		{"split no merge joins", func(p *tokenizer.SentencePieceBPE) { p.Merges = p.Merges[:3] }, 0, `SentencePiece would join "▁" and "ab" into it, and no merge does`},
		{"piece of an unknown character", func(p *tokenizer.SentencePieceBPE) { p.Tokens = append(p.Tokens, "éa") }, 0, `would join "é" and "a"`},
		{"added token renamed", func(p *tokenizer.SentencePieceBPE) { p.Added[1].Content = "<bos>" }, 0, `added token "<bos>" has id 1, which the model's vocabulary gives to "<s>"`},
		{"duplicate token", func(p *tokenizer.SentencePieceBPE) { p.Added[3].Content = "ab" }, 0, `token "ab" has ids 263 and 266`},
		{"byte token missing", func(p *tokenizer.SentencePieceBPE) { p.Tokens[3+0x41] = "" }, 0, "byte token id 68 is not a token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.edit(&p)
			if _, err := SentencePieceMetadata(p, tc.vocab); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
