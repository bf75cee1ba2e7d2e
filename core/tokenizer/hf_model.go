package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// modelJSON holds a tokenizer.json model's settings; its vocabulary and
// merges are read separately by jsonScan.
type modelJSON struct {
	Type                    string          `json:"type"`
	UnkToken                *string         `json:"unk_token"`
	UnkID                   *int            `json:"unk_id"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	MaxInputCharsPerWord    *int            `json:"max_input_chars_per_word"`
	Dropout                 *float64        `json:"dropout"`
	Vocab                   json.RawMessage `json:"-"`
	Merges                  json.RawMessage `json:"-"`

	parsedVocab *vocab           // the vocabulary object, read in place
	rawMerges   [][2][]byte      // the merges, read in place
	merges      map[uint64]merge // the merges, resolved in place
}

func parseModel(raw json.RawMessage, path string) (hfModel, error) {
	if isNull(raw) {
		return nil, fmt.Errorf("%s: missing", path)
	}
	return parseModelScan(&jsonScan{data: raw}, path)
}

// parseModelScan reads the model object at the scanner in one pass: the
// vocabulary and merges by jsonScan, the small settings by encoding/json.
func parseModelScan(j *jsonScan, path string) (hfModel, error) {
	small := []byte{'{'}
	var c modelJSON
	var vocabErr error // errors that already name their path
	prefix, prefixKnown := "", false
	err := j.object(func(k string) error {
		switch {
		case k == "vocab" && j.peek() == '{':
			c.parsedVocab, vocabErr = parseVocabScan(j, path+".vocab")
			c.Vocab = json.RawMessage("{}")
			return vocabErr
		case k == "merges" && j.peek() == '[' && c.parsedVocab != nil && prefixKnown:
			// The usual order (settings, vocab, merges): resolve each
			// merge as it is read, keeping no copy of the list.
			c.merges, vocabErr = resolveMerges(j, c.parsedVocab, prefix, path)
			if vocabErr != nil {
				return vocabErr
			}
			c.Merges = json.RawMessage("[]")
			return nil
		case k == "merges" && j.peek() == '[':
			var err error
			c.rawMerges, err = scanMerges(j)
			if err != nil {
				vocabErr = fmt.Errorf("%s.merges%w", path, err)
				return vocabErr
			}
			c.Merges = json.RawMessage("[]")
			return nil
		}
		v, err := j.skip()
		if err != nil {
			return err
		}
		if k == "vocab" {
			c.Vocab = v
			return nil
		}
		if k == "continuing_subword_prefix" {
			var p *string
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("%s.%s: %w", path, k, err)
			}
			prefix, prefixKnown = "", true
			if p != nil {
				prefix = *p
			}
		}
		if len(small) > 1 {
			small = append(small, ',')
		}
		small = strconv.AppendQuote(small, k)
		small = append(append(small, ':'), v...)
		return nil
	})
	if vocabErr != nil {
		return nil, vocabErr
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	small = append(small, '}')
	saved := c
	if err := json.Unmarshal(small, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Vocab, c.Merges, c.rawMerges, c.parsedVocab, c.merges = saved.Vocab, saved.Merges, saved.rawMerges, saved.parsedVocab, saved.merges
	typ := c.Type
	if typ == "" { // older files leave the model untagged
		switch {
		case !isNull(c.Merges):
			typ = "BPE"
		case strings.HasPrefix(strings.TrimSpace(string(c.Vocab)), "["):
			typ = "Unigram"
		case c.MaxInputCharsPerWord != nil:
			typ = "WordPiece"
		default:
			typ = "WordLevel"
		}
	}
	switch typ {
	case "BPE":
		return newBPE(&c, path)
	case "WordPiece":
		v, err := modelVocab(&c, path+".vocab")
		if err != nil {
			return nil, err
		}
		m := &wordPieceModel{vocab: v, unk: -1, prefix: "##", maxChars: 100}
		if c.ContinuingSubwordPrefix != nil {
			m.prefix = *c.ContinuingSubwordPrefix
		}
		if c.MaxInputCharsPerWord != nil {
			m.maxChars = *c.MaxInputCharsPerWord
		}
		if c.UnkToken != nil {
			id, ok := v.ids[*c.UnkToken]
			if !ok {
				return nil, fmt.Errorf("%s.unk_token: %q is not in the vocabulary", path, *c.UnkToken)
			}
			m.unk = id
		}
		return m, nil
	case "WordLevel":
		v, err := modelVocab(&c, path+".vocab")
		if err != nil {
			return nil, err
		}
		m := &wordLevel{vocab: v, unk: -1}
		if c.UnkToken != nil {
			if id, ok := v.ids[*c.UnkToken]; ok {
				m.unk = id
			}
		}
		return m, nil
	case "Unigram":
		return newUnigram(&c, path)
	}
	return nil, unknown(path, typ)
}

// vocab maps tokens to ids and back.
type vocab struct {
	ids    map[string]int
	tokens []string
	has    []bool
}

func (v *vocab) tokenToID(t string) (int, bool) {
	id, ok := v.ids[t]
	return id, ok
}

func (v *vocab) idToToken(id int) (string, bool) {
	if id < 0 || id >= len(v.tokens) || !v.has[id] {
		return "", false
	}
	return v.tokens[id], true
}

func (v *vocab) size() int { return len(v.tokens) }

func (v *vocab) add(tok string, id int, path string) error {
	if id < 0 || id > 1<<26 {
		return fmt.Errorf("%s: token %q: id %d out of range", path, tok, id)
	}
	if id >= len(v.tokens) {
		n := max(id+1, 2*len(v.tokens))
		v.tokens = append(v.tokens, make([]string, n-len(v.tokens))...)
		v.has = append(v.has, make([]bool, n-len(v.has))...)
	}
	v.ids[tok] = id
	v.tokens[id] = tok
	v.has[id] = true
	return nil
}

func (v *vocab) trim() {
	n := len(v.tokens)
	for n > 0 && !v.has[n-1] {
		n--
	}
	v.tokens, v.has = v.tokens[:n], v.has[:n]
}

// parseVocab reads a {"token": id, ...} object.
func parseVocab(raw json.RawMessage, path string) (*vocab, error) {
	if isNull(raw) {
		return nil, fmt.Errorf("%s: missing", path)
	}
	return parseVocabScan(&jsonScan{data: raw}, path)
}

// modelVocab returns the vocabulary a model object held.
func modelVocab(c *modelJSON, path string) (*vocab, error) {
	if c.parsedVocab != nil {
		return c.parsedVocab, nil
	}
	return parseVocab(c.Vocab, path)
}

func parseVocabScan(j *jsonScan, path string) (*vocab, error) {
	// Tokens are gathered in one arena and become substrings of a single
	// string: one allocation rather than one per token.
	type entry struct{ off, n, id int }
	var arena []byte
	var entries []entry
	if j.peek() != '{' {
		return nil, fmt.Errorf("%s: not an object", path)
	}
	j.pos++
	if j.peek() == '}' {
		j.pos++
	} else {
		for {
			k, err := j.strBytes()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if err := j.expect(':'); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			id, err := j.int()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			entries = append(entries, entry{len(arena), len(k), id})
			arena = append(arena, k...)
			c := j.peek()
			j.pos++
			if c == '}' {
				break
			}
			if c != ',' {
				return nil, fmt.Errorf("%s: %w: want , or } at byte %d", path, errJSON, j.pos-1)
			}
		}
	}
	all := string(arena)
	v := &vocab{ids: make(map[string]int, len(entries))}
	for _, e := range entries {
		if err := v.add(all[e.off:e.off+e.n], e.id, path); err != nil {
			return nil, err
		}
	}
	v.trim()
	return v, nil
}

// resolveMerges reads BPE merges (string or pair form) into the map from
// token pairs to their rank and merged token.
func resolveMerges(j *jsonScan, v *vocab, prefix, path string) (map[uint64]merge, error) {
	out := make(map[uint64]merge, 2*len(v.ids))
	var buf []byte
	pre := []byte(prefix)
	err := j.list(func(i int) error {
		var a, b []byte
		if j.peek() == '[' {
			n := 0
			if err := j.list(func(k int) error {
				s, err := j.strBytes()
				switch k {
				case 0:
					a = s
				case 1:
					b = s
				}
				n++
				return err
			}); err != nil {
				return err
			}
			if n != 2 {
				return fmt.Errorf("[%d]: %d parts, want 2", i, n)
			}
		} else {
			s, err := j.strBytes()
			if err != nil {
				return err
			}
			k := bytes.IndexByte(s, ' ')
			if k < 0 {
				return fmt.Errorf("[%d]: %q is not two tokens separated by a space", i, s)
			}
			a, b = s[:k], s[k+1:]
			if k2 := bytes.IndexByte(b, ' '); k2 >= 0 {
				b = b[:k2]
			}
		}
		ia, oka := v.ids[string(a)]
		ib, okb := v.ids[string(b)]
		buf = append(append(buf[:0], a...), bytes.TrimPrefix(b, pre)...)
		im, okm := v.ids[string(buf)]
		if !oka || !okb || !okm {
			return fmt.Errorf("[%d]: %q + %q: token not in the vocabulary", i, a, b)
		}
		out[pairKey(int32(ia), int32(ib))] = merge{int32(i), int32(im)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s.merges%w", path, err)
	}
	return out, nil
}

// scanMerges reads BPE merges, in the string form "a b" or the pair form
// ["a", "b"], as byte slices of the input where they hold no escapes.
func scanMerges(j *jsonScan) ([][2][]byte, error) {
	var out [][2][]byte
	err := j.list(func(i int) error {
		var a, b []byte
		if j.peek() == '[' {
			n := 0
			if err := j.list(func(k int) error {
				s, err := j.strBytes()
				switch k {
				case 0:
					a = s
				case 1:
					b = s
				}
				n++
				return err
			}); err != nil {
				return err
			}
			if n != 2 {
				return fmt.Errorf("[%d]: %d parts, want 2", i, n)
			}
		} else {
			s, err := j.strBytes()
			if err != nil {
				return err
			}
			k := bytes.IndexByte(s, ' ')
			if k < 0 {
				return fmt.Errorf("[%d]: %q is not two tokens separated by a space", i, s)
			}
			a, b = s[:k], s[k+1:]
			if k2 := bytes.IndexByte(b, ' '); k2 >= 0 {
				b = b[:k2]
			}
		}
		out = append(out, [2][]byte{a, b})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// byteToken is SentencePiece's spelling of a byte, "<0x0A>".
func byteToken(b byte) string {
	const hex = "0123456789ABCDEF"
	return string([]byte{'<', '0', 'x', hex[b>>4], hex[b&15], '>'})
}

// bpe is the BPE model: each piece starts as its characters (with the
// continuing-subword prefix and end-of-word suffix, unknown ones as their
// bytes or the unknown token) and adjacent symbols are merged, lowest merge
// rank first, leftmost first among equals.
type bpe struct {
	*vocab
	merges       map[uint64]merge
	unk          int
	prefix       string
	suffix       string
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	byteIDs      [256]int32 // <0xXX> tokens, -1 when missing
}

type merge struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func newBPE(c *modelJSON, path string) (*bpe, error) {
	v, err := modelVocab(c, path+".vocab")
	if err != nil {
		return nil, err
	}
	m := &bpe{vocab: v, unk: -1, fuseUnk: c.FuseUnk, byteFallback: c.ByteFallback, ignoreMerges: c.IgnoreMerges}
	if c.Dropout != nil && *c.Dropout > 0 {
		return nil, fmt.Errorf("%s.dropout: BPE dropout (%g) is random; surgeon encodes deterministically", path, *c.Dropout)
	}
	if c.UnkToken != nil {
		if id, ok := v.ids[*c.UnkToken]; ok {
			m.unk = id
		}
	}
	if c.ContinuingSubwordPrefix != nil {
		m.prefix = *c.ContinuingSubwordPrefix
	}
	if c.EndOfWordSuffix != nil {
		m.suffix = *c.EndOfWordSuffix
	}
	for b := range m.byteIDs {
		m.byteIDs[b] = -1
		if id, ok := v.ids[byteToken(byte(b))]; ok {
			m.byteIDs[b] = int32(id)
		}
	}
	if c.merges != nil {
		m.merges = c.merges
		return m, nil
	}
	if c.rawMerges == nil && !isNull(c.Merges) {
		raw, err := scanMerges(&jsonScan{data: c.Merges})
		if err != nil {
			return nil, fmt.Errorf("%s.merges%w", path, err)
		}
		c.rawMerges = raw
	}
	type triple struct {
		key uint64
		id  int32
	}
	var list []triple
	var buf []byte
	for i, p := range c.rawMerges {
		a, b := p[0], p[1]
		ia, oka := v.ids[string(a)]
		ib, okb := v.ids[string(b)]
		buf = append(append(buf[:0], a...), bytes.TrimPrefix(b, []byte(m.prefix))...)
		im, okm := v.ids[string(buf)]
		if !oka || !okb || !okm {
			return nil, fmt.Errorf("%s.merges[%d]: %q + %q: token not in the vocabulary", path, i, a, b)
		}
		list = append(list, triple{pairKey(int32(ia), int32(ib)), int32(im)})
	}
	m.merges = make(map[uint64]merge, len(list))
	for i, t := range list {
		m.merges[t.key] = merge{int32(i), t.id}
	}
	return m, nil
}

func (m *bpe) encode(dst []int, piece string) []int {
	if m.ignoreMerges {
		if id, ok := m.ids[piece]; ok {
			return append(dst, id)
		}
	}
	var buf [48]int32
	syms := buf[:0]
	lastUnk := false
	for i := 0; i < len(piece); {
		_, w := utf8.DecodeRuneInString(piece[i:])
		s := piece[i : i+w]
		if m.prefix != "" && i > 0 || m.suffix != "" && i+w == len(piece) {
			if i > 0 {
				s = m.prefix + s
			}
			if i+w == len(piece) {
				s += m.suffix
			}
		}
		if id, ok := m.ids[s]; ok {
			syms = append(syms, int32(id))
			lastUnk = false
			i += w
			continue
		}
		if m.byteFallback {
			all := true
			for k := 0; k < len(s); k++ {
				if m.byteIDs[s[k]] < 0 {
					all = false
					break
				}
			}
			if all {
				for k := 0; k < len(s); k++ {
					syms = append(syms, m.byteIDs[s[k]])
				}
				lastUnk = false
				i += w
				continue
			}
		}
		if m.unk >= 0 {
			if !(m.fuseUnk && lastUnk) {
				syms = append(syms, int32(m.unk))
			}
			lastUnk = true
		}
		i += w
	}
	if len(syms) > 1 {
		if len(syms) <= 48 {
			syms = m.mergeSmall(syms)
		} else {
			syms = m.mergeHeap(syms)
		}
	}
	for _, s := range syms {
		dst = append(dst, int(s))
	}
	return dst
}

// mergeSmall merges a short word: each step scans the pair ranks, kept
// up to date around the last merge.
func (m *bpe) mergeSmall(syms []int32) []int32 {
	var rbuf [48]merge
	ranks := rbuf[:len(syms)-1]
	const none = math.MaxInt32
	look := func(k int) merge {
		if mv, ok := m.merges[pairKey(syms[k], syms[k+1])]; ok {
			return mv
		}
		return merge{none, -1}
	}
	for k := range ranks {
		ranks[k] = look(k)
	}
	for len(ranks) > 0 {
		best := -1
		br := int32(none)
		for k, r := range ranks {
			if r.rank < br {
				best, br = k, r.rank
			}
		}
		if best < 0 {
			break
		}
		syms[best] = ranks[best].id
		syms = append(syms[:best+1], syms[best+2:]...)
		ranks = append(ranks[:best], ranks[best+1:]...)
		if best > 0 {
			ranks[best-1] = look(best - 1)
		}
		if best < len(ranks) {
			ranks[best] = look(best)
		}
	}
	return syms
}

// mergeHeap merges a long word with a priority queue of candidate pairs
// over a linked list of symbols.
func (m *bpe) mergeHeap(syms []int32) []int32 {
	n := len(syms)
	prev := make([]int32, n)
	nxt := make([]int32, n)
	alive := make([]bool, n)
	for i := range syms {
		prev[i], nxt[i], alive[i] = int32(i-1), int32(i+1), true
	}
	nxt[n-1] = -1
	h := &mergeHeap{}
	push := func(pos int32) {
		if pos < 0 || nxt[pos] < 0 {
			return
		}
		if mv, ok := m.merges[pairKey(syms[pos], syms[nxt[pos]])]; ok {
			h.push(heapItem{mv.rank, pos, mv.id})
		}
	}
	for i := 0; i < n-1; i++ {
		push(int32(i))
	}
	for len(*h) > 0 {
		it := h.pop()
		p := it.pos
		if !alive[p] || nxt[p] < 0 {
			continue
		}
		q := nxt[p]
		mv, ok := m.merges[pairKey(syms[p], syms[q])]
		if !ok || mv.id != it.id || mv.rank != it.rank {
			continue
		}
		syms[p] = mv.id
		alive[q] = false
		nxt[p] = nxt[q]
		if nxt[q] >= 0 {
			prev[nxt[q]] = p
		}
		push(prev[p])
		push(p)
	}
	out := syms[:0]
	for i := int32(0); i >= 0; i = nxt[i] {
		out = append(out, syms[i])
	}
	return out
}

type heapItem struct{ rank, pos, id int32 }

func (a heapItem) less(b heapItem) bool {
	return a.rank < b.rank || a.rank == b.rank && a.pos < b.pos
}

type mergeHeap []heapItem

func (h *mergeHeap) push(x heapItem) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *mergeHeap) pop() heapItem {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].less(s[m]) {
			m = l
		}
		if r < len(s) && s[r].less(s[m]) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// wordPieceModel is the WordPiece model: each piece is split greedily,
// longest vocabulary match first, the matches after the first carrying the
// continuing-subword prefix; a piece that cannot be split, or is longer
// than maxChars characters, is the unknown token.
type wordPieceModel struct {
	*vocab
	unk      int
	prefix   string
	maxChars int
}

func (m *wordPieceModel) encode(dst []int, piece string) []int {
	if utf8.RuneCountInString(piece) > m.maxChars {
		return m.appendUnk(dst)
	}
	n := len(dst)
	for start := 0; start < len(piece); {
		end := len(piece)
		found := -1
		for end > start {
			sub := piece[start:end]
			if start > 0 {
				sub = m.prefix + sub
			}
			if id, ok := m.ids[sub]; ok {
				found = id
				break
			}
			_, w := utf8.DecodeLastRuneInString(piece[start:end])
			end -= w
		}
		if found < 0 {
			return m.appendUnk(dst[:n])
		}
		dst = append(dst, found)
		start = end
	}
	return dst
}

func (m *wordPieceModel) appendUnk(dst []int) []int {
	if m.unk >= 0 {
		dst = append(dst, m.unk)
	}
	return dst
}

// wordLevel maps each piece to its id, or the unknown token.
type wordLevel struct {
	*vocab
	unk int
}

func (m *wordLevel) encode(dst []int, piece string) []int {
	if id, ok := m.ids[piece]; ok {
		return append(dst, id)
	}
	if m.unk >= 0 {
		dst = append(dst, m.unk)
	}
	return dst
}

// unigram is the Unigram model: the segmentation of a piece with the best
// total log-probability (Viterbi), characters without a token becoming the
// unknown token (consecutive ones fused), or their bytes with
// byte_fallback.
type unigram struct {
	*vocab
	scores       []float64
	unk          int
	byteFallback bool
	unkScore     float64
	maxLen       int // longest token, in bytes
	byteIDs      [256]int32
}

func newUnigram(c *modelJSON, path string) (*unigram, error) {
	if isNull(c.Vocab) {
		return nil, fmt.Errorf("%s.vocab: missing", path)
	}
	m := &unigram{vocab: &vocab{ids: map[string]int{}}, unk: -1, byteFallback: c.ByteFallback}
	minScore := math.Inf(1)
	j := &jsonScan{data: c.Vocab}
	err := j.list(func(i int) error {
		var tok string
		var score float64
		err := j.list(func(k int) error {
			switch k {
			case 0:
				s, err := j.str()
				tok = s
				return err
			case 1:
				s, err := j.number()
				if err != nil {
					return err
				}
				score, err = strconv.ParseFloat(s, 64)
				return err
			}
			return fmt.Errorf("%w: more than 2 fields", errJSON)
		})
		if err != nil {
			return fmt.Errorf("[%d]: %w", i, err)
		}
		if _, dup := m.ids[tok]; !dup {
			if err := m.add(tok, i, path+".vocab"); err != nil {
				return err
			}
		}
		m.scores = append(m.scores, score)
		minScore = math.Min(minScore, score)
		m.maxLen = max(m.maxLen, len(tok))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s.vocab: %w", path, err)
	}
	m.trim()
	if c.UnkID != nil {
		if *c.UnkID < 0 || *c.UnkID >= len(m.scores) {
			return nil, fmt.Errorf("%s.unk_id: %d out of range", path, *c.UnkID)
		}
		m.unk = *c.UnkID
	}
	m.unkScore = minScore - 10
	for b := range m.byteIDs {
		m.byteIDs[b] = -1
		if id, ok := m.ids[byteToken(byte(b))]; ok {
			m.byteIDs[b] = int32(id)
		}
	}
	return m, nil
}

type lattice struct {
	score float64
	start int
	id    int
	set   bool
}

func (m *unigram) encode(dst []int, piece string) []int {
	n := len(piece)
	best := make([]lattice, n+1)
	best[0].set = true
	for start := 0; start < n; {
		if !best[start].set {
			_, w := utf8.DecodeRuneInString(piece[start:])
			start += w
			continue
		}
		base := best[start].score
		_, mb := utf8.DecodeRuneInString(piece[start:])
		single := false
		for end := start + 1; end <= n && end-start <= m.maxLen; end++ {
			if end < n && !utf8.RuneStart(piece[end]) {
				continue
			}
			id, ok := m.ids[piece[start:end]]
			if !ok {
				continue
			}
			if s := base + m.scores[id]; !best[end].set || s > best[end].score {
				best[end] = lattice{s, start, id, true}
			}
			if end-start == mb {
				single = true
			}
		}
		if !single {
			end := start + mb
			if s := base + m.unkScore; !best[end].set || s > best[end].score {
				best[end] = lattice{s, start, m.unk, true}
			}
		}
		start += mb
	}
	// Walk back, fusing runs of unknown characters.
	var parts []string
	unkEnd := -1
	for end := n; end > 0; {
		l := best[end]
		if l.id == m.unk {
			if unkEnd < 0 {
				unkEnd = end
			}
		} else {
			if unkEnd >= 0 {
				parts = append(parts, piece[end:unkEnd])
				unkEnd = -1
			}
			parts = append(parts, piece[l.start:end])
		}
		end = l.start
	}
	if unkEnd >= 0 {
		parts = append(parts, piece[:unkEnd])
	}
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		if id, ok := m.ids[p]; ok {
			dst = append(dst, id)
			continue
		}
		if m.byteFallback {
			all := true
			for k := 0; k < len(p); k++ {
				all = all && m.byteIDs[p[k]] >= 0
			}
			if all {
				for k := 0; k < len(p); k++ {
					dst = append(dst, int(m.byteIDs[p[k]]))
				}
				continue
			}
		}
		if m.unk >= 0 {
			dst = append(dst, m.unk)
		}
	}
	return dst
}
