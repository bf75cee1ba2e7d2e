package checkpoint

import (
	"bytes"
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

// SentencePieceFile is the name of the SentencePiece model in a Hugging
// Face folder, read by transformers' slow LlamaTokenizer.
const SentencePieceFile = "tokenizer.model"

// tokenizerFiles are the tokenizer files of a model folder, copied along
// when a model loaded from a folder is written elsewhere.
var tokenizerFiles = []string{SentencePieceFile, VocabFile, TokenizerJSONFile, "tokenizer_config.json", "special_tokens_map.json"}

// TokenizerFiles returns the tokenizer files to write beside a model
// converted from l (a Hugging Face or native folder), so that surgeon and
// transformers can tokenize for it. For a GGUF model they are built from
// its metadata: tokenizer.model, tokenizer_config.json and
// special_tokens_map.json (for transformers' LlamaTokenizer) from a
// SentencePiece vocabulary, tokenizer.json and tokenizer_config.json from
// a byte-level BPE one. For a model
// loaded from a folder they are the folder's own tokenizer files
// (tokenizer.model, vocab.txt, tokenizer.json, tokenizer_config.json,
// special_tokens_map.json). It returns nil when l carries no tokenizer.
func TokenizerFiles(l *Loaded) (map[string][]byte, error) {
	if l.GGUF == nil {
		return folderTokenizerFiles(l.Path)
	}
	t, err := gguf.Tokenizer(l.GGUF)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var tok *tokenizer.SPM
	switch t := t.(type) {
	case *tokenizer.HF:
		return bpeTokenizerFiles(l, t)
	case *tokenizer.SPM:
		tok = t
	case *tokenizer.WordPiece:
		return wordPieceTokenizerFiles(t)
	default:
		return nil, fmt.Errorf("tokenizer: writing the tokenizer files of a GGUF %T tokenizer is not supported", t)
	}
	model, err := tok.MarshalModel()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SentencePieceFile, err)
	}
	special := specialTokens{
		BOS: piece(tok, tok.BOS()),
		EOS: piece(tok, tok.EOS()),
		UNK: piece(tok, tok.UNK()),
	}
	cfg := tokenizerConfig{
		Class:          "LlamaTokenizer",
		specialTokens:  special,
		AddBOS:         true,
		AddEOS:         false,
		MaxLength:      contextLength(l),
		Legacy:         true,
		CleanUpSpacing: false,
	}
	files := map[string][]byte{SentencePieceFile: model}
	for name, v := range map[string]any{"tokenizer_config.json": cfg, "special_tokens_map.json": special} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // keep "<s>" readable
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		files[name] = buf.Bytes()
	}
	return files, nil
}

// bpeTokenizerFiles are the tokenizer.json and tokenizer_config.json
// of a GGUF byte-level BPE tokenizer (transformers'
// PreTrainedTokenizerFast).
func bpeTokenizerFiles(l *Loaded, h *tokenizer.HF) (map[string][]byte, error) {
	p, err := h.ByteLevelBPE()
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	js, err := tokenizer.MarshalByteLevelBPE(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", TokenizerJSONFile, err)
	}
	name := func(id int) *string {
		if id < 0 {
			return nil
		}
		s := h.Token(id)
		return &s
	}
	cfg := struct {
		Class     string  `json:"tokenizer_class"`
		BOS       *string `json:"bos_token"`
		EOS       *string `json:"eos_token"`
		Pad       *string `json:"pad_token,omitempty"`
		AddBOS    bool    `json:"add_bos_token"`
		AddEOS    bool    `json:"add_eos_token"`
		MaxLength int     `json:"model_max_length,omitempty"`
		CleanUp   bool    `json:"clean_up_tokenization_spaces"`
	}{"PreTrainedTokenizerFast", name(h.BOS()), name(h.EOS()), name(h.Pad()), h.AddsBOS(), h.AddsEOS(), contextLength(l), false}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("tokenizer_config.json: %w", err)
	}
	return map[string][]byte{TokenizerJSONFile: js, "tokenizer_config.json": buf.Bytes()}, nil
}

// wordPieceTokenizerFiles are the vocab.txt and tokenizer_config.json of
// a GGUF WordPiece tokenizer (transformers' BertTokenizer).
func wordPieceTokenizerFiles(w *tokenizer.WordPiece) (map[string][]byte, error) {
	var vocab bytes.Buffer
	for id := range w.VocabSize() {
		vocab.WriteString(w.Piece(id))
		vocab.WriteByte('\n')
	}
	cfg := fmt.Sprintf("{\n  \"tokenizer_class\": \"BertTokenizer\",\n  \"do_lower_case\": %v\n}\n", w.Lowercase())
	return map[string][]byte{VocabFile: vocab.Bytes(), "tokenizer_config.json": []byte(cfg)}, nil
}

