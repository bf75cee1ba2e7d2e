package checkpoint

import "fmt"

// TokenizerFiles returns the tokenizer files to write beside a Hugging Face
// folder converted from l (nil when l carries no tokenizer).
func TokenizerFiles(l *Loaded) (map[string][]byte, error) {
	if l.GGUF == nil {
		return nil, nil
	}
	return nil, fmt.Errorf("writing the GGUF tokenizer as tokenizer.model is not implemented yet")
}
