package tokenizer

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// testVocab is a small vocabulary with byte fallback for a few bytes.
func testVocab(t *testing.T, opts ...Option) *SPM {
	t.Helper()
	pieces := []string{"<unk>", "<s>", "</s>", "<0x41>", "<0xC3>", "<0xA9>", "<0x0A>",
		"▁", "a", "b", "c", "ab", "bc", "▁a", "▁ab", "abc", "▁abc", "<s>x"}
	scores := []float32{0, 0, 0, 0, 0, 0, 0, -1, -2, -3, -4, -5, -5, -6, -7, -8, -9, 10}
	types := []int32{2, 3, 3, 6, 6, 6, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3}
	s, err := NewSPM(pieces, scores, types, 1, 2, 0, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewSPMErrors(t *testing.T) {
	cases := []struct {
		name   string
		tokens []string
		scores []float32
		types  []int32
		bos    int
		sub    string
	}{
		{"empty", nil, nil, nil, -1, "empty vocabulary"},
		{"scores", []string{"a", "b"}, []float32{1}, nil, -1, "1 scores for 2 tokens"},
		{"types", []string{"a", "b"}, nil, []int32{1}, -1, "1 token types for 2 tokens"},
		{"bos", []string{"a"}, nil, nil, 5, "bos id 5"},
		{"byte piece", []string{"a", "<0xZZ>"}, nil, []int32{1, 6}, -1, `byte token 1 is "<0xZZ>"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewSPM(c.tokens, c.scores, c.types, c.bos, -1, -1)
			if err == nil || !strings.Contains(err.Error(), c.sub) {
				t.Fatalf("error %v, want %q", err, c.sub)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	s := testVocab(t)
	cases := []struct {
		name string
		text string
		bos  bool
		want []int
	}{
		{"empty", "", false, nil},
		{"empty with bos", "", true, []int{1}},
		{"word", "abc", true, []int{1, 16}},
		{"tie goes left", "bcbc", false, []int{7, 12, 12}}, // ▁ b c b c: "bc" twice, no "▁b"
		{"two words", "ab abc", false, []int{14, 16}},
		{"byte fallback", "Aé\n", false, []int{7, 3, 4, 5, 6}},
		{"unknown byte", "Z", false, []int{7, 0}},
		{"control text is plain", "<s>", false, []int{7, 0, 0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := s.Encode(c.text, c.bos); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Encode(%q) = %v, want %v", c.text, got, c.want)
			}
		})
	}
	t.Run("no dummy prefix", func(t *testing.T) {
		s := testVocab(t, WithDummyPrefix(false))
		if got := s.Encode("abc", false); !reflect.DeepEqual(got, []int{15}) {
			t.Fatalf("Encode = %v", got)
		}
		if got := s.Decode([]int{14, 16}); got != " ab abc" {
			t.Fatalf("Decode = %q", got)
		}
	})
}

func TestDecode(t *testing.T) {
	s := testVocab(t)
	cases := []struct {
		name string
		ids  []int
		want string
	}{
		{"words", []int{1, 14, 16, 2}, "ab abc"},
		{"bytes", []int{1, 7, 3, 4, 5, 6}, "Aé\n"},
		{"invalid utf8", []int{4, 8}, "\ufffda"},
		{"unknown", []int{13, 0}, "a ⁇ "},
		{"out of range", []int{-1, 99, 8}, "a"},
		{"control skipped", []int{17, 8}, "a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := s.Decode(c.ids); got != c.want {
				t.Fatalf("Decode(%v) = %q, want %q", c.ids, got, c.want)
			}
		})
	}
}

// naiveMerge is the textbook O(n^2) BPE the heap version must agree with.
func naiveMerge(s *SPM, text string) []string {
	text = strings.ReplaceAll(" "+text, " ", "▁")
	var syms []string
	for _, r := range text {
		syms = append(syms, string(r))
	}
	for {
		best, bestScore := -1, float32(0)
		for i := 0; i+1 < len(syms); i++ {
			id, ok := s.ID(syms[i] + syms[i+1])
			if ok && (best < 0 || s.Score(id) > bestScore) {
				best, bestScore = i, s.Score(id)
			}
		}
		if best < 0 {
			return syms
		}
		syms[best] += syms[best+1]
		syms = append(syms[:best+1], syms[best+2:]...)
	}
}

func TestEncodeMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", "b", "c", " ", "é"}
	// A random vocabulary over the alphabet with random scores, some tied.
	seen := map[string]bool{}
	pieces := []string{"<unk>"}
	types := []int32{2}
	scores := []float32{0}
	for len(pieces) < 60 {
		var b strings.Builder
		for range 1 + rng.IntN(4) {
			b.WriteString(strings.ReplaceAll(alphabet[rng.IntN(len(alphabet))], " ", "▁"))
		}
		if p := b.String(); !seen[p] {
			seen[p] = true
			pieces = append(pieces, p)
			types = append(types, 1)
			scores = append(scores, float32(rng.IntN(10)))
		}
	}
	s, err := NewSPM(pieces, scores, types, -1, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		var b strings.Builder
		for range rng.IntN(30) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		text := b.String()
		if text == "" {
			continue
		}
		var want []int
		for _, p := range naiveMerge(s, text) {
			if id, ok := s.ID(p); ok {
				want = append(want, id)
			} else {
				for range len(p) {
					want = append(want, 0) // no byte tokens: unknown
				}
			}
		}
		if got := s.Encode(text, false); !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d %q: Encode = %v, naive %v", i, text, got, want)
		}
	}
}

func TestEncodeLongInput(t *testing.T) {
	s := testVocab(t)
	// 300k characters: quadratic merging would take minutes, O(n log n)
	// takes well under a second; the bound is loose for loaded machines.
	text := strings.Repeat("abc ab bcbc aé ", 20000)
	start := time.Now()
	ids := s.Encode(text, false)
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("encoding %d characters took %v", utf8.RuneCountInString(text), d)
	}
	if got := s.Decode(ids); got != text {
		t.Fatalf("round trip failed")
	}
}
