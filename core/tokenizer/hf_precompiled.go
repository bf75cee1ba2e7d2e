package tokenizer

import (
	"encoding/binary"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// precompiled is SentencePiece's precompiled normalization rules
// (precompiled_charsmap): a Darts double-array trie from UTF-8 sequences to
// offsets of replacement strings. It rewrites text as the tokenizers
// library does: each grapheme shorter than 6 bytes is looked up whole,
// else each of its characters. Graphemes are approximated as a character
// and the combining marks, variation selectors and zero-width joiners after
// it (Go's standard library has no grapheme segmentation).
type precompiled struct {
	trie       []uint32
	normalized string
}

func newPrecompiled(data []byte) (*precompiled, error) {
	if len(data) == 0 {
		return &precompiled{}, nil
	}
	if len(data) < 4 {
		return nil, errors.New("precompiled_charsmap: too short")
	}
	n := binary.LittleEndian.Uint32(data)
	if uint64(n) > uint64(len(data)-4) || n%4 != 0 {
		return nil, errors.New("precompiled_charsmap: trie size out of range")
	}
	p := &precompiled{trie: make([]uint32, n/4), normalized: string(data[4+n:])}
	for i := range p.trie {
		p.trie[i] = binary.LittleEndian.Uint32(data[4+4*i:])
	}
	return p, nil
}

// transform returns the replacement of chunk: the value of the first
// (shortest) trie key that is a prefix of chunk, as spm_precompiled does.
func (p *precompiled) transform(chunk string) (string, bool) {
	if len(p.trie) == 0 {
		return "", false
	}
	pos := uint32(0)
	unit := p.trie[0]
	pos ^= dartsOffset(unit)
	for i := 0; i < len(chunk); i++ {
		c := chunk[i]
		if c == 0 {
			break
		}
		pos ^= uint32(c)
		if int(pos) >= len(p.trie) {
			return "", false
		}
		unit = p.trie[pos]
		if unit&(1<<31|0xFF) != uint32(c) {
			return "", false
		}
		pos ^= dartsOffset(unit)
		if int(pos) >= len(p.trie) {
			return "", false
		}
		if (unit>>8)&1 == 1 {
			v := int(p.trie[pos] & (1<<31 - 1))
			if v > len(p.normalized) {
				return "", false
			}
			end := strings.IndexByte(p.normalized[v:], 0)
			if end < 0 {
				return p.normalized[v:], true
			}
			return p.normalized[v : v+end], true
		}
	}
	return "", false
}

func dartsOffset(unit uint32) uint32 {
	return (unit >> 10) << ((unit & (1 << 9)) >> 6)
}

func (p *precompiled) normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		_, w := utf8.DecodeRuneInString(s[i:])
		end := i + w
		for end < len(s) {
			r, w2 := utf8.DecodeRuneInString(s[end:])
			if !unicode.Is(unicode.M, r) && r != 0x200D && !(0xFE00 <= r && r <= 0xFE0F) {
				break
			}
			end += w2
		}
		g := s[i:end]
		if len(g) < 6 {
			if t, ok := p.transform(g); ok {
				b.WriteString(t)
				i = end
				continue
			}
		}
		for j := 0; j < len(g); {
			_, w := utf8.DecodeRuneInString(g[j:])
			if t, ok := p.transform(g[j : j+w]); ok {
				b.WriteString(t)
			} else {
				b.WriteString(g[j : j+w])
			}
			j += w
		}
		i = end
	}
	return b.String()
}
