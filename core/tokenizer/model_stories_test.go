package tokenizer_test

import (
	"reflect"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

// TestStoriesModelRoundTrip writes stories260K's GGUF tokenizer as
// tokenizer.model, reads it back and checks the two tokenizers agree.
func TestStoriesModelRoundTrip(t *testing.T) {
	tok := storiesTokenizer(t)
	data, err := tok.MarshalModel()
	if err != nil {
		t.Fatal(err)
	}
	back, err := tokenizer.ParseModel(data)
	if err != nil {
		t.Fatal(err)
	}
	p1, s1, t1 := tok.Vocab()
	p2, s2, t2 := back.Vocab()
	if !reflect.DeepEqual(p1, p2) || !reflect.DeepEqual(s1, s2) || !reflect.DeepEqual(t1, t2) {
		t.Fatal("vocabulary changed in the round trip")
	}
	if back.BOS() != tok.BOS() || back.EOS() != tok.EOS() || back.UNK() != tok.UNK() || back.DummyPrefix() != tok.DummyPrefix() {
		t.Fatalf("specials bos %d eos %d unk %d prefix %v, want %d %d %d %v",
			back.BOS(), back.EOS(), back.UNK(), back.DummyPrefix(), tok.BOS(), tok.EOS(), tok.UNK(), tok.DummyPrefix())
	}
	for _, text := range []string{
		"Once upon a time",
		"Hello, world! (quotes: \"x\"; 'y') -- 3.14?",
		"  spaces  and\ttabs\nnewline ",
		"日本",
		"emoji 🙂👍🏽 and é",
		"",
	} {
		t.Run(text, func(t *testing.T) {
			want := tok.Encode(text, true)
			got := back.Encode(text, true)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Encode: %v after the round trip, %v before", got, want)
			}
			if a, b := back.Decode(got), tok.Decode(want); a != b {
				t.Fatalf("Decode: %q after the round trip, %q before", a, b)
			}
			if a := back.Decode(got); a != text {
				t.Fatalf("Decode(Encode(%q)) = %q", text, a)
			}
		})
	}
}
