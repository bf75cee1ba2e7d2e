package gguf

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

// fixtures is ../shared/fixtures seen from this package.
var fixtures = filepath.Join("..", "..", "..", "shared", "fixtures")

// tokrefDir holds the transformers.js ids of core/tokenizer's reference test.
var tokrefDir = filepath.Join("..", "..", "core", "tokenizer", "testdata", "tokref")

func readGzipJSON(t *testing.T, path string, v any) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := json.NewDecoder(z).Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestBPEGGUFRoundTrip writes each byte-level BPE fixture tokenizer.json as
// GGUF metadata, reads it back, and checks its ids on every text of
// core/tokenizer's reference set, with and without special tokens, equal
// those transformers.js computed from the tokenizer.json. The GGUF
// tokenizer written back as a tokenizer.json must give them too.
func TestBPEGGUFRoundTrip(t *testing.T) {
	var texts []struct {
		Set  string `json:"set"`
		Text string `json:"text"`
	}
	readGzipJSON(t, filepath.Join(tokrefDir, "texts.json.gz"), &texts)
	for _, tc := range []struct{ name, dir, pre string }{
		{"llama3", "tokenizers/llama3", "llama-bpe"},
		{"qwen3", "tokenizers/qwen3", "qwen2"},
		{"gpt2", "peft-lora-gpt2-smartreview/gpt2-tokenizer", "gpt-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(fixtures, tc.dir, "tokenizer.json")
			if _, err := os.Stat(file); err != nil {
				t.Skipf("fixture %s not available (%v); it lives in ../shared/fixtures next to the repository", file, err)
			}
			var ref struct {
				IDs     [][]int `json:"ids"`
				Special [][]int `json:"special"`
			}
			readGzipJSON(t, filepath.Join(tokrefDir, tc.name+".json.gz"), &ref)
			h, err := tokenizer.LoadHF(file, nil)
			if err != nil {
				t.Fatal(err)
			}
			parts, err := h.ByteLevelBPE()
			if err != nil {
				t.Fatal(err)
			}
			kvs, err := BPEMetadata(parts, 0)
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
			if pre, _ := f.String("tokenizer.ggml.pre"); pre != tc.pre {
				t.Errorf("tokenizer.ggml.pre = %q, want %q", pre, tc.pre)
			}
			tok, err := Tokenizer(f)
			if err != nil {
				t.Fatal(err)
			}
			g := tok.(*tokenizer.HF)
			if g.VocabSize() != h.VocabSize() || g.AddsBOS() != h.AddsBOS() || g.AddsEOS() != h.AddsEOS() {
				t.Errorf("vocab %d adds bos %v eos %v; tokenizer.json: %d %v %v", g.VocabSize(), g.AddsBOS(), g.AddsEOS(), h.VocabSize(), h.AddsBOS(), h.AddsEOS())
			}
			back, err := tokenizer.MarshalByteLevelBPE(mustParts(t, g))
			if err != nil {
				t.Fatal(err)
			}
			j, err := tokenizer.ParseHF(back, nil)
			if err != nil {
				t.Fatalf("tokenizer.json written from GGUF: %v", err)
			}
			bad := 0
			for i, x := range texts {
				for _, c := range []struct {
					name    string
					tok     *tokenizer.HF
					special bool
					want    []int
				}{{"GGUF", g, false, ref.IDs[i]}, {"GGUF", g, true, ref.Special[i]}, {"tokenizer.json from GGUF", j, false, ref.IDs[i]}} {
					if c.want == nil {
						continue
					}
					if got := c.tok.Encode(x.Text, c.special); !slices.Equal(got, c.want) {
						if bad++; bad <= 5 {
							t.Errorf("%s, special %v, %s text %d %q:\n got %v\nwant %v", c.name, c.special, x.Set, i, x.Text, got, c.want)
						}
					}
				}
				if d, want := g.Decode(ref.IDs[i]), h.Decode(ref.IDs[i]); d != want {
					if bad++; bad <= 5 {
						t.Errorf("Decode of text %d: %q, tokenizer.json %q", i, d, want)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d differences over %d texts", bad, len(texts))
			}
			t.Logf("%d texts: GGUF ids equal transformers.js's, with and without special tokens", len(texts))
		})
	}
}

func mustParts(t *testing.T, h *tokenizer.HF) tokenizer.ByteLevelBPE {
	t.Helper()
	p, err := h.ByteLevelBPE()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// byteChars is GPT-2's bytes_to_unicode: the character each byte is
// spelled with in a byte-level vocabulary.
func byteChars() []string {
	out := make([]string, 256)
	n := 0
	for b := range 256 {
		if '!' <= b && b <= '~' || 0xA1 <= b && b <= 0xAC || 0xAE <= b && b <= 0xFF {
			out[b] = string(rune(b))
		} else {
			out[b] = string(rune(256 + n))
			n++
		}
	}
	return out
}

// tinyBPE is the metadata of a small byte-level BPE: the 256 byte tokens,
// a few merges, a control token and a user-defined one.
func tinyBPE(pre string) []testKV {
	tokens := byteChars()
	merges := []string{"Ġ t", "h e", "Ġt he", "1 2"}
	tokens = append(tokens, "Ġt", "he", "Ġthe", "12", "<|eot|>", "<tool>")
	types := make([]int32, len(tokens))
	for i := range types {
		types[i] = TokenNormal
	}
	types[len(types)-2], types[len(types)-1] = TokenControl, TokenUserDefined
	return []testKV{
		{"tokenizer.ggml.model", "gpt2"},
		{"tokenizer.ggml.pre", pre},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.merges", merges},
		{"tokenizer.ggml.bos_token_id", uint32(len(tokens) - 2)},
		{"tokenizer.ggml.eos_token_id", uint32(len(tokens) - 2)},
		{"tokenizer.ggml.add_bos_token", true},
	}
}

func withKV(kvs []testKV, key string, val any) []testKV {
	out := []testKV{}
	for _, kv := range kvs {
		if kv.key != key {
			out = append(out, kv)
		}
	}
	if val != nil {
		out = append(out, testKV{key, val})
	}
	return out
}

// TestBPETokenizer reads small byte-level BPE vocabularies: every
// pre-tokenizer name surgeon knows builds, special and user-defined tokens
// are matched in the text, and malformed metadata is a clear error.
func TestBPETokenizer(t *testing.T) {
	for _, name := range PreTokenizerNames() {
		t.Run("pre "+name, func(t *testing.T) {
			f, err := Parse(testFile{kvs: tinyBPE(name)}.bytes())
			if err != nil {
				t.Fatal(err)
			}
			tok, err := Tokenizer(f)
			if err != nil {
				t.Fatal(err)
			}
			ids := tok.Encode(" the<|eot|>x<tool>", true)
			eot, tool := tok.VocabSize()-2, tok.VocabSize()-1
			want := []int{eot, 258, eot, 'x', tool}
			if !slices.Equal(ids, want) {
				t.Errorf("Encode = %v, want %v", ids, want)
			}
			if d := tok.Decode(ids); d != " thex<tool>" {
				t.Errorf("Decode = %q", d)
			}
		})
	}
	t.Run("digits", func(t *testing.T) {
		// gpt-2 keeps " 1234" whole and merges "12"; smollm splits every
		// digit; llama-bpe takes three at a time.
		for pre, want := range map[string][]int{
			"gpt-2":     {32, 259, '3', '4'},
			"smollm":    {32, '1', '2', '3', '4'},
			"llama-bpe": {32, 259, '3', '4'},
			"qwen2":     {32, '1', '2', '3', '4'},
		} {
			f, err := Parse(testFile{kvs: tinyBPE(pre)}.bytes())
			if err != nil {
				t.Fatal(err)
			}
			tok, err := Tokenizer(f)
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Encode(" 1234", false); !slices.Equal(got, want) {
				t.Errorf("%s: Encode(\" 1234\") = %v, want %v", pre, got, want)
			}
		}
	})
	for _, tc := range []struct {
		name string
		kvs  []testKV
		want string
		is   error
	}{
		{"unknown pre", withKV(tinyBPE("x"), "tokenizer.ggml.pre", "kimi-k2"), `"kimi-k2"`, ErrUnknownPreTokenizer},
		{"no vocab", []testKV{{"tokenizer.ggml.model", "none"}}, `"none"`, ErrNoVocab},
		{"unknown model", []testKV{{"tokenizer.ggml.model", "rwkv"}}, `"gpt2" (byte-level BPE)`, nil},
		{"no merges", withKV(tinyBPE("gpt-2"), "tokenizer.ggml.merges", nil), "merges is missing", nil},
		{"merge without space", withKV(tinyBPE("gpt-2"), "tokenizer.ggml.merges", []string{"Ġt"}), "merges[0]", nil},
		{"merge of unknown tokens", withKV(tinyBPE("gpt-2"), "tokenizer.ggml.merges", []string{"x yz"}), "not in the vocabulary", nil},
		{"bos out of range", withKV(tinyBPE("gpt-2"), "tokenizer.ggml.bos_token_id", uint32(9999)), "outside the vocabulary", nil},
		{"short token types", withKV(tinyBPE("gpt-2"), "tokenizer.ggml.token_type", []int32{1, 1}), "2 entries", nil},
		{"empty token", withKV(tinyBPE("gpt-2"), "tokenizer.ggml.tokens", []string{"a", ""}), "is empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(testFile{kvs: tc.kvs}.bytes())
			if err != nil {
				t.Fatal(err)
			}
			_, err = Tokenizer(f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
		})
	}
	t.Run("unknown pre lists the known", func(t *testing.T) {
		f, _ := Parse(testFile{kvs: withKV(tinyBPE("x"), "tokenizer.ggml.pre", "kimi-k2")}.bytes())
		_, err := Tokenizer(f)
		for _, n := range []string{"gpt-2", "llama-bpe", "qwen2", "smollm", "deepseek-llm", "default"} {
			if !strings.Contains(fmt.Sprint(err), n) {
				t.Errorf("error %v does not list %q", err, n)
			}
		}
	})
}

// TestPreTokenizerName recognises tokenizer.json pre-tokenizers as
// llama.cpp's names, and refuses those llama.cpp cannot reproduce.
func TestPreTokenizerName(t *testing.T) {
	split := func(re string) string {
		b, _ := json.Marshal(re)
		return `{"type":"Split","pattern":{"Regex":` + string(b) + `},"behavior":"Isolated","invert":false}`
	}
	bl := func(regex bool) string {
		return fmt.Sprintf(`{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":%v}`, regex)
	}
	seq := func(steps ...string) string {
		return `{"type":"Sequence","pretokenizers":[` + strings.Join(steps, ",") + `]}`
	}
	for _, tc := range []struct {
		name, norm, pre string
		ignore          bool
		want            string // name, or "error: ..." text
	}{
		{"gpt-2", "", bl(true), false, "gpt-2"},
		{"llama 3", "null", seq(split(llama3Split), bl(false)), true, "llama-bpe"},
		{"llama 3 cl100k spelling", "", seq(split(cl100kSplit), bl(false)), true, "llama-bpe"},
		{"llama 3 merging", "", seq(split(llama3Split), bl(false)), false, "smaug-bpe"},
		{"qwen 2", `{"type": "NFC"}`, seq(split(qwen2Split), bl(false)), false, "qwen2"},
		{"qwen pattern without NFC", "", seq(split(qwen2Split), bl(false)), false, "stablelm2"},
		{"smollm", "", seq(`{"type":"Digits","individual_digits":true}`, bl(true)), false, "smollm"},
		{"gpt-4o", "", seq(split(gpt4oSplit), bl(false)), false, "gpt-4o"},
		{"tekken", "", seq(split(tekkenSplit), bl(false)), true, "tekken"},
		{"deepseek-coder", "", seq(split(`[\r\n]`), split(`\s?\p{L}+`), split(`\s?\p{P}+`), split("[一-龥\u0800-一가-\ud7ff]+"), `{"type":"Digits","individual_digits":true}`, bl(false)), false, "deepseek-coder"},
		{"unknown regex", "", seq(split(`\w+`), bl(false)), false, "error: no llama.cpp pre-tokenizer"},
		{"prefix space", "", `{"type":"ByteLevel","add_prefix_space":true,"use_regex":true}`, false, "error: add_prefix_space"},
		{"whitespace", "", seq(`{"type":"Whitespace"}`, bl(false)), false, "error: Whitespace"},
		{"no byte level", "", split(gpt2Split), false, "error: last step"},
		{"lowercase normalizer", `{"type":"Lowercase"}`, bl(true), false, "error: no normalizer"},
		{"none", "", "null", false, "error: no pre-tokenizer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PreTokenizerName(json.RawMessage(tc.norm), json.RawMessage(tc.pre), tc.ignore)
			if want, isErr := strings.CutPrefix(tc.want, "error: "); isErr {
				if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrUnknownPreTokenizer) {
					t.Fatalf("got %q, %v; want an ErrUnknownPreTokenizer with %q", got, err, want)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestWordPieceTokenizer reads a "bert" vocabulary in llama.cpp's
// phantom-space spelling.
func TestWordPieceTokenizer(t *testing.T) {
	kvs := []testKV{
		{"tokenizer.ggml.model", "bert"},
		{"tokenizer.ggml.tokens", []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "▁hello", "▁world", "s", "▁!"}},
	}
	f, err := Parse(testFile{kvs: kvs}.bytes())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Tokenizer(f)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.Encode("Hello worlds!", true), []int{2, 5, 6, 7, 8, 3}; !slices.Equal(got, want) {
		t.Fatalf("Encode = %v, want %v", got, want)
	}
}

// FuzzBPETokenizer checks that no tokenizer.ggml.* metadata makes the
// byte-level BPE reader panic, and that an accepted tokenizer encodes any
// text into ids inside its vocabulary.
func FuzzBPETokenizer(f *testing.F) {
	f.Add("a\x00b\x00ab\x00<s>", "a b", []byte{1, 1, 1, 3}, "gpt-2", uint32(3), true, "ab<s>ba é")
	f.Add("Ġ\x00t\x00Ġt", "Ġ t\nĠt t\n t", []byte{1, 1, 1}, "llama-bpe", uint32(7), false, " t t")
	f.Add("1\x002\x0012", "1 2", []byte{4, 5, 6}, "smollm", uint32(0xFFFFFFFF), true, "1212 12")
	f.Add("x", "", []byte{}, "deepseek-llm", uint32(0), true, "\r\n x")
	f.Add("x\x00y", "x y\nx", []byte{2, 3}, "qwen2", uint32(1), true, "xyx")
	f.Add("A\x00b\x00Ab", "A b", []byte{1, 1, 4}, "gpt-4o", uint32(2), true, "AbAb's  \n\n x")
	f.Add("1\x00\u0301\x00é", "", []byte{1, 1}, "qwen35", uint32(0), false, "e\u0301 1")
	f.Fuzz(func(t *testing.T, tokens, merges string, types []byte, pre string, bos uint32, addBOS bool, text string) {
		kvs := []testKV{
			{"tokenizer.ggml.model", "gpt2"},
			{"tokenizer.ggml.pre", pre},
			{"tokenizer.ggml.tokens", strings.Split(tokens, "\x00")},
			{"tokenizer.ggml.merges", strings.Split(merges, "\n")},
			{"tokenizer.ggml.bos_token_id", bos},
			{"tokenizer.ggml.add_bos_token", addBOS},
		}
		if len(types) > 0 {
			ts := make([]int32, len(types))
			for i, b := range types {
				ts[i] = int32(b % 8)
			}
			kvs = append(kvs, testKV{"tokenizer.ggml.token_type", ts})
		}
		file, err := Parse(testFile{kvs: kvs}.bytes())
		if err != nil {
			t.Fatal(err)
		}
		tok, err := Tokenizer(file)
		if err != nil {
			return
		}
		for _, id := range tok.Encode(text, true) {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("id %d outside the vocabulary of %d", id, tok.VocabSize())
			}
		}
		_ = tok.Decode([]int{0, -1, tok.VocabSize(), 1 << 30})
	})
}

// TestBPEMetadata writes the parts of a small byte-level BPE as llama.cpp's
// converter does: padding, token types, the post-processor as add_bos /
// add_eos, and refusals.
func TestBPEMetadata(t *testing.T) {
	base := func() tokenizer.ByteLevelBPE {
		tokens := append(byteChars(), "Ġt", "", "<|eot|>", "<tool>", "<s>")
		return tokenizer.ByteLevelBPE{
			Tokens:       tokens,
			Merges:       [][2]string{{"Ġ", "t"}},
			PreTokenizer: json.RawMessage(`{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}`),
			Added: []tokenizer.AddedToken{
				{ID: 258, Content: "<|eot|>"},
				{ID: 259, Content: "<tool>"},
				{ID: 260, Content: "<s>", Special: true},
			},
			BOS: 260, EOS: 258, Pad: -1,
			Prefix: []int{260},
		}
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
		kvs, err := BPEMetadata(base(), 264)
		if err != nil {
			t.Fatal(err)
		}
		tokens := get(kvs, "tokenizer.ggml.tokens").([]string)
		types := get(kvs, "tokenizer.ggml.token_type").([]int32)
		if len(tokens) != 264 || tokens[257] != "[PAD257]" || tokens[263] != "[PAD263]" {
			t.Fatalf("tokens %d: %q", len(tokens), tokens[255:])
		}
		want := []int32{TokenNormal, TokenUnused, TokenControl, TokenUserDefined, TokenControl, TokenUnused}
		if !slices.Equal(types[256:262], want) {
			t.Errorf("types %v, want %v", types[256:262], want)
		}
		if get(kvs, "tokenizer.ggml.pre") != "gpt-2" || get(kvs, "tokenizer.ggml.add_bos_token") != true ||
			get(kvs, "tokenizer.ggml.add_eos_token") != false || get(kvs, "tokenizer.ggml.bos_token_id") != uint32(260) ||
			get(kvs, "tokenizer.ggml.padding_token_id") != nil {
			t.Errorf("metadata %v", kvs[:2])
		}
		if m := get(kvs, "tokenizer.ggml.merges").([]string); !slices.Equal(m, []string{"Ġ t"}) {
			t.Errorf("merges %q", m)
		}
	})
	for _, tc := range []struct {
		name  string
		edit  func(*tokenizer.ByteLevelBPE)
		vocab int
		want  string
	}{
		{"vocabulary too small", func(*tokenizer.ByteLevelBPE) {}, 100, "only 100 rows"},
		{"two-token template", func(p *tokenizer.ByteLevelBPE) { p.Prefix = []int{260, 258} }, 0, "GGUF can say only"},
		{"merge with a space", func(p *tokenizer.ByteLevelBPE) { p.Merges = [][2]string{{"a b", "c"}} }, 0, "separated by a space"},
		{"pre-tokenizer", func(p *tokenizer.ByteLevelBPE) { p.PreTokenizer = json.RawMessage(`{"type":"Whitespace"}`) }, 0, "Whitespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.edit(&p)
			if _, err := BPEMetadata(p, tc.vocab); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
