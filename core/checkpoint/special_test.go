package checkpoint

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSpecialTokensFromTokenizerConfig(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		bos, eos     bool
		from         string
	}{
		{"absent", "", true, false, "tokenizer defaults (add BOS, no EOS)"},
		{"llama3-style", `{"add_bos_token": true, "add_eos_token": false}`, true, false, "tokenizer_config.json"},
		{"eos on", `{"add_eos_token": true}`, true, true, "tokenizer_config.json"},
		{"bos off", `{"add_bos_token": false}`, false, false, "tokenizer_config.json"},
		{"malformed", `{"add_bos_token": `, true, false, "tokenizer defaults (add BOS, no EOS)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.config != "" {
				if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(tc.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s := SpecialTokens(dir, nil, nil)
			if s.BOS != tc.bos || s.EOS != tc.eos || s.From != tc.from {
				t.Fatalf("got %+v, want bos %v eos %v from %q", s, tc.bos, tc.eos, tc.from)
			}
		})
	}
}
