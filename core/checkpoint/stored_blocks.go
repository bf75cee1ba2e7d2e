package checkpoint

import (
	"sync"

	"github.com/surgeon-ml/surgeon/core/linalg"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/qmat"
	"github.com/surgeon-ml/surgeon/formats/detect"
	"github.com/surgeon-ml/surgeon/formats/gguf"
)

var (
	_ ops.BlockFiller = (*ggufWeight)(nil)
	_ ops.HalfFiller  = (*ggufWeight)(nil)
)

// blocks caches a GGUF weight's qmat.Matrix, looked up on first use.
type blocks struct {
	once sync.Once
	m    qmat.Matrix
	ok   bool
}

// Matrix returns the weight's quantized blocks in Hugging Face's row
// order, for products that read them in place (ops.BlockFiller); ok is
// false for a weight that package qmat does not multiply.
func (w *ggufWeight) Matrix() (qmat.Matrix, bool) {
	w.q.once.Do(func() {
		m, ok, err := gguf.WeightMatrix(w.f, w.name)
		// An error leaves the weight to Fill, which reports it.
		w.q.m, w.q.ok = m, ok && err == nil
	})
	return w.q.m, w.q.ok
}

// Half reports the weight's type when it is an F16 or BF16 matrix
// (ops.HalfFiller): its products then widen the halves as they pack them,
// as they do a safetensors weight's.
func (w *ggufWeight) Half() (linalg.Half, bool) {
	if !littleEndian {
		return 0, false
	}
	switch w.dtype {
	case gguf.TypeBF16.String():
		return linalg.BF16, true
	case gguf.TypeF16.String():
		return linalg.F16, true
	}
	return 0, false
}

// FillHalf copies the weight's halves into dst, [out, in] in Hugging
// Face's row order.
func (w *ggufWeight) FillHalf(dst []uint16) error {
	return gguf.WeightHalvesInto(w.f, w.name, dst)
}

// QuantizedGGUF reports whether path is a GGUF file with quantized
// tensors: one that LoadStored keeps in its blocks, which decoding
// multiplies in place, where Load would make float32 copies four to eight
// times their size. Any other path, or one that cannot be read, reports
// false.
func QuantizedGGUF(path string) bool {
	if f, err := detect.Path(path); err != nil || f != detect.GGUF {
		return false
	}
	f, err := gguf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, ti := range f.Tensors() {
		if ti.Type.Quantized() {
			return true
		}
	}
	return false
}
