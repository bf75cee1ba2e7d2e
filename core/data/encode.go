package data

// Tokenizer turns text into token ids; *tokenizer.SPM satisfies it.
type Tokenizer interface {
	Encode(text string, addBOS bool) []int
}

// Sequence is a tokenized example.
type Sequence struct {
	// IDs are the token ids.
	IDs []int
	// Label is the class index, or -1.
	Label int
}

// Encode tokenizes every example, prepending BOS when addBOS is set and
// appending eos when it is not negative. Sequences longer than maxLen
// tokens are cut to maxLen, keeping the final eos so that a classifier
// reading the last token still sees it; maxLen <= 0 means no limit.
func Encode(tok Tokenizer, ex []Example, maxLen int, addBOS bool, eos int) []Sequence {
	out := make([]Sequence, len(ex))
	for i, e := range ex {
		ids := tok.Encode(e.Text, addBOS)
		if maxLen > 0 {
			limit := maxLen
			if eos >= 0 {
				limit--
			}
			if len(ids) > limit {
				ids = ids[:limit]
			}
		}
		if eos >= 0 {
			ids = append(ids[:len(ids):len(ids)], eos)
		}
		out[i] = Sequence{IDs: ids, Label: e.Label}
	}
	return out
}

// Chunks prepares documents for next-token prediction: it concatenates
// their tokens, with bos before each document when bos is not negative,
// and cuts the stream into windows of seqLen+1 tokens, the inputs being a
// window's first seqLen tokens and the targets its last seqLen. Windows
// start seqLen tokens apart, so consecutive windows share one token and
// every token after the first is a target exactly once. A tail too short
// for a whole window is dropped.
func Chunks(tok Tokenizer, docs []Example, seqLen int, bos int) [][]int {
	if seqLen <= 0 {
		return nil
	}
	var stream []int
	for _, d := range docs {
		if bos >= 0 {
			stream = append(stream, bos)
		}
		stream = append(stream, tok.Encode(d.Text, false)...)
	}
	var out [][]int
	for start := 0; start+seqLen+1 <= len(stream); start += seqLen {
		out = append(out, stream[start:start+seqLen+1:start+seqLen+1])
	}
	return out
}
