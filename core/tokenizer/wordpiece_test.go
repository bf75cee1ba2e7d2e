package tokenizer

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var bertSpecials = []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}

// newWP builds a WordPiece from BERT's special tokens (ids 0-4) and toks.
func newWP(t testing.TB, lower bool, toks ...string) *WordPiece {
	t.Helper()
	w, err := NewWordPiece(append(append([]string(nil), bertSpecials...), toks...), lower)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// classicVocab is the example vocabulary of BERT's and transformers'
// tokenizer tests.
func classicVocab(t testing.TB, lower bool) *WordPiece {
	return newWP(t, lower, "want", "##want", "##ed", "wa", "un", "runn", "##ing", ",", "low", "lowest", "##aff", "##able")
}

func TestWordPieceHelloWorld(t *testing.T) {
	w := newWP(t, true, "hello", ",", "world", "!")
	got := w.Encode("Hello, world!", true)
	if want := []int{2, 5, 6, 7, 8, 3}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Encode = %v, want %v", got, want)
	}
	if got, want := w.Tokenize("Hello, world!"), []string{"hello", ",", "world", "!"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Tokenize = %q, want %q", got, want)
	}
	if got := w.Encode("Hello, world!", false); !reflect.DeepEqual(got, []int{5, 6, 7, 8}) {
		t.Fatalf("Encode without markers = %v", got)
	}
	if got := w.Decode(w.Encode("Hello, world!", true)); got != "hello, world!" {
		t.Fatalf("Decode = %q", got)
	}
	if w.BOS() != 2 || w.EOS() != 3 || w.Pad() != 0 || w.UNK() != 1 || w.Mask() != 4 || w.VocabSize() != 9 || !w.Lowercase() {
		t.Fatalf("BOS %d EOS %d Pad %d UNK %d Mask %d VocabSize %d", w.BOS(), w.EOS(), w.Pad(), w.UNK(), w.Mask(), w.VocabSize())
	}
	if got := w.Encode("", true); !reflect.DeepEqual(got, []int{2, 3}) {
		t.Fatalf("Encode(\"\", true) = %v", got)
	}
	if got := w.Encode(" \t\n", false); len(got) != 0 {
		t.Fatalf("Encode(spaces) = %v", got)
	}
}

func TestWordPieceClassic(t *testing.T) {
	w := classicVocab(t, true)
	cases := []struct{ text, want string }{
		{"unaffable", "un ##aff ##able"},
		{"unwanted running", "un ##want ##ed runn ##ing"},
		{"UNwant\u00E9d,running", "un ##want ##ed , runn ##ing"},
		{"unwantedX running", "[UNK] runn ##ing"},
		{"lowest", "lowest"},
		{"lowestx", "[UNK]"},
		{"", ""},
	}
	for _, c := range cases {
		if got := strings.Join(w.Tokenize(c.text), " "); got != c.want {
			t.Errorf("Tokenize(%q) = %q, want %q", c.text, got, c.want)
		}
	}
	if got := w.Decode(w.Encode("unaffable unwanted", true)); got != "unaffable unwanted" {
		t.Fatalf("Decode = %q", got)
	}
}

func TestWordPieceBasic(t *testing.T) {
	lower := newWP(t, true)
	cased := newWP(t, false)
	cases := []struct {
		name string
		w    *WordPiece
		text string
		want []string
	}{
		{"lower", lower, " \tHeLLo!how  \n Are yoU?  ", []string{"hello", "!", "how", "are", "you", "?"}},
		{"lower accent", lower, "H\u00E9llo", []string{"hello"}},
		{"lower strip accents", lower, " \tHäLLo!how  \n Are yoU?  ", []string{"hallo", "!", "how", "are", "you", "?"}},
		{"lower decomposed accent", lower, "Cafe\u0301", []string{"cafe"}},
		{"cased", cased, " \tHeLLo!how  \n Are yoU?  ", []string{"HeLLo", "!", "how", "Are", "yoU", "?"}},
		{"cased keeps accents", cased, "HäLLo!how", []string{"HäLLo", "!", "how"}},
		{"cased NFC", cased, "Cafe\u0301", []string{"Caf\u00e9"}},
		{"chinese", lower, "ah\u535A\u63A8zz", []string{"ah", "\u535A", "\u63A8", "zz"}},
		{"kana not split", cased, "ひらがな漢字", []string{"ひらがな", "漢", "字"}},
		{"kana voicing mark is an accent", lower, "ひらがな", []string{"ひらかな"}},
		{"control", lower, "a\u200bb\x00c\x7fd\ufffde\vf\x96g\u00adh", []string{"abcdefgh"}},
		{"invalid utf-8", cased, "a\xffb", []string{"ab"}},
		{"unicode spaces", lower, "a\u00a0b\u3000c\u2003d\u2028e", []string{"a", "b", "c", "d", "e"}},
		{"ascii punctuation", lower, "$5.00 a^b`c~d", []string{"$", "5", ".", "00", "a", "^", "b", "`", "c", "~", "d"}},
		{"unicode punctuation", lower, "¿Qué? «hi»—ok…", []string{"¿", "que", "?", "«", "hi", "»", "—", "ok", "…"}},
		{"symbols are not punctuation", cased, "5€ a+b", []string{"5€", "a", "+", "b"}},
		{"contraction", lower, "don't", []string{"don", "'", "t"}},
		// Python's str.lower, which BERT uses, writes a word-final capital
		// sigma as 'ς'.
		{"final sigma", lower, "ΟΔΟΣ ΟΔΟΣ. ΣΑΣ-ΣΑΣ Σ ΑΣ'Α ὈΔΥΣΣΕΎΣ", []string{"οδος", "οδος", ".", "σας", "-", "σας", "σ", "ασ", "'", "α", "οδυσσευς"}},
		{"lower special cases", lower, "İstanbul ǅemal ﬁne", []string{"istanbul", "ǆemal", "ﬁne"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.w.words(c.text); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("words(%q) = %q, want %q", c.text, got, c.want)
			}
		})
	}
}

