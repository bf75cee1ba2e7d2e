package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
	"github.com/surgeon-ml/surgeon/formats/detect"
	"github.com/surgeon-ml/surgeon/formats/gguf"
)

// TokenizerJSONFile is the Hugging Face tokenizers pipeline of a model
// folder, read by transformers' fast tokenizers; surgeon prefers it to
// tokenizer.model and vocab.txt, as transformers does.
const TokenizerJSONFile = "tokenizer.json"

// LoadTokenizerJSON reads a tokenizer.json: path is the file itself or a
// folder holding it. The folder's tokenizer_config.json, when present,
// names the BOS, EOS and padding tokens (tokenizer.HF's BOS, EOS and Pad);
// what Encode adds with special tokens is the tokenizer.json
// post-processor's template (tokenizer.HF's AddsBOS, AddsEOS and Template).
func LoadTokenizerJSON(path string) (*tokenizer.HF, error) {
	file, dir := path, filepath.Dir(path)
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		file, dir = filepath.Join(path, TokenizerJSONFile), path
	}
	cfg, err := readHFConfig(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return nil, err
	}
	return tokenizer.LoadHF(file, cfg)
}

// readHFConfig reads the special-token names of a tokenizer_config.json;
// nil when there is none. A token is a string or an AddedToken object.
func readHFConfig(file string) (*tokenizer.HFConfig, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var raw struct {
		BOS json.RawMessage `json:"bos_token"`
		EOS json.RawMessage `json:"eos_token"`
		Pad json.RawMessage `json:"pad_token"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var cfg tokenizer.HFConfig
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *string
	}{{"bos_token", raw.BOS, &cfg.BOS}, {"eos_token", raw.EOS, &cfg.EOS}, {"pad_token", raw.Pad, &cfg.Pad}} {
		if len(f.raw) == 0 || string(f.raw) == "null" {
			continue
		}
		if json.Unmarshal(f.raw, f.dst) == nil {
			continue
		}
		var obj struct {
			Content string `json:"content"`
		}
		if err := json.Unmarshal(f.raw, &obj); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", file, f.name, err)
		}
		*f.dst = obj.Content
	}
	return &cfg, nil
}

// OpenTokenizer returns the tokenizer a path holds without loading a model:
// a model folder (as LoadTokenizer reads it), a tokenizer.json file, or a
// GGUF file (its tokenizer metadata). What a file is comes from its
// content: GGUF by its magic bytes, anything else is read as a
// tokenizer.json.
func OpenTokenizer(path string) (tokenizer.Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if st.IsDir() {
		return LoadTokenizer(path, nil)
	}
	if f, err := detect.Path(path); err == nil && f == detect.GGUF {
		g, err := gguf.Open(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		tok, err := gguf.Tokenizer(g)
		if cerr := g.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: tokenizer: %w", path, err)
		}
		return tok, nil
	}
	h, err := LoadTokenizerJSON(path)
	if err != nil {
		return nil, err
	}
	return h, nil
}
