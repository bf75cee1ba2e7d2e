package apply

import (
	"strings"
	"testing"
)

// Special tokens follow the tokenizer's own settings (stories260K's GGUF
// has no tokenizer.ggml.add_*_token: llama.cpp's defaults, BOS and no
// EOS), and data.add_bos / data.add_eos override them.
func TestSpecialTokens(t *testing.T) {
	needFixtures(t)
	for _, tc := range []struct {
		name     string
		data     string
		bos, eos bool
		from     string
	}{
		{"tokenizer's settings", "", true, false, "GGUF"},
		{"add_eos on purpose", "add_eos = true", true, true, "recipe"},
		{"neither", "add_bos = false\nadd_eos = false", false, false, "recipe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Replace(smallRecipe(""), "max_examples = 400", "max_examples = 400\n"+tc.data, 1)
			r, err := prepare(t, writeRecipe(t, body))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.Specials.BOS != tc.bos || r.Specials.EOS != tc.eos || !strings.Contains(r.Specials.From, tc.from) {
				t.Fatalf("specials %+v, want bos %v eos %v from %s", r.Specials, tc.bos, tc.eos, tc.from)
			}
			for _, s := range r.Train {
				ids := s.IDs
				if (ids[0] == r.BOS) != tc.bos {
					t.Fatalf("sequence %v: first id %d, BOS %d wanted %v", ids, ids[0], r.BOS, tc.bos)
				}
				if (ids[len(ids)-1] == r.EOS) != tc.eos {
					t.Fatalf("sequence %v: last id %d, EOS %d wanted %v", ids, ids[len(ids)-1], r.EOS, tc.eos)
				}
			}
		})
	}
}
