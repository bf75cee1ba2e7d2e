package gguf

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

// ErrUnknownPreTokenizer reports a byte-level BPE pre-tokenizer that
// surgeon cannot map to or from one of llama.cpp's tokenizer.ggml.pre
// names.
var ErrUnknownPreTokenizer = errors.New("pre-tokenizer not known")

// The split patterns as tokenizer.json spells them. core/tokenizer runs
// those with look-ahead (all ending in GPT-4's whitespace alternatives)
// exactly, the others with Go's regexp.
const (
	gpt2Split      = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Split    = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Split     = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen35Split    = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	tekkenSplit    = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	gpt4oSplit     = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	seedCoderSplit = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+`
	minicpm5Split  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// cl100kSplit is Llama 3's pattern as some conversions write it.
	cl100kSplit = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+(?!\S)|\s+`
	digitSplit  = `\p{N}`
	digitsSplit = `\p{N}+`
	cjkSplit    = `[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+`
	bloomSplit  = ` ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+`
)

// bpePre is a byte-level BPE pre-tokenizer llama.cpp knows by name
// (tokenizer.ggml.pre): the patterns it splits a text with, one after
// the other, each keeping matches and the text between them as pieces
// (a tokenizer.json Split with "Isolated" behaviour), before the bytes of
// each piece become byte characters.
type bpePre struct {
	// names are llama.cpp's names for it; the first is the one written.
	names []string
	// splits are the patterns as tokenizer.json spells them.
	splits []string
	// ignoreMerges: a piece that is a token is that token (llama.cpp sets
	// it for the Llama 3 group; tokenizer.json's ignore_merges).
	ignoreMerges bool
	// nfc: the models of this group normalize their text to NFC
	// (tokenizer.json's normalizer). llama.cpp does not; surgeon does, as
	// Hugging Face does.
	nfc bool
	// addBOS is llama.cpp's default for tokenizer.ggml.add_bos_token.
	addBOS bool
	// readOnly groups are read but never written: no tokenizer.json spells
	// them (llama.cpp's "default"), or surgeon cannot recognise theirs.
	readOnly bool
}

