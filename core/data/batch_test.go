package data

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tokenizer"
)

var _ Tokenizer = (*tokenizer.SPM)(nil)

// charTok encodes each byte as its value plus 10; BOS is 1.
type charTok struct{}

func (charTok) Encode(text string, addBOS bool) []int {
	var ids []int
	if addBOS {
		ids = append(ids, 1)
	}
	for i := 0; i < len(text); i++ {
		ids = append(ids, int(text[i])+10)
	}
	return ids
}

func TestEncode(t *testing.T) {
	ex := []Example{{"abcdef", 1}, {"ab", 0}, {"", -1}}
	tests := []struct {
		name   string
		maxLen int
		bos    bool
		eos    int
		want   [][]int
	}{
		{"plain", 0, false, -1, [][]int{{107, 108, 109, 110, 111, 112}, {107, 108}, nil}},
		{"bos eos", 0, true, 2, [][]int{{1, 107, 108, 109, 110, 111, 112, 2}, {1, 107, 108, 2}, {1, 2}}},
		{"truncate keeps eos", 4, true, 2, [][]int{{1, 107, 108, 2}, {1, 107, 108, 2}, {1, 2}}},
		{"truncate without eos", 3, false, -1, [][]int{{107, 108, 109}, {107, 108}, nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Encode(charTok{}, ex, tc.maxLen, tc.bos, tc.eos)
			for i, s := range got {
				if !slices.Equal(s.IDs, tc.want[i]) || s.Label != ex[i].Label {
					t.Errorf("sequence %d = %+v, want %v label %d", i, s, tc.want[i], ex[i].Label)
				}
			}
		})
	}
}

func TestChunks(t *testing.T) {
	docs := []Example{{"abc", -1}, {"de", -1}}
	tests := []struct {
		name   string
		seqLen int
		bos    int
		want   [][]int
	}{
		// stream: 1 107 108 109 1 110 111
		{"bos", 3, 1, [][]int{{1, 107, 108, 109}, {109, 1, 110, 111}}},
		{"bos short windows", 2, 1, [][]int{{1, 107, 108}, {108, 109, 1}, {1, 110, 111}}},
		// stream: 107 108 109 110 111
		{"no bos, tail dropped", 3, -1, [][]int{{107, 108, 109, 110}}},
		{"too long", 10, 1, nil},
		{"zero length", 0, 1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Chunks(charTok{}, docs, tc.seqLen, tc.bos)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if !slices.Equal(got[i], tc.want[i]) {
					t.Errorf("window %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
			if len(got) > 1 {
				got[0] = append(got[0], 99) // must not overwrite the next window
				if got[1][0] != tc.want[1][0] {
					t.Error("windows share capacity")
				}
			}
		})
	}
}

// sequences returns n sequences of varied lengths whose first id is their index.
func sequences(n int) []Sequence {
	s := make([]Sequence, n)
	for i := range s {
		ids := []int{i}
		for k := 0; k < (i*7)%11; k++ {
			ids = append(ids, 1000+k)
		}
		s[i] = Sequence{IDs: ids, Label: i % 3}
	}
	return s
}

// order lists the sequence index of every row of an epoch.
func order(bs []Batch) []int {
	var o []int
	for _, b := range bs {
		for _, row := range b.IDs {
			o = append(o, row[0])
		}
	}
	return o
}

func TestBatcherDeterminism(t *testing.T) {
	seqs := sequences(53)
	tests := []struct {
		name    string
		shuffle bool
		bucket  int
	}{
		{"shuffle", true, 0},
		{"shuffle sorted buckets", true, 3},
		{"in order", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b1 := NewBatcher(seqs, 8, tc.shuffle, 1, 0).SortByLength(tc.bucket)
			b2 := NewBatcher(seqs, 8, tc.shuffle, 1, 0).SortByLength(tc.bucket)
			if b1.Len() != 7 {
				t.Errorf("Len = %d, want 7", b1.Len())
			}
			e0, e0again, e1 := order(b1.Epoch(0)), order(b2.Epoch(0)), order(b1.Epoch(1))
			if !slices.Equal(e0, e0again) {
				t.Error("same seed and epoch, different batches")
			}
			if got := slices.Sorted(slices.Values(e0)); !slices.Equal(got, order(NewBatcher(seqs, 100, false, 0, 0).Epoch(0))) {
				t.Errorf("epoch does not hold every sequence once: %v", got)
			}
			if tc.shuffle == slices.Equal(e0, e1) {
				t.Errorf("shuffle=%v but epochs 0 and 1 equal=%v", tc.shuffle, slices.Equal(e0, e1))
			}
			if !tc.shuffle && !slices.IsSorted(e0) {
				t.Errorf("unshuffled order %v", e0)
			}
			other := order(NewBatcher(seqs, 8, tc.shuffle, 2, 0).SortByLength(tc.bucket).Epoch(0))
			if tc.shuffle && slices.Equal(e0, other) {
				t.Error("different seeds, same order")
			}
		})
	}
}

