package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// ShardedWriter streams tensors into a folder as Hugging Face lays out a
// checkpoint: one basename.safetensors when everything fits in the shard
// limit (or there is none), otherwise basename-0000i-of-0000N.safetensors
// shards filled greedily in descriptor order (a tensor larger than the
// limit gets a shard of its own) plus basename.safetensors.index.json.
// Data goes through Write and WriteFloat32 in descriptor order, as for a
// [Writer]; each shard is a [Writer] made by [Create], so a shard appears
// only when complete. Close writes the index last and removes files of an
// earlier save under the same basename that the new set does not use.
type ShardedWriter struct {
	dir, basename string
	meta          map[string]string
	shards        [][]Descriptor
	names         []string
	total         int64
	next          int     // index of the shard to open next
	cur           *Writer // the open shard, nil between shards
	err           error
	closed        bool
}

// CreateSharded plans the shards of descs and returns a writer for their
// data.
func CreateSharded(dir, basename string, descs []Descriptor, metadata map[string]string, maxShardBytes int64) (*ShardedWriter, error) {
	if basename == "" || strings.ContainsAny(basename, `/\`) {
		return nil, fmt.Errorf("invalid shard basename %q", basename)
	}
	w := &ShardedWriter{dir: dir, basename: basename, meta: metadata}
	var cur []Descriptor
	var curSize int64
	for _, d := range descs {
		size, err := byteSize(d.DType, d.Shape)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", d.Name, err)
		}
		if maxShardBytes > 0 && len(cur) > 0 && curSize+size > maxShardBytes {
			w.shards = append(w.shards, cur)
			cur, curSize = nil, 0
		}
		cur = append(cur, d)
		curSize += size
		w.total += size
	}
	if len(cur) > 0 || len(w.shards) == 0 {
		w.shards = append(w.shards, cur)
	}
	for i := range w.shards {
		w.names = append(w.names, w.fileName(i))
	}
	return w, w.open()
}

// fileName is the name of shard i.
func (w *ShardedWriter) fileName(i int) string {
	if len(w.shards) == 1 {
		return w.basename + ".safetensors"
	}
	return ShardFileName(w.basename, i+1, len(w.shards))
}

// open starts the next shard, closing shards that are complete first.
func (w *ShardedWriter) open() error {
	for w.cur == nil && w.next < len(w.shards) {
		cw, err := Create(filepath.Join(w.dir, w.names[w.next]), w.shards[w.next], &Options{Metadata: w.meta})
		if err != nil {
			w.err = err
			return err
		}
		w.cur = cw
		w.next++
		if _, more := cw.Next(); !more { // a shard of empty tensors only
			if err := w.finish(); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish closes the current shard.
func (w *ShardedWriter) finish() error {
	cw := w.cur
	w.cur = nil
	if err := cw.Close(); err != nil {
		w.err = err
		return err
	}
	return nil
}

// advance closes the current shard when its last tensor is complete and
// opens the next one.
func (w *ShardedWriter) advance() error {
	if w.cur != nil {
		if _, more := w.cur.Next(); more {
			return nil
		}
		if err := w.finish(); err != nil {
			return err
		}
	}
	return w.open()
}

// Next returns the descriptor of the tensor awaiting data, or false when
// every tensor is complete.
func (w *ShardedWriter) Next() (Descriptor, bool) {
	if w.cur == nil {
		return Descriptor{}, false
	}
	return w.cur.Next()
}

func (w *ShardedWriter) check() error {
	switch {
	case w.err != nil:
		return w.err
	case w.closed:
		return errors.New("sharded writer already closed")
	case w.cur == nil:
		return errors.New("data written past the last tensor")
	}
	return nil
}

// Write writes raw tensor bytes in descriptor order; p may cross tensor
// boundaries within a shard but not run past the shard's last tensor.
func (w *ShardedWriter) Write(p []byte) (int, error) {
	if err := w.check(); err != nil {
		return 0, err
	}
	n, err := w.cur.Write(p)
	if err != nil {
		return n, w.fail(err)
	}
	return n, w.advance()
}

// WriteFloat32 encodes values as the current tensor's dtype and writes
// them; they must fit in what remains of the current tensor.
func (w *ShardedWriter) WriteFloat32(values []float32) error {
	if err := w.check(); err != nil {
		return err
	}
	if err := w.cur.WriteFloat32(values); err != nil {
		return w.fail(err)
	}
	return w.advance()
}

func (w *ShardedWriter) fail(err error) error {
	w.err = err
	return err
}

// Abort discards the shard being written. Shards already complete stay:
// write into a temporary folder to make the whole set atomic.
func (w *ShardedWriter) Abort() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if w.err == nil {
		w.err = errors.New("aborted")
	}
	if w.cur != nil {
		return w.cur.Abort()
	}
	return nil
}

// Close checks that every tensor is complete, writes the index of a
// sharded set and removes stale files of the basename.
func (w *ShardedWriter) Close() error {
	if w.closed {
		return errors.New("sharded writer already closed")
	}
	if w.err != nil {
		return errors.Join(w.err, w.Abort())
	}
	if w.cur != nil {
		d, _ := w.cur.Next()
		err := fmt.Errorf("tensor %q: not all data written", d.Name)
		return errors.Join(err, w.Abort())
	}
	w.closed = true
	keep := map[string]bool{}
	for _, n := range w.names {
		keep[n] = true
	}
	if len(w.shards) > 1 {
		weightMap := map[string]string{}
		for i, sh := range w.shards {
			for _, d := range sh {
				weightMap[d.Name] = w.names[i]
			}
		}
		idx := struct {
			Metadata  map[string]any    `json:"metadata"`
			WeightMap map[string]string `json:"weight_map"`
		}{map[string]any{"total_size": w.total}, weightMap}
		raw, err := json.MarshalIndent(idx, "", "  ")
		indexName := w.basename + ".safetensors.index.json"
		if err != nil {
			return fmt.Errorf("%s: %w", indexName, err)
		}
		if err := writeFileAtomic(filepath.Join(w.dir, indexName), append(raw, '\n')); err != nil {
			return err
		}
		keep[indexName] = true
	}
	return removeStale(w.dir, w.basename, keep)
}
