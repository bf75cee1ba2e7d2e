package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// generateIDs runs surgeon generate --json with args and returns the new ids.
func generateIDs(t *testing.T, args ...string) []int {
	t.Helper()
	code, out, errs := runCLI(append([]string{"generate"}, append(args, "--json")...)...)
	if code != 0 {
		t.Fatalf("generate %v: exit %d: %s", args, code, errs)
	}
	var r struct {
		PromptIDs []int  `json:"prompt_ids"`
		IDs       []int  `json:"ids"`
		Text      string `json:"text"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("generate --json printed %q: %v", out, err)
	}
	if len(r.PromptIDs) == 0 || r.Text == "" {
		t.Fatalf("generate --json: %+v", r)
	}
	return r.IDs
}

// The key/value cache changes no greedy id; each sampling option is
// reproducible for a seed, and options that cut the distribution to one
// token decode greedily.
func TestGenerateOptions(t *testing.T) {
	model := fixture(t, "stories260K-gguf/stories260K.gguf")
	base := []string{model, "--prompt", "Once upon a time", "-n", "24"}
	greedy := generateIDs(t, base...)
	if got := generateIDs(t, append(base, "--no-cache")...); !slices.Equal(got, greedy) {
		t.Fatalf("--no-cache: %v, cached %v", got, greedy)
	}
	for _, tc := range []struct {
		name   string
		flags  []string
		greedy bool // the options leave only the most likely token
	}{
		{"temperature", []string{"--temperature", "1.5", "--seed", "3"}, false},
		{"top-k", []string{"--temperature", "1.5", "--top-k", "5", "--seed", "3"}, false},
		{"top-k 1", []string{"--temperature", "1.5", "--top-k", "1"}, true},
		{"top-p", []string{"--temperature", "1.5", "--top-p", "0.9", "--seed", "3"}, false},
		{"min-p", []string{"--temperature", "1.5", "--min-p", "0.05", "--seed", "3"}, false},
		{"min-p 1", []string{"--temperature", "1.5", "--min-p", "1"}, true},
		{"repeat penalty", []string{"--temperature", "1.5", "--repeat-penalty", "1.3", "--seed", "3"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := generateIDs(t, append(base, tc.flags...)...)
			b := generateIDs(t, append(base, tc.flags...)...)
			if !slices.Equal(a, b) {
				t.Fatalf("same seed, different ids: %v, %v", a, b)
			}
			if tc.greedy && !slices.Equal(a, greedy) {
				t.Fatalf("ids %v, want the greedy %v", a, greedy)
			}
		})
	}
	// A greedy repeat penalty changes the greedy story, which repeats
	// itself ("Lily", "She", "play") within 60 tokens.
	long := []string{model, "--prompt", "Once upon a time", "-n", "60"}
	if got := generateIDs(t, append(long, "--repeat-penalty", "1.5")...); slices.Equal(got, generateIDs(t, long...)) {
		t.Fatalf("--repeat-penalty 1.5 left the greedy ids unchanged: %v", got)
	}
	// Bad values are usage errors naming the option.
	for _, flag := range [][]string{{"--top-p", "2"}, {"--min-p", "-1"}, {"--top-k", "-3"}, {"--repeat-penalty", "-1"}} {
		code, _, errs := runCLI(append([]string{"generate"}, append(base, flag...)...)...)
		if code == 0 || !strings.Contains(errs, strings.TrimPrefix(flag[0], "--")[:5]) {
			t.Errorf("generate %v: exit %d, %q", flag, code, errs)
		}
	}
}
