package layer

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/nlpodyssey/spago/nn"
	"github.com/surgeon-ml/surgeon/core/ops"
)

// Module is a named module of a model.
type Module struct {
	// Path is the dotted Hugging Face path, e.g. "model.layers.0.self_attn.q_proj".
	Path string
	// Model is the module. For a slot this is the *Slot itself, so that its
	// content can be replaced.
	Model nn.Model
}

// Kind returns the module's kind ("linear", "embedding", "norm") or "".
func (m Module) Kind() string {
	v := m.Model
	if s, ok := v.(*Slot); ok {
		v = s.Layer
	}
	if k, ok := v.(Kinder); ok {
		return k.Kind()
	}
	return ""
}

// Param is a named parameter.
type Param struct {
	// Path is the full Hugging Face name, e.g. "model.norm.weight".
	Path string
	// Param is the spago parameter.
	Param *nn.Param
	// Shape is the shape Hugging Face stores: 1-D for vector parameters,
	// [in, out] for a Conv1D weight.
	Shape []int
	// Transposed is set for a matrix that Hugging Face stores transposed
	// relative to the parameter ([in, out] for a Conv1D weight held as
	// [out, in]); Stored and SetStored convert.
	Transposed bool
}

// Stored returns the parameter's values in the layout Hugging Face stores
// (row-major over Shape): the parameter's own data, or a transposed copy.
func (p Param) Stored() []float32 {
	d := ops.Data(p.Param)
	if !p.Transposed {
		return d
	}
	return transpose(d, p.Shape[1], p.Shape[0])
}

// FromStored returns values given in the stored layout in the parameter's
// own layout: v itself, or a transposed copy.
func (p Param) FromStored(v []float32) []float32 {
	if !p.Transposed {
		return v
	}
	return transpose(v, p.Shape[0], p.Shape[1])
}

// SetStored copies values given in the stored layout into the parameter,
// transposing them on the way for a transposed parameter.
func (p Param) SetStored(v []float32) {
	if !p.Transposed {
		copy(ops.Data(p.Param), v)
		return
	}
	transposeInto(ops.Data(p.Param), v, p.Shape[0], p.Shape[1])
}

// transpose returns the [cols, rows] transpose of the row-major [rows, cols] x.
func transpose(x []float32, rows, cols int) []float32 {
	out := make([]float32, len(x))
	transposeInto(out, x, rows, cols)
	return out
}

// transposeInto writes the [cols, rows] transpose of the row-major
// [rows, cols] x into out.
func transposeInto(out, x []float32, rows, cols int) {
	for i := 0; i < rows; i++ {
		for j, v := range x[i*cols : (i+1)*cols] {
			out[j*rows+i] = v
		}
	}
}

// ParamLister is implemented by modules whose parameters are not struct
// fields (adapters with plugin-defined parameters). Paths are relative to
// the module. Tagged fields of the module are walked as well.
type ParamLister interface {
	ListParams() []Param
}

// Modules returns every module under m with its path, parents first.
func Modules(m nn.Model) []Module {
	var out []Module
	walk(reflect.ValueOf(m), "", func(path string, mod nn.Model) { out = append(out, Module{path, mod}) }, nil)
	// A slot and its content share a path: keep the slot only.
	dedup := out[:0]
	seen := map[string]bool{}
	for _, mod := range out {
		if seen[mod.Path] {
			continue
		}
		seen[mod.Path] = true
		dedup = append(dedup, mod)
	}
	return dedup
}

// Params returns every parameter under m with its Hugging Face name, in
// model order.
func Params(m nn.Model) []Param {
	var out []Param
	walk(reflect.ValueOf(m), "", nil, func(p Param) { out = append(out, p) })
	return out
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	if name == "" {
		return prefix
	}
	return prefix + "." + name
}

var paramType = reflect.TypeOf((*nn.Param)(nil))

