package checkpoint

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/detect"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
	"github.com/surgeon-ml/surgeon/internal/atomicfs"
)

// Skeleton is a Hugging Face folder opened for streaming: the model its
// config.json describes, built with lazily mapped parameters
// (layer.BuildMeta) and checked against the tensors' headers exactly as
// Load checks them, with the safetensors open. No weight is read until
// asked for, so a skeleton of any size costs next to no memory; Stream
// writes it out one tensor at a time.
type Skeleton struct {
	// Model has every parameter of the architecture; large ones read as
	// zero until filled (Fill) and return to zero on Release.
	Model model.Model
	// Dir is the folder.
	Dir string
	st  *safetensors.Model
}

// OpenSkeleton opens the Hugging Face folder dir for streaming.
func OpenSkeleton(dir string) (*Skeleton, error) {
	if f, err := detect.Path(dir); err != nil {
		return nil, err
	} else if f != detect.HFModel {
		return nil, fmt.Errorf("%s: a %s, not a Hugging Face model folder", dir, f)
	}
	cfgPath := filepath.Join(dir, "config.json")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	m, err := layer.BuildMeta(func() (model.Model, error) { return model.New(cfg) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	st, err := safetensors.OpenModel(dir)
	if err != nil {
		return nil, err
	}
	shape := func(name string) ([]int, bool) {
		info, err := st.Info(name)
		if err != nil {
			return nil, false
		}
		return info.Shape, true
	}
	if err := checkTensors(m, shape, st.Names()); err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	layer.Freeze(m, true)
	return &Skeleton{Model: m, Dir: dir, st: st}, nil
}

// Close releases the checkpoint files.
func (s *Skeleton) Close() error { return s.st.Close() }

// Loaded is the skeleton as a Loaded model of its folder, for what reads
// the folder's other files (its tokenizer, say).
func (s *Skeleton) Loaded() *Loaded {
	return &Loaded{Model: s.Model, Format: detect.HFModel, Path: s.Dir}
}

// Stored returns the named parameter's values in the stored layout, in a
// slice the caller owns: from the checkpoint when it holds the tensor,
// otherwise a copy of the parameter's values in memory (a head added to
// the skeleton, say).
func (s *Skeleton) Stored(p layer.Param) ([]float32, error) {
	if _, err := s.st.Info(p.Path); err != nil {
		return slices.Clone(p.Stored()), nil
	}
	v, err := s.st.Float32(p.Path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Dir, err)
	}
	s.st.Evict(p.Path)
	return v, nil
}

// Fill reads the parameter's values from the checkpoint into its memory.
func (s *Skeleton) Fill(p layer.Param) error {
	if _, err := s.st.Info(p.Path); err != nil {
		return nil // not in the checkpoint: the values in memory stand
	}
	out, in := 0, 0
	if p.Transposed { // stored [in, out]
		in, out = p.Shape[0], p.Shape[1]
	}
	if err := decodeInto(s.st, p.Path, ops.Data(p.Param), p.Transposed, out, in); err != nil {
		return fmt.Errorf("%s: %w", s.Dir, err)
	}
	return nil
}

// Release gives a filled parameter's memory back (see layer.Release).
func (s *Skeleton) Release(p layer.Param) { layer.Release(p.Param) }

// Editor changes parameters while a skeleton streams out.
type Editor interface {
	// Edit returns the values, in the stored layout, to write for p, or
	// nil to write the checkpoint's own. stored reads p's values.
	Edit(ctx context.Context, p layer.Param, stored func() ([]float32, error)) ([]float32, error)
}

// streamChunk is how many elements are converted at a time when the
// output dtype differs from the stored one.
const streamChunk = 1 << 20

// Stream writes the skeleton as a Hugging Face folder at dir, exactly as
// SaveHF writes the loaded model, but one tensor at a time: a tensor the
// editor leaves alone is copied (raw when the dtype is kept, converted in
// chunks otherwise) and dropped from memory before the next. The folder
// is assembled under a temporary name and renamed into place; on any
// error, or when ctx is cancelled, nothing appears at dir.
func (s *Skeleton) Stream(ctx context.Context, dir string, opts SaveOptions, ed Editor) (err error) {
	if opts.DType == "" {
		opts.DType = tensor.F32
	}
	tmp, err := beginHF(dir, s.Model, opts)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	params := layer.Params(s.Model)
	descs := make([]safetensors.Descriptor, len(params))
	for i, p := range params {
		descs[i] = safetensors.Descriptor{Name: p.Path, DType: opts.DType, Shape: p.Shape}
	}
	w, err := safetensors.CreateSharded(tmp, "model", descs, map[string]string{"format": "pt"}, opts.MaxShardBytes)
	if err != nil {
		return err
	}
	// A writer goroutine takes the data while the next tensor is read and
	// edited: merging and writing overlap. A few pieces wait at most.
	type piece struct {
		raw   []byte   // bytes as stored (aliasing the mapping)
		file  *os.File // or a range of the stored file, copied file to file
		off   int64
		n     int64
		vals  []float32 // values to encode, owned by the writer
		evict string    // tensor whose mapped pages to drop once written
	}
	pieces := make(chan piece, 4)
	var werr error
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		for pc := range pieces {
			if werr == nil {
				switch {
				case pc.file != nil:
					werr = w.CopyRange(pc.file, pc.off, pc.n)
				case pc.raw != nil:
					_, werr = w.Write(pc.raw)
				case pc.vals != nil:
					werr = w.WriteFloat32(pc.vals)
				}
			}
			if pc.evict != "" {
				s.st.Evict(pc.evict)
			}
		}
	}()
	finish := func() error {
		close(pieces)
		<-wdone
		return werr
	}
	abort := func(err error) error {
		finish()
		_ = w.Abort()
		return err
	}
	for _, p := range params {
		if err := ctx.Err(); err != nil {
			return abort(err)
		}
		if ed != nil {
			v, err := ed.Edit(ctx, p, func() ([]float32, error) { return s.Stored(p) })
			if err != nil {
				return abort(fmt.Errorf("%s: %w", p.Path, err))
			}
			if v != nil {
				if len(v) != tensor.NumElements(p.Shape) {
					return abort(fmt.Errorf("%s: %d values edited for shape %v", p.Path, len(v), p.Shape))
				}
				pieces <- piece{vals: v}
				continue
			}
		}
		t, terr := s.st.Tensor(p.Path)
		switch {
		case terr != nil: // not in the checkpoint (a new head): from memory
			pieces <- piece{vals: slices.Clone(p.Stored())}
			continue
		case t.DType == opts.DType:
			if fh, off, n, ok := s.st.Section(p.Path); ok && n > 0 {
				pieces <- piece{file: fh, off: off, n: n}
			} else {
				pieces <- piece{raw: t.Data, evict: p.Path}
			}
		default:
			size := t.DType.Size()
			for lo, n := 0, t.NumElements(); lo < n; lo += streamChunk {
				hi := min(lo+streamChunk, n)
				buf := make([]float32, hi-lo)
				if err := tensor.ToFloat32(buf, t.DType, t.Data[lo*size:hi*size]); err != nil {
					return abort(fmt.Errorf("%s: tensor %s: %w", s.Dir, p.Path, err))
				}
				pieces <- piece{vals: buf}
			}
			pieces <- piece{evict: p.Path}
		}
	}
	if err := finish(); err != nil {
		_ = w.Abort()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return atomicfs.ReplaceDir(tmp, dir)
}
