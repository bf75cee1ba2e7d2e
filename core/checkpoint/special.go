package checkpoint

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

// Specials says which special tokens a tokenizer's own settings put around
// a text, as Hugging Face does when it encodes with special tokens.
type Specials struct {
	// BOS: the tokenizer's leading markers (BOS for SentencePiece and
	// byte-level BPE, [CLS] ... [SEP] for WordPiece).
	BOS bool `json:"add_bos"`
	// EOS: an end-of-sequence token appended to every text.
	EOS bool `json:"add_eos"`
	// From names the setting that decided.
	From string `json:"from"`
}

// specialsReporter is implemented by tokenizers whose file says what they
// add (a tokenizer.json post-processor).
type specialsReporter interface {
	AddsBOS() bool
	AddsEOS() bool
}

// SpecialTokens returns the special tokens the tokenizer of the model at
// path adds by its own settings:
//
//   - a tokenizer that reports them (tokenizer.json's post-processor, or
//     a GGUF byte-level BPE's add_bos_token and add_eos_token);
//   - GGUF: tokenizer.ggml.add_bos_token and add_eos_token (llama.cpp's
//     defaults for a SentencePiece vocabulary: BOS yes, EOS no);
//   - WordPiece: [CLS] ... [SEP] (BERT's template), no EOS;
//   - a folder's tokenizer_config.json add_bos_token / add_eos_token
//     (LlamaTokenizer's defaults: BOS yes, EOS no).
func SpecialTokens(path string, l *Loaded, tok tokenizer.Tokenizer) Specials {
	if r, ok := tok.(specialsReporter); ok {
		from := "tokenizer.json post_processor"
		if l != nil && l.GGUF != nil {
			// A GGUF byte-level BPE: its template is add_bos_token and
			// add_eos_token, defaulted as llama.cpp does for its
			// pre-tokenizer.
			from = "GGUF tokenizer.ggml.add_bos_token/add_eos_token (llama.cpp's defaults for its pre-tokenizer)"
		}
		return Specials{BOS: r.AddsBOS(), EOS: r.AddsEOS(), From: from}
	}
	if l != nil && l.GGUF != nil {
		s := Specials{BOS: true, From: "GGUF metadata (llama.cpp defaults: add BOS, no EOS)"}
		if v, err := l.GGUF.Value("tokenizer.ggml.add_bos_token"); err == nil {
			if b, ok := v.AsBool(); ok {
				s.BOS, s.From = b, "GGUF tokenizer.ggml.add_bos_token/add_eos_token"
			}
		}
		if v, err := l.GGUF.Value("tokenizer.ggml.add_eos_token"); err == nil {
			if b, ok := v.AsBool(); ok {
				s.EOS, s.From = b, "GGUF tokenizer.ggml.add_bos_token/add_eos_token"
			}
		}
		return s
	}
	if _, ok := tok.(*tokenizer.WordPiece); ok {
		return Specials{BOS: true, From: "WordPiece: [CLS] text [SEP]"}
	}
	s := Specials{BOS: true, From: "tokenizer defaults (add BOS, no EOS)"}
	raw, err := os.ReadFile(filepath.Join(path, "tokenizer_config.json"))
	if err != nil {
		return s
	}
	var cfg struct {
		AddBOS *bool `json:"add_bos_token"`
		AddEOS *bool `json:"add_eos_token"`
	}
	if json.Unmarshal(raw, &cfg) != nil {
		return s
	}
	if cfg.AddBOS != nil {
		s.BOS, s.From = *cfg.AddBOS, "tokenizer_config.json"
	}
	if cfg.AddEOS != nil {
		s.EOS, s.From = *cfg.AddEOS, "tokenizer_config.json"
	}
	return s
}