// folderTokenizerFiles reads the tokenizer files of the folder dir; nil
// when dir is not a folder or holds none.
func folderTokenizerFiles(dir string) (map[string][]byte, error) {
	if st, err := os.Stat(dir); dir == "" || err != nil || !st.IsDir() {
		return nil, nil
	}
	var files map[string][]byte
	for _, name := range tokenizerFiles {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		if files == nil {
			files = map[string][]byte{}
		}
		files[name] = data
	}
	return files, nil
}

// specialTokens is special_tokens_map.json; a token the vocabulary lacks
// is null.
type specialTokens struct {
	BOS *string `json:"bos_token"`
	EOS *string `json:"eos_token"`
	UNK *string `json:"unk_token"`
}

// tokenizerConfig is the tokenizer_config.json transformers reads to build
// a LlamaTokenizer. legacy keeps the SentencePiece model as written (with
// its dummy prefix); clean_up_tokenization_spaces off keeps Decode from
// editing spaces before punctuation, as Llama's own configuration does.
type tokenizerConfig struct {
	Class string `json:"tokenizer_class"`
	specialTokens
	AddBOS         bool `json:"add_bos_token"`
	AddEOS         bool `json:"add_eos_token"`
	MaxLength      int  `json:"model_max_length,omitempty"`
	Legacy         bool `json:"legacy"`
	CleanUpSpacing bool `json:"clean_up_tokenization_spaces"`
}

func piece(tok *tokenizer.SPM, id int) *string {
	if id < 0 {
		return nil
	}
	p := tok.Piece(id)
	return &p
}

// contextLength is the model's max_position_embeddings, or 0 when unknown.
func contextLength(l *Loaded) int {
	switch v := l.Model.HFConfig()["max_position_embeddings"].(type) {
	case float64:
		return int(v)
	case int:
		return v
	case int64:
		return int(v)
	case uint32:
		return int(v)
	}
	return 0
}

// VocabFile is the WordPiece vocabulary in a Hugging Face BERT folder, one
// token a line, read by transformers' BertTokenizer.
const VocabFile = "vocab.txt"

// LoadTokenizer returns the tokenizer of the model l loaded from path: the
// one in the GGUF metadata for a GGUF model; for a Hugging Face or native
// folder, the Hugging Face tokenizers pipeline of its tokenizer.json
// (*tokenizer.HF, preferred as transformers prefers fast tokenizers), else
// the SentencePiece tokenizer of its tokenizer.model, else the WordPiece
// tokenizer of its vocab.txt, lowercasing unless tokenizer_config.json says
// "do_lower_case": false. l may be nil when path is a folder.
func LoadTokenizer(path string, l *Loaded) (tokenizer.Tokenizer, error) {
	if l != nil && l.GGUF != nil {
		tok, err := gguf.Tokenizer(l.GGUF)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		return tok, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if !st.IsDir() {
		if l != nil && l.Format == detect.Native {
			return nil, fmt.Errorf("%s: no tokenizer: a single-file spago native model carries none (convert the source again with --to native: the native folder it writes holds the tokenizer)", path)
		}
		return nil, fmt.Errorf("%s: no tokenizer (only GGUF files and Hugging Face or native folders with a %s, %s or %s carry one)", path, TokenizerJSONFile, SentencePieceFile, VocabFile)
	}
	if fileExists(filepath.Join(path, TokenizerJSONFile)) {
		h, err := LoadTokenizerJSON(path)
		if err != nil {
			return nil, err // not a nil *HF in a non-nil Tokenizer
		}
		return h, nil
	}
	file := filepath.Join(path, SentencePieceFile)
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		if fileExists(filepath.Join(path, VocabFile)) {
			wp, err := loadWordPiece(path)
			if err != nil {
				return nil, err // not a nil *WordPiece in a non-nil Tokenizer
			}
			return wp, nil
		}
		return nil, fmt.Errorf("%s: folder has no %s, %s or %s: %w", path, TokenizerJSONFile, SentencePieceFile, VocabFile, err)
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	tok, err := tokenizer.ParseModel(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return tok, nil
}

// loadWordPiece reads the BERT tokenizer of the folder dir: its vocab.txt,
// lowercased unless its tokenizer_config.json sets do_lower_case to false
// (transformers' BertTokenizer lowercases by default).
func loadWordPiece(dir string) (*tokenizer.WordPiece, error) {
	lower := true
	cfgFile := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(cfgFile)
	switch {
	case err == nil:
		var cfg struct {
			DoLowerCase *bool `json:"do_lower_case"`
		}
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", cfgFile, err)
		}
		if cfg.DoLowerCase != nil {
			lower = *cfg.DoLowerCase
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return tokenizer.LoadWordPiece(filepath.Join(dir, VocabFile), lower)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