func walk(v reflect.Value, path string, onModule func(string, nn.Model), onParam func(Param)) {
	for v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if v.Kind() == reflect.Ptr && v.IsNil() {
		return
	}
	if mod, ok := v.Interface().(nn.Model); ok && onModule != nil {
		onModule(path, mod)
	}
	if s, ok := v.Interface().(*Slot); ok {
		walk(reflect.ValueOf(s.Layer), path, onModule, onParam)
		return
	}
	if pl, ok := v.Interface().(ParamLister); ok && onParam != nil {
		for _, np := range pl.ListParams() {
			onParam(Param{Path: join(path, np.Path), Param: np.Param, Shape: np.Shape})
		}
	}
	lin, _ := v.Interface().(*Linear)
	conv1D := lin != nil && lin.Conv1D
	if v.Kind() == reflect.Ptr {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("hf")
		if !ok || tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		p := join(path, name)
		switch {
		case f.Type == paramType:
			if fv.IsNil() || onParam == nil {
				continue
			}
			par := fv.Interface().(*nn.Param)
			shape := append([]int(nil), par.Shape()...)
			transposed := false
			if opts == "vector" {
				shape = []int{par.Size()}
			} else if conv1D && name == "weight" && len(shape) == 2 {
				shape, transposed = []int{shape[1], shape[0]}, true
			}
			onParam(Param{Path: p, Param: par, Shape: shape, Transposed: transposed})
		case fv.Kind() == reflect.Slice:
			for j := 0; j < fv.Len(); j++ {
				walk(fv.Index(j), join(p, strconv.Itoa(j)), onModule, onParam)
			}
		default:
			walk(fv, p, onModule, onParam)
		}
	}
}

// Source supplies a parameter's float32 values by Hugging Face name. It
// returns the stored shape with the values.
type Source interface {
	Float32(name string) ([]float32, []int, error)
}

// IntoSource is a Source that can also decode a tensor straight into
// memory the caller owns. Load uses it to fill parameters held in their
// stored layout in place, instead of decoding into a temporary and
// copying: half the memory traffic, and no temporary as large as the
// largest tensor on top of the model.
type IntoSource interface {
	Source
	// Shape returns the stored shape of the named tensor without reading
	// its values.
	Shape(name string) ([]int, error)
	// Float32Into decodes the named tensor into dst, which has exactly
	// its number of elements.
	Float32Into(name string, dst []float32) error
}

// Load fills every parameter of m from src, checking shapes. Parameters
// missing from src are an error naming them. Shapes are checked before a
// parameter is written, so a mismatch leaves it untouched. When src is an
// IntoSource, parameters stored in their own layout are decoded in place;
// transposed ones (Conv1D weights) go through a temporary.
func Load(m nn.Model, src Source) error {
	into, _ := src.(IntoSource)
	for _, p := range Params(m) {
		if into != nil && !p.Transposed {
			if err := loadInto(p, into); err != nil {
				return err
			}
			continue
		}
		vals, shape, err := src.Float32(p.Path)
		if err != nil {
			return fmt.Errorf("parameter %s: %w", p.Path, err)
		}
		if !sameShape(shape, p.Shape) {
			return fmt.Errorf("parameter %s: checkpoint shape %v, model expects %v", p.Path, shape, p.Shape)
		}
		p.SetStored(vals)
	}
	return nil
}

// loadInto decodes p's tensor from src straight into p's memory.
func loadInto(p Param, src IntoSource) error {
	shape, err := src.Shape(p.Path)
	if err != nil {
		return fmt.Errorf("parameter %s: %w", p.Path, err)
	}
	if !sameShape(shape, p.Shape) {
		return fmt.Errorf("parameter %s: checkpoint shape %v, model expects %v", p.Path, shape, p.Shape)
	}
	dst := ops.Data(p.Param)
	if n := numElements(p.Shape); len(dst) != n {
		return fmt.Errorf("parameter %s: holds %d values, shape %v needs %d", p.Path, len(dst), p.Shape, n)
	}
	if err := src.Float32Into(p.Path, dst); err != nil {
		return fmt.Errorf("parameter %s: %w", p.Path, err)
	}
	return nil
}

func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Freeze sets whether every parameter of m requires gradients.
func Freeze(m nn.Model, frozen bool) {
	for _, p := range Params(m) {
		p.Param.SetRequiresGrad(!frozen)
	}
}

// SameParams checks that got has exactly the parameters of want, with the
// same names and shapes (used to validate decoded models).
func SameParams(got, want nn.Model) error {
	g, w := Params(got), Params(want)
	if len(g) != len(w) {
		return fmt.Errorf("%d parameters, the architecture has %d", len(g), len(w))
	}
	for i := range w {
		if g[i].Path != w[i].Path || !sameShape(g[i].Shape, w[i].Shape) || g[i].Param.Size() != w[i].Param.Size() {
			return fmt.Errorf("parameter %d is %s %v, the architecture has %s %v", i, g[i].Path, g[i].Shape, w[i].Path, w[i].Shape)
		}
	}
	return nil
}
