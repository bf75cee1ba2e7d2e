package tokenizer

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Tokenizer is what surgeon needs of a model's tokenizer. *SPM (Llama) and
// *WordPiece (BERT) satisfy it.
type Tokenizer interface {
	// Encode returns the token ids of text, with the model's sequence
	// markers when addBOS is set: BOS for SPM, [CLS] ... [SEP] for
	// WordPiece.
	Encode(text string, addBOS bool) []int
	// Decode turns ids back into text, leaving out sequence markers.
	Decode(ids []int) string
	// BOS returns the id that starts a sequence, or -1.
	BOS() int
	// EOS returns the id that ends a sequence, or -1.
	EOS() int
	// VocabSize returns the number of tokens.
	VocabSize() int
}

var (
	_ Tokenizer = (*SPM)(nil)
	_ Tokenizer = (*WordPiece)(nil)
)

// BERT's special tokens.
const (
	PadToken  = "[PAD]"
	UnkToken  = "[UNK]"
	ClsToken  = "[CLS]"
	SepToken  = "[SEP]"
	MaskToken = "[MASK]"
)

// continuation marks a WordPiece that continues a word.
const continuation = "##"

// MaxWordChars is the longest word, in characters, that WordPiece splits
// into pieces; a longer one becomes [UNK] (BERT's
// max_input_chars_per_word).
const MaxWordChars = 100

// WordPiece is BERT's tokenizer, encoding as Hugging Face's BertTokenizer
// does: a basic tokenizer cleans the text and splits it into words, then each
// word is split greedily, longest match first, into vocabulary pieces, the
// pieces after the first carrying a "##" prefix. It is immutable and safe for
// concurrent use.
type WordPiece struct {
	vocab   []string
	whole   map[string]int // pieces that start a word
	cont    map[string]int // pieces that continue a word, without "##"
	maxLen  int            // bound on the byte length of a piece
	lower   bool
	special []string // special tokens recognised verbatim in Encode's text
	pad     int
	unk     int
	cls     int
	sep     int
	mask    int
}

// NewWordPiece builds a tokenizer from a vocabulary, the id of a token being
// its index. With lower, text is lowercased and stripped of accents
// (BERT's uncased models); otherwise it is kept as written (cased models).
// The vocabulary must hold [PAD], [UNK], [CLS] and [SEP]; [MASK] is
// optional. When a token appears twice, the later id wins, as in
// transformers.
func NewWordPiece(vocab []string, lower bool) (*WordPiece, error) {
	if len(vocab) == 0 {
		return nil, fmt.Errorf("wordpiece: empty vocabulary")
	}
	w := &WordPiece{
		vocab: append([]string(nil), vocab...),
		whole: make(map[string]int, len(vocab)),
		cont:  make(map[string]int),
		lower: lower,
		mask:  -1,
	}
	for id, tok := range w.vocab {
		if tok == "" {
			continue
		}
		w.whole[tok] = id
		if rest, ok := strings.CutPrefix(tok, continuation); ok && rest != "" {
			w.cont[rest] = id
			w.maxLen = max(w.maxLen, len(rest))
		}
		w.maxLen = max(w.maxLen, len(tok))
	}
	for _, sp := range []struct {
		tok string
		id  *int
	}{{PadToken, &w.pad}, {UnkToken, &w.unk}, {ClsToken, &w.cls}, {SepToken, &w.sep}, {MaskToken, &w.mask}} {
		id, ok := w.whole[sp.tok]
		if !ok {
			if sp.tok == MaskToken {
				continue
			}
			return nil, fmt.Errorf("wordpiece: vocabulary of %d tokens has no %s", len(vocab), sp.tok)
		}
		*sp.id = id
		w.special = append(w.special, sp.tok)
	}
	return w, nil
}

// LoadWordPiece reads a BERT vocab.txt, one token a line, the id of a token
// being its line number from 0, and builds a tokenizer from it as
// NewWordPiece does.
func LoadWordPiece(path string, lower bool) (*WordPiece, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wordpiece: %w", err)
	}
	w, err := NewWordPiece(ParseVocab(data), lower)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, nil
}