// bpePres are the pre-tokenizers of llama.cpp's src/llama-vocab.cpp whose
// patterns core/tokenizer runs exactly. Those with other look-arounds
// (deepseek-v3, tiny_aya, superbpe, ...), possessive quantifiers
// (bailingmoe), other whitespace tails (exaone-moe) or custom code in
// llama.cpp (kimi-k2, afmoe) are missing.
var bpePres = []bpePre{
	{names: []string{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "mpt", "olmo", "jais", "trillion", "granite-docling", "exaone4",
		// llama.cpp appends SEP for these (add_sep) only in its BERT-style
		// embedding paths; the byte-level tokenization is GPT-2's.
		"jina-v1-en", "jina-v2-code", "roberta-bpe"},
		splits: []string{gpt2Split}},
	{names: []string{"llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"},
		splits: []string{llama3Split}, ignoreMerges: true, addBOS: true},
	{names: []string{"smaug-bpe", "dbrx", "chatglm-bpe", "glm4"}, splits: []string{llama3Split}},
	{names: []string{"qwen2", "deepseek-r1-qwen"}, splits: []string{qwen2Split}, nfc: true},
	{names: []string{"qwen35"}, splits: []string{qwen35Split}},
	{names: []string{"tekken"}, splits: []string{tekkenSplit}, ignoreMerges: true, addBOS: true},
	{names: []string{"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"}, splits: []string{gpt4oSplit}},
	{names: []string{"seed-coder"}, splits: []string{seedCoderSplit}},
	{names: []string{"minicpm5"}, splits: []string{`\p{N}{1,3}`, minicpm5Split}, ignoreMerges: true},
	{names: []string{"stablelm2", "hunyuan", "solar-open", "grok-2", "kormo", "f2llmv2", "megrez"}, splits: []string{qwen2Split}},
	{names: []string{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b", "mellum2"},
		splits: []string{digitSplit, gpt2Split}},
	{names: []string{"deepseek-llm"},
		splits: []string{`[\r\n]`,
			`\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+`,
			`\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+`,
			`\s+$`,
			cjkSplit,
			digitsSplit}},
	{names: []string{"deepseek-coder"},
		splits: []string{`[\r\n]`, `\s?\p{L}+`, `\s?\p{P}+`, cjkSplit, digitSplit}},
	{names: []string{"default"}, readOnly: true,
		splits: []string{`[\p{P}\$\+<=>\^~\|]+`, gpt2Split, digitsSplit, `[0-9][0-9][0-9]`}},
	{names: []string{"falcon"}, readOnly: true,
		splits: []string{"[\\p{P}\\$\\+<=>\\^~\\|`]+", gpt2Split, `[0-9][0-9][0-9]`}},
	{names: []string{"bloom", "poro-chat", "gpt3-finnish"}, readOnly: true,
		splits: []string{bloomSplit}},
	{names: []string{"viking"}, readOnly: true,
		splits: []string{bloomSplit, digitSplit}},
	{names: []string{"laguna"}, readOnly: true,
		splits: []string{`[^\n]+|[\n]+`, qwen2Split}},
}

// PreTokenizerNames returns the tokenizer.ggml.pre names surgeon reads,
// sorted.
func PreTokenizerNames() []string {
	var out []string
	for _, p := range bpePres {
		out = append(out, p.names...)
	}
	slices.Sort(out)
	return out
}

func findPre(name string) (*bpePre, bool) {
	for i := range bpePres {
		if slices.Contains(bpePres[i].names, name) {
			return &bpePres[i], true
		}
	}
	return nil, false
}

// goPattern spells a tokenizer.json pattern for Go's regexp: \s outside
// the look-ahead patterns core/tokenizer scans by hand becomes Unicode
// White_Space, as the Oniguruma engine of Hugging Face reads it.
func goPattern(p string) string {
	if strings.HasSuffix(p, `|\s+(?!\S)|\s+`) {
		return p // core/tokenizer reads these itself, \s included
	}
	return tokenizer.UnicodeSpaces(p)
}

// canonicalPattern spells a pattern as bpePres does: characters beyond
// ASCII, carriage returns, newlines and tabs as escapes, so that a
// tokenizer.json spelling them literally compares equal.
func canonicalPattern(p string) string {
	var b strings.Builder
	for _, r := range p {
		switch {
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r >= 0x80:
			fmt.Fprintf(&b, `\x{%X}`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// preJSON returns the tokenizer.json pre-tokenizer and normalizer of the
// group.
func (p *bpePre) preJSON() (pre, norm json.RawMessage) {
	type pattern struct {
		Regex string `json:"Regex"`
	}
	type split struct {
		Type     string  `json:"type"`
		Pattern  pattern `json:"pattern"`
		Behavior string  `json:"behavior"`
		Invert   bool    `json:"invert"`
	}
	steps := []any{}
	for _, s := range p.splits {
		steps = append(steps, split{"Split", pattern{goPattern(s)}, "Isolated", false})
	}
	steps = append(steps, map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false})
	pre, _ = json.Marshal(map[string]any{"type": "Sequence", "pretokenizers": steps})
	if p.nfc {
		norm = json.RawMessage(`{"type":"NFC"}`)
	}
	return pre, norm
}

// PreTokenizerName returns llama.cpp's tokenizer.ggml.pre name for a
// byte-level BPE tokenizer.json's normalizer and pre-tokenizer (and its
// model's ignore_merges), recognised from the patterns it splits with. It
// fails with ErrUnknownPreTokenizer, naming what it found, when llama.cpp
// knows no pre-tokenizer that splits the same way.
func PreTokenizerName(normalizer, preTokenizer json.RawMessage, ignoreMerges bool) (string, error) {
	splits, err := preSplits(preTokenizer, "pre_tokenizer")
	if err != nil {
		return "", err
	}
	nfc := false
	switch n := strings.Join(strings.Fields(string(normalizer)), ""); n {
	case "", "null":
	case `{"type":"NFC"}`:
		nfc = true
	default:
		return "", fmt.Errorf("%w: llama.cpp's byte-level BPE has no normalizer, and this tokenizer's is %s", ErrUnknownPreTokenizer, n)
	}
	for i := range bpePres {
		p := &bpePres[i]
		if p.readOnly || p.ignoreMerges != ignoreMerges || p.nfc != nfc || len(p.splits) != len(splits) {
			continue
		}
		same := true
		for k, s := range p.splits {
			// A tokenizer surgeon built from GGUF spells \s for Go.
			same = same && (splits[k] == s || splits[k] == canonicalPattern(goPattern(s)))
		}
		if same {
			return p.names[0], nil
		}
	}
	return "", fmt.Errorf("%w: no llama.cpp pre-tokenizer splits with %q (ignore_merges %v, NFC %v)", ErrUnknownPreTokenizer, splits, ignoreMerges, nfc)
}

// preSplits reduces a tokenizer.json pre-tokenizer to the patterns it
// splits with, in order, checking that it ends by writing bytes as byte
// characters (ByteLevel) and does nothing llama.cpp cannot.
func preSplits(raw json.RawMessage, path string) ([]string, error) {
	var steps []json.RawMessage
	var flatten func(raw json.RawMessage, path string) error
	flatten = func(raw json.RawMessage, path string) error {
		var c struct {
			Type          string            `json:"type"`
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if c.Type != "Sequence" {
			steps = append(steps, raw)
			return nil
		}
		for i, r := range c.PreTokenizers {
			if err := flatten(r, fmt.Sprintf("%s.pretokenizers[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if s := strings.TrimSpace(string(raw)); s == "" || s == "null" {
		return nil, fmt.Errorf("%w: no pre-tokenizer (llama.cpp's byte-level BPE needs one ending in ByteLevel)", ErrUnknownPreTokenizer)
	}
	if err := flatten(raw, path); err != nil {
		return nil, err
	}
	var out []string
	for i, s := range steps {
		var c struct {
			Type    string `json:"type"`
			Pattern struct {
				Regex  *string `json:"Regex"`
				String *string `json:"String"`
			} `json:"pattern"`
			Behavior         string `json:"behavior"`
			Invert           bool   `json:"invert"`
			IndividualDigits bool   `json:"individual_digits"`
			AddPrefixSpace   *bool  `json:"add_prefix_space"`
			UseRegex         *bool  `json:"use_regex"`
		}
		if err := json.Unmarshal(s, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		last := i == len(steps)-1
		if c.Type == "ByteLevel" != last {
			return nil, fmt.Errorf("%w: llama.cpp's byte-level BPE needs a pre-tokenizer whose last step, and only that, is ByteLevel (step %d is %s)", ErrUnknownPreTokenizer, i, c.Type)
		}
		switch c.Type {
		case "Split":
			if c.Pattern.Regex == nil || c.Invert || c.Behavior != "Isolated" {
				return nil, fmt.Errorf("%w: step %d: a Split llama.cpp can do has a Regex pattern, Isolated behaviour and no invert", ErrUnknownPreTokenizer, i)
			}
			r := canonicalPattern(*c.Pattern.Regex)
			if r == cl100kSplit {
				r = llama3Split
			}
			out = append(out, r)
		case "Digits":
			if c.IndividualDigits {
				out = append(out, digitSplit)
			} else {
				out = append(out, digitsSplit)
			}
		case "ByteLevel":
			if c.AddPrefixSpace == nil || *c.AddPrefixSpace {
				return nil, fmt.Errorf("%w: ByteLevel adds a space before the text (add_prefix_space), which llama.cpp does not", ErrUnknownPreTokenizer)
			}
			if c.UseRegex == nil || *c.UseRegex {
				out = append(out, gpt2Split)
			}
		default:
			return nil, fmt.Errorf("%w: step %d is a %s pre-tokenizer, which no llama.cpp pre-tokenizer matches", ErrUnknownPreTokenizer, i, c.Type)
		}
	}
	return out, nil
}

// PreTokenizerGroups returns one tokenizer.ggml.pre name of each group of
// aliases surgeon reads (names that split text the same way), in table
// order.
func PreTokenizerGroups() []string {
	out := make([]string, len(bpePres))
	for i, p := range bpePres {
		out[i] = p.names[0]
	}
	return out
}
