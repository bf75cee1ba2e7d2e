package layer

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
)

// Meta models. A model built by BuildMeta has every parameter of its
// architecture, named and shaped as usual, but the parameters' storage is
// mapped lazily from the operating system: untouched, it costs address
// space and no memory. Streaming merge and convert build one to learn the
// tensor list, the slots and the config of a model of any size, then fill
// and release one parameter at a time (Release).

var (
	metaMu    sync.Mutex   // one meta build at a time
	metaDepth atomic.Int32 // > 0 while a meta build runs
	metaSpans sync.Map     // data pointer -> length, of lazily mapped storage
)

// BuildMeta runs build with parameter storage mapped lazily (see above)
// and returns its result. Parameters allocated by other goroutines while
// build runs may be mapped lazily too, which changes nothing for them but
// where their memory comes from. Where the platform has no lazy mapping,
// storage is ordinary memory.
func BuildMeta[T any](build func() (T, error)) (T, error) {
	metaMu.Lock()
	defer metaMu.Unlock()
	metaDepth.Add(1)
	defer metaDepth.Add(-1)
	return build()
}

// newParam returns a zero [rows, cols] parameter.
func newParam(rows, cols int) *nn.Param {
	if metaDepth.Load() > 0 && rows*cols >= metaMin {
		if data, ok := mapLazy(rows * cols); ok {
			metaSpans.Store(unsafe.SliceData(data), len(data))
			return ownParam(mat.NewDense[float32](mat.WithShape(rows, cols), mat.WithBacking(data)))
		}
	}
	return ownParam(mat.NewDense[float32](mat.WithShape(rows, cols)))
}

// Own returns a parameter of shape [rows, cols] that holds data itself,
// without the copy nn.NewParam makes; the caller gives data up.
func Own(rows, cols int, data []float32) *nn.Param {
	return ownParam(mat.NewDense[float32](mat.WithShape(rows, cols), mat.WithBacking(data)))
}

// ownParam makes a parameter that holds value itself: nn.NewParam holds a
// clone, which for a new parameter is a second allocation of its size
// (and, for lazily mapped storage, a copy that makes every page
// resident).
func ownParam(value *mat.Dense[float32]) *nn.Param {
	p := nn.NewParam(mat.NewDense[float32](mat.WithShape(1, 1)))
	p.ReplaceValue(value)
	p.SetRequiresGrad(true)
	return p
}

// metaMin is the smallest parameter mapped lazily: smaller ones (norms,
// biases) are cheap and are written when built (norms start at one).
const metaMin = 1 << 16

// Release gives the memory of a lazily mapped parameter (BuildMeta) back
// to the operating system; its values read as zero afterwards. Parameters
// in ordinary memory are left as they are. It reports whether the memory
// was released.
func Release(p *nn.Param) bool {
	if p == nil {
		return false
	}
	d, ok := p.Value().(*mat.Dense[float32])
	if !ok {
		return false
	}
	data := d.Data().F32()
	if len(data) == 0 {
		return false
	}
	n, ok := metaSpans.Load(unsafe.SliceData(data))
	if !ok || n.(int) != len(data) {
		return false
	}
	return unmapLazy(data)
}

// Linears returns the linear layers of m by module path: the content of
// every slot that holds a plain linear layer, and linear modules outside
// slots (an adapter's base layer).
func Linears(m nn.Model) map[string]*Linear {
	out := map[string]*Linear{}
	for _, mod := range Modules(m) {
		switch v := mod.Model.(type) {
		case *Slot:
			if l := v.Base(); l != nil {
				out[mod.Path] = l
			}
		case *Linear:
			out[mod.Path] = v
		}
	}
	return out
}

// Embeddings returns the embedding tables of m by module path.
func Embeddings(m nn.Model) map[string]*Embedding {
	out := map[string]*Embedding{}
	for _, mod := range Modules(m) {
		if e, ok := mod.Model.(*Embedding); ok {
			out[mod.Path] = e
		}
	}
	return out
}

// Storable is a layer whose weight can stay where it is stored: a Linear
// or an Embedding.
type Storable interface {
	// Materialize reads a stored weight into the weight parameter (a
	// no-op when it holds its values already).
	Materialize() error
	// WeightParam is the weight parameter.
	WeightParam() *nn.Param
	// Stored is where the weight is kept stored, or nil when the
	// parameter holds its values.
	Stored() WeightSource
}

// WeightParam returns the weight.
func (l *Linear) WeightParam() *nn.Param { return l.Weight }

// Stored returns Source.
func (l *Linear) Stored() WeightSource { return l.Source }

// WeightParam returns the table.
func (e *Embedding) WeightParam() *nn.Param { return e.Weight }

// Stored returns Source.
func (e *Embedding) Stored() WeightSource {
	if e.Source == nil {
		return nil
	}
	return e.Source
}

// Storables returns the linear layers (as Linears does) and embedding
// tables of m by module path.
func Storables(m nn.Model) map[string]Storable {
	out := map[string]Storable{}
	for path, l := range Linears(m) {
		out[path] = l
	}
	for path, e := range Embeddings(m) {
		out[path] = e
	}
	return out
}

// MaterializeAll materializes every stored weight of m, linear weights and
// embedding tables (see Linear.Materialize), for code that reads or
// writes all the values.
func MaterializeAll(m nn.Model) error {
	for path, l := range Storables(m) {
		if err := l.Materialize(); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}
