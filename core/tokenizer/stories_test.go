package tokenizer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
	"github.com/surgeon-ml/surgeon/formats/gguf"
)

// storiesPath is the stories260K fixture, relative to this package.
var storiesPath = filepath.Join("..", "..", "..", "shared", "fixtures", "stories260K-gguf", "stories260K.gguf")

func storiesTokenizer(t *testing.T) *tokenizer.SPM {
	t.Helper()
	if _, err := os.Stat(storiesPath); err != nil {
		t.Skipf("fixture %s not available (%v); it lives in ../shared/fixtures next to the repository", storiesPath, err)
	}
	f, err := gguf.Open(storiesPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := gguf.Tokenizer(f)
	if err != nil {
		t.Fatal(err)
	}
	spm, ok := tok.(*tokenizer.SPM)
	if !ok {
		t.Fatalf("stories260K's tokenizer is a %T, want *tokenizer.SPM", tok)
	}
	return spm
}

func TestStoriesVocab(t *testing.T) {
	tok := storiesTokenizer(t)
	if tok.VocabSize() != 512 || tok.BOS() != 1 || tok.EOS() != 2 {
		t.Fatalf("vocab %d, bos %d, eos %d", tok.VocabSize(), tok.BOS(), tok.EOS())
	}

	t.Run("once upon a time", func(t *testing.T) {
		ids := tok.Encode("Once upon a time", true)
		if len(ids) < 2 || ids[0] != 1 {
			t.Fatalf("ids %v do not start with BOS", ids)
		}
		if id, ok := tok.ID("▁Once"); ok && ids[1] != id {
			t.Fatalf("ids %v: second token is %q, want ▁Once (%d)", ids, tok.Piece(ids[1]), id)
		}
		var pieces []string
		for _, id := range ids[1:] {
			pieces = append(pieces, tok.Piece(id))
		}
		if got := strings.Join(pieces, ""); got != "▁Once▁upon▁a▁time" {
			t.Fatalf("pieces %q", pieces)
		}
	})

	t.Run("round trip", func(t *testing.T) {
		for _, s := range []string{
			"Once upon a time, there was a little girl named Lily.",
			"She loved to play outside in the park.",
			"One day, she saw a big, red ball!",
			"\"Can I play?\" asked Tom. Mom said: yes.",
			"  two leading spaces and trailing ones  ",
			"Numbers 1234567890 and symbols #$%&*()[]{}<>/\\|~^`",
			"line one\nline two\ttabbed",
			"Café, naïve, 日本語, emoji 🙂",
		} {
			t.Run(s, func(t *testing.T) {
				ids := tok.Encode(s, true)
				if got := tok.Decode(ids); got != s {
					t.Fatalf("Decode(Encode(%q)) = %q (ids %v)", s, got, ids)
				}
			})
		}
	})

	t.Run("byte fallback", func(t *testing.T) {
		cases := []struct {
			text  string
			bytes string
		}{
			{"ü", "ü"},
			{"日本", "日本"},
			{"Ω", "Ω"},
		}
		for _, c := range cases {
			t.Run(c.text, func(t *testing.T) {
				ids := tok.Encode(c.text, false)
				var got []byte
				for _, id := range ids {
					if tok.Type(id) != tokenizer.TypeByte {
						if p := tok.Piece(id); p != "▁" {
							t.Fatalf("ids %v: unexpected piece %q", ids, p)
						}
						continue
					}
					got = append(got, byteOf(t, tok.Piece(id)))
				}
				if string(got) != c.bytes {
					t.Fatalf("byte tokens %v spell %q, want %q", ids, got, c.bytes)
				}
			})
		}
	})

	t.Run("é is a piece", func(t *testing.T) {
		// stories260K has "é" in its vocabulary, so no byte fallback.
		ids := tok.Encode("é", false)
		if len(ids) != 2 || tok.Piece(ids[0]) != "▁" || tok.Piece(ids[1]) != "é" {
			t.Fatalf("ids %v", ids)
		}
	})

	t.Run("decode byte tokens", func(t *testing.T) {
		// <0xE6><0x97><0xA5> is 日; byte ids are 3 + the byte value here.
		ids := []int{1, 3 + 0xE6, 3 + 0x97, 3 + 0xA5, 2}
		if got := tok.Decode(ids); got != "日" {
			t.Fatalf("Decode = %q", got)
		}
		if p := tok.Piece(3 + 0xE6); p != "<0xE6>" {
			t.Fatalf("piece %q", p)
		}
	})
}

func byteOf(t *testing.T, piece string) byte {
	t.Helper()
	var b byte
	for _, c := range piece[3:5] {
		b <<= 4
		switch {
		case c >= '0' && c <= '9':
			b |= byte(c - '0')
		default:
			b |= byte(c-'A') + 10
		}
	}
	return b
}
