package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// Standard Hugging Face file names.
const (
	// SingleFileName is the checkpoint file of an unsharded model folder.
	SingleFileName = "model.safetensors"
	// IndexFileName is the index of a sharded model folder.
	IndexFileName = "model.safetensors.index.json"
)

// Index is the content of a model.safetensors.index.json file.
type Index struct {
	// Metadata is free-form; Hugging Face writes {"total_size": N}.
	Metadata map[string]any `json:"metadata"`
	// WeightMap maps each tensor name to the shard file holding it,
	// relative to the index's folder.
	WeightMap map[string]string `json:"weight_map"`
}

// Model is a checkpoint made of one or more safetensors files (shards)
// presented as one set of uniquely named tensors.
type Model struct {
	path   string
	shards []*File
	index  *Index
	owner  map[string]*File
	names  []string
}

// OpenModel opens a checkpoint. path may be a .safetensors file, or a folder
// holding model.safetensors, or model.safetensors.index.json with its
// shards, or exactly one *.safetensors file. model.safetensors wins over an
// index when both exist, as in Hugging Face transformers.
//
// For a sharded model every shard must exist and be valid, every name of
// the weight map must be in its shard, and no tensor may be in two shards.
func OpenModel(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return openSingle(path, path)
	}
	single := filepath.Join(path, SingleFileName)
	if fileExists(single) {
		return openSingle(path, single)
	}
	if idx := filepath.Join(path, IndexFileName); fileExists(idx) {
		return openIndexed(path, idx)
	}
	matches, err := filepath.Glob(filepath.Join(path, "*.safetensors"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("%s: no %s, %s or other *.safetensors file in folder", path, SingleFileName, IndexFileName)
	case 1:
		return openSingle(path, matches[0])
	}
	for i, m := range matches {
		matches[i] = filepath.Base(m)
	}
	return nil, fmt.Errorf("%s: %d *.safetensors files (%s) but no %s to say how they fit together",
		path, len(matches), strings.Join(matches, ", "), IndexFileName)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func openSingle(path, file string) (*Model, error) {
	f, err := Open(file)
	if err != nil {
		return nil, err
	}
	m := &Model{path: path, shards: []*File{f}, owner: map[string]*File{}}
	for _, n := range f.Names() {
		m.owner[n] = f
	}
	m.names = f.Names()
	return m, nil
}

// ReadIndex reads and checks the structure of a model.safetensors.index.json
// file: a weight_map of tensor names to local shard file names.
func ReadIndex(path string) (*Index, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var idx Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrInvalid, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: %w: empty or missing weight_map", path, ErrInvalid)
	}
	for name, shard := range idx.WeightMap {
		if shard == "" || !filepath.IsLocal(shard) {
			return nil, fmt.Errorf("%s: %w: tensor %q maps to shard %q outside the folder", path, ErrInvalid, name, shard)
		}
	}
	return &idx, nil
}

func openIndexed(dir, indexPath string) (_ *Model, err error) {
	idx, err := ReadIndex(indexPath)
	if err != nil {
		return nil, err
	}
	m := &Model{path: dir, index: idx, owner: map[string]*File{}}
	defer func() {
		if err != nil {
			_ = m.Close() // the validation error is the one to report
		}
	}()
	shardNames := slices.Sorted(func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, s := range idx.WeightMap {
			if !seen[s] {
				seen[s] = true
				if !yield(s) {
					return
				}
			}
		}
	})
	byName := map[string]*File{}
	for _, s := range shardNames {
		f, err := Open(filepath.Join(dir, filepath.FromSlash(s)))
		if err != nil {
			return nil, fmt.Errorf("%s: shard %q: %w", indexPath, s, err)
		}
		m.shards = append(m.shards, f)
		byName[s] = f
		for _, n := range f.Names() {
			if other, dup := m.owner[n]; dup {
				return nil, fmt.Errorf("%s: %w: tensor %q is in both %s and %s", indexPath, ErrInvalid, n, other.Path(), f.Path())
			}
			m.owner[n] = f
			m.names = append(m.names, n)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(idx.WeightMap)) {
		s := idx.WeightMap[name]
		if got := m.owner[name]; got != byName[s] {
			if got == nil {
				return nil, fmt.Errorf("%s: %w: tensor %q listed in shard %q is missing from it", indexPath, ErrInvalid, name, s)
			}
			return nil, fmt.Errorf("%s: %w: tensor %q listed in shard %q is in %s instead", indexPath, ErrInvalid, name, s, got.Path())
		}
	}
	return m, nil
}

// Path returns the path the model was opened from.
func (m *Model) Path() string { return m.path }

// Shards returns the files of the model, in the order their tensors are
// listed by Names.
func (m *Model) Shards() []*File { return slices.Clone(m.shards) }

// Index returns the parsed index file, or nil for an unsharded model.
func (m *Model) Index() *Index { return m.index }

// Len returns the number of tensors across all shards.
func (m *Model) Len() int { return len(m.names) }

// Names returns all tensor names: shards in file-name order, each shard's
// tensors in file order.
func (m *Model) Names() []string { return slices.Clone(m.names) }

// Metadata returns the union of the shards' __metadata__; when shards
// disagree on a key, the first shard in Names order wins.
func (m *Model) Metadata() map[string]string {
	out := map[string]string{}
	for i := len(m.shards) - 1; i >= 0; i-- {
		maps.Copy(out, m.shards[i].metadata)
	}
	return out
}

func (m *Model) file(name string) (*File, error) {
	if m.shards == nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", m.path, name, ErrClosed)
	}
	f, ok := m.owner[name]
	if !ok {
		return nil, fmt.Errorf("%s: tensor %q: %w", m.path, name, ErrNotFound)
	}
	return f, nil
}

// Shard returns the file that holds the named tensor.
func (m *Model) Shard(name string) (*File, error) { return m.file(name) }

// Info describes the named tensor.
func (m *Model) Info(name string) (TensorInfo, error) {
	f, err := m.file(name)
	if err != nil {
		return TensorInfo{}, err
	}
	return f.Info(name)
}

// Tensor returns the named tensor; its Data aliases the shard's mapping and
// is valid until Close.
func (m *Model) Tensor(name string) (tensor.Tensor, error) {
	f, err := m.file(name)
	if err != nil {
		return tensor.Tensor{}, err
	}
	return f.Tensor(name)
}

// Float32 decodes the named tensor into a new float32 slice.
func (m *Model) Float32(name string) ([]float32, error) {
	f, err := m.file(name)
	if err != nil {
		return nil, err
	}
	return f.Float32(name)
}

// Float32Into decodes the named tensor into dst, whose length must equal
// the tensor's number of elements.
func (m *Model) Float32Into(name string, dst []float32) error {
	f, err := m.file(name)
	if err != nil {
		return err
	}
	return f.Float32Into(name, dst)
}

// Close closes every shard and reports all failures.
func (m *Model) Close() error {
	var errs []error
	for _, f := range m.shards {
		errs = append(errs, f.Close())
	}
	m.shards = nil
	return errors.Join(errs...)
}
