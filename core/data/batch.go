package data

import (
	"math/rand/v2"
	"slices"

	"github.com/surgeon-ml/surgeon/core/model"
)

// batchStream keeps the Batcher's random stream apart from Split's.
const batchStream = 0xba7c4

// Batch is a padded group of sequences with their labels and true lengths.
type Batch struct {
	model.Batch
	// Labels holds each row's class index, or -1.
	Labels []int
	// Lengths holds each row's number of real tokens.
	Lengths []int
}

// Batcher groups sequences into batches, in an order fixed by its seed and
// the epoch number, each padded only to its own longest sequence.
type Batcher struct {
	seqs    []Sequence
	size    int
	shuffle bool
	seed    int64
	pad     int
	bucket  int
}

// NewBatcher batches seqs batchSize at a time (the last batch may be
// smaller), padding on the right with pad. With shuffle the order changes
// every epoch, deterministically for a given seed; without it the
// sequences keep their order. A batchSize below one counts as one.
func NewBatcher(seqs []Sequence, batchSize int, shuffle bool, seed int64, pad int) *Batcher {
	return &Batcher{seqs: seqs, size: max(batchSize, 1), shuffle: shuffle, seed: seed, pad: pad}
}

// SortByLength makes each epoch sort the sequences by length within
// buckets of batchesPerBucket batches, so that sequences of similar length
// share a batch and less padding is spent; with shuffle the batches are
// then put in random order. Zero or less turns sorting off. It returns b.
func (b *Batcher) SortByLength(batchesPerBucket int) *Batcher {
	b.bucket = max(batchesPerBucket, 0)
	return b
}

// Len returns the number of batches per epoch.
func (b *Batcher) Len() int {
	return (len(b.seqs) + b.size - 1) / b.size
}

// Epoch returns the batches of the given epoch. The same seed and epoch
// always give the same batches.
func (b *Batcher) Epoch(epoch int) []Batch {
	order := make([]int, len(b.seqs))
	for i := range order {
		order[i] = i
	}
	var rng *rand.Rand
	if b.shuffle {
		rng = rand.New(rand.NewPCG(uint64(b.seed), batchStream^uint64(epoch)))
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	if b.bucket > 0 {
		span := b.bucket * b.size
		for start := 0; start < len(order); start += span {
			bucket := order[start:min(start+span, len(order))]
			slices.SortStableFunc(bucket, func(x, y int) int {
				return len(b.seqs[y].IDs) - len(b.seqs[x].IDs)
			})
		}
	}
	var groups [][]int
	for start := 0; start < len(order); start += b.size {
		groups = append(groups, order[start:min(start+b.size, len(order))])
	}
	if rng != nil && b.bucket > 0 {
		rng.Shuffle(len(groups), func(i, j int) { groups[i], groups[j] = groups[j], groups[i] })
	}
	out := make([]Batch, len(groups))
	for k, g := range groups {
		ids := make([][]int, len(g))
		bt := Batch{Labels: make([]int, len(g)), Lengths: make([]int, len(g))}
		for r, i := range g {
			ids[r] = b.seqs[i].IDs
			bt.Labels[r] = b.seqs[i].Label
			bt.Lengths[r] = len(b.seqs[i].IDs)
		}
		bt.Batch = model.NewBatch(ids, b.pad)
		out[k] = bt
	}
	return out
}