func TestBatcherPadding(t *testing.T) {
	seqs := []Sequence{{[]int{5, 6, 7}, 1}, {[]int{8}, 0}, {nil, -1}, {[]int{9, 9, 9, 9, 9}, 2}, {[]int{4, 4}, 0}}
	bs := NewBatcher(seqs, 3, false, 0, -7).Epoch(0)
	if len(bs) != 2 {
		t.Fatalf("%d batches, want 2", len(bs))
	}
	want := []struct {
		ids     [][]int
		mask    string
		labels  []int
		lengths []int
	}{
		{[][]int{{5, 6, 7}, {8, -7, -7}, {-7, -7, -7}}, "111 100 000", []int{1, 0, -1}, []int{3, 1, 0}},
		{[][]int{{9, 9, 9, 9, 9}, {4, 4, -7, -7, -7}}, "11111 11000", []int{2, 0}, []int{5, 2}},
	}
	for k, w := range want {
		b := bs[k]
		var mask []string
		for _, row := range b.Mask {
			var s strings.Builder
			for _, m := range row {
				fmt.Fprint(&s, map[bool]int{false: 0, true: 1}[m])
			}
			mask = append(mask, s.String())
		}
		if !slices.EqualFunc(b.IDs, w.ids, slices.Equal) || strings.Join(mask, " ") != w.mask ||
			!slices.Equal(b.Labels, w.labels) || !slices.Equal(b.Lengths, w.lengths) {
			t.Errorf("batch %d = ids %v mask %v labels %v lengths %v; want %+v", k, b.IDs, mask, b.Labels, b.Lengths, w)
		}
	}
	seqs[0].IDs[0] = 99
	if bs[0].IDs[0][0] != 5 {
		t.Error("batch aliases the sequences")
	}
}

func TestBatcherSortByLengthReducesPadding(t *testing.T) {
	seqs := sequences(200)
	padding := func(b *Batcher) int {
		n := 0
		for _, bt := range b.Epoch(3) {
			for _, row := range bt.Mask {
				for _, m := range row {
					if !m {
						n++
					}
				}
			}
		}
		return n
	}
	plain := padding(NewBatcher(seqs, 16, true, 5, 0))
	sorted := padding(NewBatcher(seqs, 16, true, 5, 0).SortByLength(4))
	if sorted >= plain {
		t.Errorf("padding with length buckets %d, without %d", sorted, plain)
	}
}

func TestBatcherEdgeCases(t *testing.T) {
	if got := NewBatcher(nil, 4, true, 0, 0); got.Len() != 0 || len(got.Epoch(0)) != 0 {
		t.Error("empty batcher yields batches")
	}
	if got := NewBatcher(sequences(3), 0, false, 0, 0); got.Len() != 3 {
		t.Errorf("batch size 0: Len = %d, want 3", got.Len())
	}
}
