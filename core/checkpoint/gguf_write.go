package checkpoint

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/tokenizer"
	"github.com/surgeon-ml/surgeon/formats/gguf"
)

// SaveGGUF writes l's model as a llama.cpp GGUF file of the given type
// (a gguf.FileTypes name: f32, f16, bf16, q8_0, q4_0, ...) with its
// tokenizer: the source GGUF's tokenizer.ggml.* metadata, or the
// SentencePiece tokenizer.model or byte-level BPE tokenizer.json of a
// folder. The causal LMs of the families llama.cpp shares with surgeon
// are written (gguf.Architectures: Llama, Qwen2, Qwen3, Gemma, Gemma 2,
// Phi-3, GPT-2), in llama.cpp's names and conventions (gguf.WriteModel).
func SaveGGUF(path string, l *Loaded, typ string) error {
	if err := layer.MaterializeAll(l.Model); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if m := l.Model; m.Task() != model.CausalLM {
		return fmt.Errorf("%s: GGUF holds causal LMs; this model is a %s", path, m.Task())
	}
	tok, err := ggufTokenizer(l)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return writeGGUF(path, l, typ, tok, paramSources(l.Model))
}

// StreamGGUF writes the Hugging Face folder opened as s as a llama.cpp
// GGUF file of the given type, as SaveGGUF writes the loaded model, but
// one tensor at a time: each is read from the checkpoint, converted and
// encoded when the writer reaches it, and dropped before the next, so a
// 7B model becomes Q4_K in the memory of a few of its tensors. When ctx
// is cancelled the writing stops and nothing appears at path.
func StreamGGUF(ctx context.Context, path string, s *Skeleton, typ string) error {
	if m := s.Model; m.Task() != model.CausalLM {
		return fmt.Errorf("%s: GGUF holds causal LMs; this model is a %s", path, m.Task())
	}
	tok, err := ggufTokenizer(s.Loaded())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return streamGGUF(ctx, path, s, typ, tok)
}

// streamGGUF is StreamGGUF with the tokenizer metadata tok.
func streamGGUF(ctx context.Context, path string, s *Skeleton, typ string, tok []gguf.KV) error {
	var ts []gguf.SourceTensor
	for _, p := range layer.Params(s.Model) {
		ts = append(ts, gguf.SourceTensor{Name: p.Path, Shape: p.Shape, Values: func() ([]float32, error) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return s.Stored(p)
		}})
	}
	return writeGGUF(path, s.Loaded(), typ, tok, ts)
}

// writeGGUF writes l's causal LM, whose parameters ts reads, with the
// tokenizer metadata tok (gguf.WriteModelFrom).
func writeGGUF(path string, l *Loaded, typ string, tok []gguf.KV, ts []gguf.SourceTensor) error {
	cfg := l.Model.HFConfig()
	name, _ := cfg["_name_or_path"].(string)
	if name == "" {
		name = strings.TrimSuffix(l.Path, "/")
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			name = name[i+1:]
		}
	}
	return gguf.WriteModelFrom(path, gguf.ModelWrite{Config: cfg, Type: typ, Name: name, Tokenizer: tok}, ts)
}

// paramSources reads m's materialized parameters for writeGGUF.
func paramSources(m model.Model) []gguf.SourceTensor {
	var ts []gguf.SourceTensor
	for _, p := range layer.Params(m) {
		ts = append(ts, gguf.SourceTensor{Name: p.Path, Shape: p.Shape, Values: func() ([]float32, error) {
			return slices.Clone(p.Stored()), nil
		}})
	}
	return ts
}

// ggufTokenizer returns the tokenizer.ggml.* metadata for l's tokenizer:
// a GGUF source's own, else the folder's tokenizer: a tokenizer.json with
// a byte-level BPE model (tokenizer.ggml.model "gpt2", its tokens padded to
// the config's vocab_size) or a SentencePiece tokenizer.model ("llama").
func ggufTokenizer(l *Loaded) ([]gguf.KV, error) {
	if l.GGUF != nil {
		var kvs []gguf.KV
		for _, k := range l.GGUF.Keys() {
			if strings.HasPrefix(k, "tokenizer.") {
				v, err := l.GGUF.Value(k)
				if err != nil {
					return nil, err
				}
				kvs = append(kvs, gguf.KV{Key: k, Value: gguf.ValueOf(v)})
			}
		}
		return kvs, nil
	}
	tok, err := LoadTokenizer(l.Path, l)
	if err != nil {
		return nil, err
	}
	if h, ok := tok.(*tokenizer.HF); ok {
		if kvs, ok, err := sentencePieceGGUF(l, h); ok {
			return kvs, err
		}
		p, err := h.ByteLevelBPE()
		if err != nil {
			return nil, fmt.Errorf("writing GGUF: %s: %w (GGUF holds SentencePiece and byte-level BPE tokenizers)", TokenizerJSONFile, err)
		}
		vocab, _ := cfgVocabSize(l)
		kvs, err := gguf.BPEMetadata(p, vocab)
		if err != nil {
			return nil, fmt.Errorf("writing GGUF: %s: %w", TokenizerJSONFile, err)
		}
		return kvs, nil
	}
	spm, ok := tok.(*tokenizer.SPM)
	if !ok {
		return nil, fmt.Errorf("writing GGUF needs a SentencePiece tokenizer (tokenizer.model) or a byte-level BPE tokenizer.json; this model's is %T", tok)
	}
	n := spm.VocabSize()
	tokens := make([]string, n)
	scores := make([]float32, n)
	types := make([]int32, n)
	for i := 0; i < n; i++ {
		tokens[i], scores[i], types[i] = spm.Piece(i), spm.Score(i), int32(spm.Type(i))
	}
	sp := SpecialTokens(l.Path, l, tok)
	kvs := []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: "llama"},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
		{Key: "tokenizer.ggml.scores", Value: scores},
		{Key: "tokenizer.ggml.token_type", Value: types},
		{Key: "tokenizer.ggml.add_bos_token", Value: sp.BOS},
		{Key: "tokenizer.ggml.add_eos_token", Value: sp.EOS},
	}
	for _, id := range []struct {
		key string
		id  int
	}{{"tokenizer.ggml.bos_token_id", spm.BOS()}, {"tokenizer.ggml.eos_token_id", spm.EOS()}, {"tokenizer.ggml.unknown_token_id", spm.UNK()}} {
		if id.id >= 0 {
			kvs = append(kvs, gguf.KV{Key: id.key, Value: uint32(id.id)})
		}
	}
	return kvs, nil
}

// cfgVocabSize is the model's vocab_size from its config, if it has one.
func cfgVocabSize(l *Loaded) (int, bool) {
	switch v := l.Model.HFConfig()["vocab_size"].(type) {
	case float64:
		return int(v), true
	case int:
		return v, true
	case int64:
		return int(v), true
	}
	return 0, false
}