func TestWordPieceUnknown(t *testing.T) {
	w := newWP(t, true, "a", "##a", "é", "##é", "the")
	cases := []struct {
		name string
		text string
		want []int
	}{
		{"unknown word", "the zebra", []int{9, 1}},
		{"unknown char", "a?a", []int{5, 1, 5}},
		{"100 chars", strings.Repeat("a", MaxWordChars), append([]int{5}, repeat(6, MaxWordChars-1)...)},
		{"101 chars", strings.Repeat("a", MaxWordChars+1) + " the", []int{1, 9}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := w.Encode(c.text, false); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Encode = %v, want %v", got, c.want)
			}
		})
	}
	// The limit counts characters, not bytes.
	cased := newWP(t, false, "é", "##é")
	if got := cased.Encode(strings.Repeat("é", MaxWordChars), false); len(got) != MaxWordChars || got[0] != 5 || got[1] != 6 {
		t.Fatalf("100 two-byte characters: %v", got)
	}
	if got := cased.Encode(strings.Repeat("é", MaxWordChars+1), false); !reflect.DeepEqual(got, []int{1}) {
		t.Fatalf("101 two-byte characters: %v", got)
	}
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestWordPieceCJK(t *testing.T) {
	w := newWP(t, true, "我", "爱", "你", "i", "love", "##s")
	if got, want := w.Tokenize("我爱你 I love你s"), []string{"我", "爱", "你", "i", "love", "你", "[UNK]"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Tokenize = %q, want %q", got, want)
	}
	// A word continued by "##" pieces cannot start with a CJK character:
	// "s" after "你" is a word of its own.
	if got := w.Decode(w.Encode("我爱你", true)); got != "我 爱 你" {
		t.Fatalf("Decode = %q", got)
	}
}

func TestWordPieceSpecialTokensInText(t *testing.T) {
	w := newWP(t, true, "hello", "world", "[", "]", "m", "##a", "##s", "##k")
	cases := []struct{ text, want string }{
		{"Hello [MASK] world[SEP]", "hello [MASK] world [SEP]"},
		{"[CLS][PAD][UNK]", "[CLS] [PAD] [UNK]"},
		{"[mask]", "[ m ##a ##s ##k ]"},
		{"[MAS", "[ m ##a ##s"},
		{"[MASK]s]", "[MASK] [UNK] ]"},
	}
	for _, c := range cases {
		if got := strings.Join(w.Tokenize(c.text), " "); got != c.want {
			t.Errorf("Tokenize(%q) = %q, want %q", c.text, got, c.want)
		}
	}
	noMask, err := NewWordPiece([]string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[", "mask", "]"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if noMask.Mask() != -1 {
		t.Fatalf("Mask = %d without [MASK]", noMask.Mask())
	}
	if got := strings.Join(noMask.Tokenize("[MASK]"), " "); got != "[ mask ]" {
		t.Fatalf("Tokenize([MASK]) without [MASK] = %q", got)
	}
}