// ParseVocab splits the contents of a vocab.txt into its tokens, one a line.
// A final newline ends the last line rather than starting an empty one;
// "\r\n" line ends and a leading UTF-8 byte order mark are accepted. Other
// spaces are part of the tokens, and an empty line is an empty token that
// keeps its id.
func ParseVocab(data []byte) []string {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if len(data) == 0 {
		return nil
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// VocabSize returns the number of tokens.
func (w *WordPiece) VocabSize() int { return len(w.vocab) }

// BOS returns the id of [CLS], which starts a BERT sequence.
func (w *WordPiece) BOS() int { return w.cls }

// EOS returns the id of [SEP], which ends a BERT sequence.
func (w *WordPiece) EOS() int { return w.sep }

// Template returns the ids Encode puts around the text with special
// tokens: [CLS] before, [SEP] after (BERT's template, as HF's Template).
func (w *WordPiece) Template() (prefix, suffix []int) {
	return []int{w.cls}, []int{w.sep}
}

// Pad returns the id of [PAD].
func (w *WordPiece) Pad() int { return w.pad }

// UNK returns the id of [UNK].
func (w *WordPiece) UNK() int { return w.unk }

// Mask returns the id of [MASK], or -1 when the vocabulary has none.
func (w *WordPiece) Mask() int { return w.mask }

// Lowercase reports whether Encode lowercases text and strips accents.
func (w *WordPiece) Lowercase() bool { return w.lower }

// Piece returns the token of id, or "" when id is out of range.
func (w *WordPiece) Piece(id int) string {
	if id < 0 || id >= len(w.vocab) {
		return ""
	}
	return w.vocab[id]
}

// ID returns the id of a token.
func (w *WordPiece) ID(token string) (int, bool) {
	id, ok := w.whole[token]
	return id, ok
}

// Encode tokenizes text as BertTokenizer does, returning [CLS] ids... [SEP]
// when addBOS is set and the bare ids otherwise.
//
// Special tokens of the vocabulary written in text ("[MASK]", "[SEP]", ...)
// are kept whole. The rest is cleaned: NUL, U+FFFD, invalid UTF-8 and
// control and format characters are dropped, and whitespace becomes a
// space. CJK ideographs are set apart as words of their own, the text is
// put in NFC and split at whitespace. With lowercasing each word is
// lowercased, decomposed (NFD) and stripped of its nonspacing marks
// (accents), Greek capital sigma becoming 'ς' at the end of a word as in
// Python. Words are then split at punctuation (ASCII punctuation and
// Unicode P* characters), each punctuation character standing alone. Each
// word is split greedily, longest match first, into pieces of the
// vocabulary, all but the first being "##" continuations; a word that
// cannot be split this way, or is longer than MaxWordChars characters,
// becomes [UNK].
func (w *WordPiece) Encode(text string, addBOS bool) []int {
	var out []int
	if addBOS {
		out = append(out, w.cls)
	}
	for text != "" {
		i, tok := w.nextSpecial(text)
		out = w.encodeText(out, text[:i])
		if tok == "" {
			break
		}
		out = append(out, w.whole[tok])
		text = text[i+len(tok):]
	}
	if addBOS {
		out = append(out, w.sep)
	}
	return out
}

// Tokenize returns the tokens that Encode, without [CLS] and [SEP], gives
// the ids of.
func (w *WordPiece) Tokenize(text string) []string {
	ids := w.Encode(text, false)
	toks := make([]string, len(ids))
	for i, id := range ids {
		toks[i] = w.vocab[id]
	}
	return toks
}

// nextSpecial returns the first special token in text and its byte offset,
// the longest one when several start there, or len(text) and "".
func (w *WordPiece) nextSpecial(text string) (int, string) {
	at, tok := len(text), ""
	for _, sp := range w.special {
		i := strings.Index(text, sp)
		if i >= 0 && (i < at || i == at && len(sp) > len(tok)) {
			at, tok = i, sp
		}
	}
	return at, tok
}

// encodeText appends the ids of text, which holds no special token, to out.
func (w *WordPiece) encodeText(out []int, text string) []int {
	for _, word := range w.words(text) {
		out = w.appendPieces(out, word)
	}
	return out
}

// words is BERT's basic tokenizer: it cleans text and splits it into words
// and punctuation, lowercasing and stripping accents when w.lower is set.
func (w *WordPiece) words(text string) []string {
	var b strings.Builder
	b.Grow(len(text))
	for _, r := range text {
		switch {
		case r == 0 || r == utf8.RuneError || isControl(r):
		case isWhitespace(r):
			b.WriteByte(' ')
		case isCJK(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	var words []string
	for _, tok := range strings.Fields(norm.NFC.String(b.String())) {
		if w.lower {
			tok = stripAccents(toLower(tok))
		}
		start := 0
		for i, r := range tok {
			if !isPunct(r) {
				continue
			}
			if start < i {
				words = append(words, tok[start:i])
			}
			n := utf8.RuneLen(r)
			words = append(words, tok[i:i+n])
			start = i + n
		}
		if start < len(tok) {
			words = append(words, tok[start:])
		}
	}
	return words
}

// appendPieces appends the ids of word's pieces to out, or [UNK] when it
// cannot be split into pieces of the vocabulary.
func (w *WordPiece) appendPieces(out []int, word string) []int {
	if utf8.RuneCountInString(word) > MaxWordChars {
		return append(out, w.unk)
	}
	n := len(out)
	for start := 0; start < len(word); {
		pieces := w.whole
		if start > 0 {
			pieces = w.cont
		}
		found := -1
		end := min(len(word), start+w.maxLen)
		for ; end > start; end-- {
			if end < len(word) && !utf8.RuneStart(word[end]) {
				continue // not a character boundary
			}
			if id, ok := pieces[word[start:end]]; ok {
				found = id
				break
			}
		}
		if found < 0 {
			return append(out[:n], w.unk)
		}
		out = append(out, found)
		start = end
	}
	return out
}

// Decode joins the tokens of ids with spaces, gluing "##" continuations to
// the token before them, and tidies the spaces before punctuation and
// English contractions as transformers' clean_up_tokenization does (" ,"
// becomes ",", " n't" becomes "n't", ...). [CLS], [SEP] and [PAD] are left
// out, as SPM leaves out BOS and EOS; [UNK] and [MASK] are written as such.
// Ids out of range are skipped.
func (w *WordPiece) Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		if id < 0 || id >= len(w.vocab) || id == w.cls || id == w.sep || id == w.pad || w.vocab[id] == "" {
			continue
		}
		tok := w.vocab[id]
		if rest, ok := strings.CutPrefix(tok, continuation); ok && b.Len() > 0 {
			b.WriteString(rest)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(tok)
	}
	return cleanUpTokenization(b.String())
}

// cleanUpTokenization is transformers' clean_up_tokenization, applied in the
// same order.
func cleanUpTokenization(s string) string {
	for _, r := range [...][2]string{
		{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
	} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

// toLower lowercases s as Python's str.lower does, which BERT uses: Go's
// simple case mapping plus the final form of sigma, 'ς', for a capital sigma
// that ends a word. (Python's one other difference, U+0130 İ becoming
// "i\u0307" rather than "i", is undone by stripAccents.)
func toLower(s string) string {
	l := strings.ToLower(s)
	if !strings.ContainsRune(s, 'Σ') {
		return l
	}
	src, dst := []rune(s), []rune(l) // ToLower maps rune by rune
	for i, r := range src {
		if r == 'Σ' && finalSigma(src, i) {
			dst[i] = 'ς'
		}
	}
	return string(dst)
}

// finalSigma reports whether s[i] is in Unicode's Final_Sigma context: after
// a cased letter and not before one, case-ignorable characters between
// them skipped.
func finalSigma(s []rune, i int) bool {
	j := i - 1
	for j >= 0 && isCaseIgnorable(s[j]) {
		j--
	}
	if j < 0 || !isCased(s[j]) {
		return false
	}
	j = i + 1
	for j < len(s) && isCaseIgnorable(s[j]) {
		j++
	}
	return j == len(s) || !isCased(s[j])
}

// isCased is Unicode's Cased property.
func isCased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// isCaseIgnorable is Unicode's Case_Ignorable property: the categories Mn,
// Me, Cf, Lm and Sk, and the characters of Word_Break MidLetter, MidNumLet
// and Single_Quote.
func isCaseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// stripAccents decomposes s (NFD) and drops its nonspacing marks.
func stripAccents(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	d := norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isWhitespace reports whether BERT turns r into a space: space, tab,
// newline, carriage return and the Unicode space separators (Zs).
func isWhitespace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r':
		return true
	}
	return r >= utf8.RuneSelf && unicode.Is(unicode.Zs, r)
}

// isControl reports whether BERT drops r: the "other" characters (Cc, Cf,
// Co, Cs and unassigned code points) except tab, newline and carriage
// return, which are whitespace.
func isControl(r rune) bool {
	switch r {
	case '\t', '\n', '\r':
		return false
	}
	if r < utf8.RuneSelf {
		return r < 0x20 || r == 0x7f
	}
	return unicode.In(r, unicode.C) || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z)
}

// isPunct reports whether BERT splits words at r: every non-alphanumeric
// printable ASCII character (BERT counts "$", "^", "`" and the like as
// punctuation) and the Unicode punctuation categories (P*).
func isPunct(r rune) bool {
	if r < utf8.RuneSelf {
		return 33 <= r && r <= 47 || 58 <= r && r <= 64 || 91 <= r && r <= 96 || 123 <= r && r <= 126
	}
	return unicode.In(r, unicode.P)
}

// isCJK reports whether r is in a CJK Unified Ideographs block, which BERT
// treats as a word of its own. Japanese kana and Korean Hangul are not.
func isCJK(r rune) bool {
	return 0x4E00 <= r && r <= 0x9FFF ||
		0x3400 <= r && r <= 0x4DBF ||
		0x20000 <= r && r <= 0x2A6DF ||
		0x2A700 <= r && r <= 0x2B73F ||
		0x2B740 <= r && r <= 0x2B81F ||
		0x2B820 <= r && r <= 0x2CEAF ||
		0xF900 <= r && r <= 0xFAFF ||
		0x2F800 <= r && r <= 0x2FA1F
}