func TestWordPieceDecode(t *testing.T) {
	w := newWP(t, true, "don", "'", "t", "it", "s", ".", ",", "?", "!", "##ing", "go", "n't")
	cases := []struct {
		ids  []int
		want string
	}{
		{nil, ""},
		{[]int{2, 0, 3}, ""},
		{[]int{2, 5, 6, 7, 3, 0, 0}, "don't"},
		{[]int{8, 6, 9, 10}, "it's."},
		{[]int{15, 14, 13, 12, 11}, "going!?,"},
		{[]int{14, 15}, "##ing go"},
		{[]int{15, 16}, "gon't"},
		{[]int{15, 1, 4, -1, 99}, "go [UNK] [MASK]"},
	}
	for _, c := range cases {
		if got := w.Decode(c.ids); got != c.want {
			t.Errorf("Decode(%v) = %q, want %q", c.ids, got, c.want)
		}
	}
}

func TestNewWordPieceErrors(t *testing.T) {
	if _, err := NewWordPiece(nil, true); err == nil || !strings.Contains(err.Error(), "empty vocabulary") {
		t.Fatalf("empty: %v", err)
	}
	for _, missing := range []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]"} {
		var vocab []string
		for _, s := range bertSpecials {
			if s != missing {
				vocab = append(vocab, s)
			}
		}
		_, err := NewWordPiece(append(vocab, "a"), true)
		if err == nil || !strings.Contains(err.Error(), "has no "+missing) {
			t.Errorf("without %s: %v", missing, err)
		}
	}
}

func TestWordPieceDuplicates(t *testing.T) {
	// As in transformers' load_vocab, a later duplicate wins, and the ids
	// keep their line numbers.
	w, err := NewWordPiece([]string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "", "a", "[UNK]"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Encode("a b", false); !reflect.DeepEqual(got, []int{6, 7}) {
		t.Fatalf("Encode = %v", got)
	}
	if w.UNK() != 7 || w.VocabSize() != 8 {
		t.Fatalf("UNK %d VocabSize %d", w.UNK(), w.VocabSize())
	}
	if id, ok := w.ID("a"); !ok || id != 6 {
		t.Fatalf("ID(a) = %d, %v", id, ok)
	}
	if _, ok := w.ID(""); ok {
		t.Fatal("the empty token has an id")
	}
	if w.Piece(4) != "a" || w.Piece(8) != "" || w.Piece(-1) != "" {
		t.Fatal("Piece")
	}
}

func TestParseVocab(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\n", []string{""}},
		{"a", []string{"a"}},
		{"a\nb\n", []string{"a", "b"}},
		{"a\n\nb", []string{"a", "", "b"}},
		{"a\r\nb\r\n", []string{"a", "b"}},
		{"\ufeffa\nb c \n", []string{"a", "b c "}},
	}
	for _, c := range cases {
		if got := ParseVocab([]byte(c.in)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseVocab(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestLoadWordPiece(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vocab.txt")
	if err := os.WriteFile(path, []byte("[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nhello\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := LoadWordPiece(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Encode("hello Hello", true); !reflect.DeepEqual(got, []int{2, 5, 1, 3}) {
		t.Fatalf("cased Encode = %v", got)
	}
	if _, err := LoadWordPiece(filepath.Join(dir, "nope.txt"), true); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("[PAD]\n[CLS]\n[SEP]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadWordPiece(bad, true); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "no [UNK]") {
		t.Fatalf("bad vocabulary: %v", err)
	}
}

func TestWordPieceInterface(t *testing.T) {
	var tok Tokenizer = classicVocab(t, true)
	if got := tok.Decode(tok.Encode("Unaffable, unwanted", true)); got != "unaffable, unwanted" {
		t.Fatalf("round trip = %q", got)
	}
}

func FuzzWordPiece(f *testing.F) {
	for _, s := range []string{"", "Hello, world!", "unaffable", "UNwant\u00E9d,running", "我爱你s", "[MASK]x[SEP", "a\xffb\u200b", strings.Repeat("ab", 60)} {
		f.Add(s, true)
		f.Add(s, false)
	}
	w := classicVocab(f, true)
	cased := classicVocab(f, false)
	f.Fuzz(func(t *testing.T, text string, lower bool) {
		tok := cased
		if lower {
			tok = w
		}
		ids := tok.Encode(text, true)
		if len(ids) < 2 || ids[0] != tok.BOS() || ids[len(ids)-1] != tok.EOS() {
			t.Fatalf("Encode(%q) = %v lacks [CLS] ... [SEP]", text, ids)
		}
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q) = %v: id out of range", text, ids)
			}
		}
		if bare := tok.Encode(text, false); !slices.Equal(bare, ids[1:len(ids)-1]) {
			t.Fatalf("Encode(%q, false) = %v, with markers %v", text, bare, ids)
		}
		_ = tok.Decode(ids)
	})
}
