package pickle

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// globalKind says what an allowlisted global is for.
type globalKind int

const (
	kindOrderedDict globalKind = iota
	kindRebuildTensor
	kindRebuildTensorV2
	kindRebuildTensorV3
	kindRebuildParameter
	kindRebuildParameterWithState
	kindRebuildFromTypeV2
	kindStorageType // torch.FloatStorage & co: carries a dtype
	kindDType       // torch.float32 & co: carries a dtype
	kindTensorType  // torch.Tensor, torch.nn.parameter.Parameter
)

// global is an allowlisted Python global. It is only a tag: nothing is ever
// looked up or executed by name.
type global struct {
	module, name string
	kind         globalKind
	dtype        tensor.DType
}

func (g *global) String() string { return g.module + "." + g.name }

// allowed is the complete set of globals a pickle may name.
var allowed = func() map[string]*global {
	m := map[string]*global{}
	add := func(module, name string, kind globalKind, dt tensor.DType) {
		m[module+"\n"+name] = &global{module: module, name: name, kind: kind, dtype: dt}
	}
	add("collections", "OrderedDict", kindOrderedDict, "")
	add("torch._utils", "_rebuild_tensor", kindRebuildTensor, "")
	add("torch._utils", "_rebuild_tensor_v2", kindRebuildTensorV2, "")
	add("torch._utils", "_rebuild_tensor_v3", kindRebuildTensorV3, "")
	add("torch._utils", "_rebuild_parameter", kindRebuildParameter, "")
	add("torch._utils", "_rebuild_parameter_with_state", kindRebuildParameterWithState, "")
	add("torch._tensor", "_rebuild_from_type_v2", kindRebuildFromTypeV2, "")
	add("torch", "Tensor", kindTensorType, "")
	add("torch.nn.parameter", "Parameter", kindTensorType, "")
	for name, dt := range map[string]tensor.DType{
		"FloatStorage": tensor.F32, "HalfStorage": tensor.F16, "BFloat16Storage": tensor.BF16,
		"DoubleStorage": tensor.F64, "LongStorage": tensor.I64, "IntStorage": tensor.I32,
		"ShortStorage": tensor.I16, "CharStorage": tensor.I8, "ByteStorage": tensor.U8,
		"BoolStorage": tensor.Bool, "UntypedStorage": tensor.U8,
	} {
		add("torch", name, kindStorageType, dt)
	}
	for name, dt := range map[string]tensor.DType{
		"float32": tensor.F32, "float": tensor.F32, "float16": tensor.F16, "half": tensor.F16,
		"bfloat16": tensor.BF16, "float64": tensor.F64, "double": tensor.F64,
		"int64": tensor.I64, "long": tensor.I64, "int32": tensor.I32, "int": tensor.I32,
		"int16": tensor.I16, "short": tensor.I16, "int8": tensor.I8, "uint8": tensor.U8,
		"uint16": tensor.U16, "uint32": tensor.U32, "uint64": tensor.U64, "bool": tensor.Bool,
		"float8_e4m3fn": tensor.F8E4M3, "float8_e5m2": tensor.F8E5M2,
	} {
		add("torch", name, kindDType, dt)
	}
	return m
}()

// GlobalError reports a pickle that names a Python global outside the
// allowlist. Such a pickle is refused before anything else happens; it
// matches [ErrForbidden].
type GlobalError struct {
	Module, Name string
}

// Error names the refused global.
func (e *GlobalError) Error() string {
	return fmt.Sprintf("pickle: refusing global %s.%s (only tensor rebuilding is allowed)", printable(short(e.Module)), printable(short(e.Name)))
}

// Is makes errors.Is(err, ErrForbidden) true.
func (e *GlobalError) Is(target error) bool { return target == ErrForbidden }

// printable quotes s when it holds anything but printable characters.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func lookupGlobal(module, name string) (*global, error) {
	if g, ok := allowed[module+"\n"+name]; ok {
		return g, nil
	}
	if module == "torch" && strings.HasSuffix(name, "Storage") && !strings.ContainsAny(name, ".\n") {
		return nil, fmt.Errorf("%w: storage type torch.%s", ErrUnsupported, printable(name))
	}
	return nil, &GlobalError{Module: module, Name: name}
}

// storage is one storage of a checkpoint as far as tensors can see it: a
// byte range of a blob, with the dtype its persistent id announced.
type storage struct {
	key   string
	dtype tensor.DType
	// nbytes is the size the persistent id declares.
	nbytes int64
	// src holds the bytes, off is where the storage starts in src. src is
	// nil until the storage is resolved (and stays nil when decoding a bare
	// pickle).
	src *blob
	off int64
	// root and viewOff describe a legacy storage view (root is "" otherwise).
	root    string
	viewOff int64
}

// tensorObj is the result of a tensor-rebuilding call: a strided view of a
// storage. Nothing is read until the tensor is asked for.
type tensorObj struct {
	st     *storage
	dtype  tensor.DType
	offset int64 // in elements
	shape  []int
	stride []int64
}

// maxRank bounds the number of dimensions of a tensor.
const maxRank = 64

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func intTuple(v any, what string) ([]int64, error) {
	var items []any
	switch x := v.(type) {
	case tuple:
		items = x
	case *list:
		items = x.items
	default:
		return nil, malformed("%s is %s, not a tuple", what, typeName(v))
	}
	if len(items) > maxRank {
		return nil, malformed("%s has %d dimensions (at most %d)", what, len(items), maxRank)
	}
	out := make([]int64, len(items))
	for i, it := range items {
		n, ok := asInt(it)
		if !ok {
			return nil, malformed("%s[%d] is %s, not an int", what, i, typeName(it))
		}
		if n < 0 {
			return nil, malformed("%s[%d] is negative (%d)", what, i, n)
		}
		out[i] = n
	}
	return out, nil
}

// call executes REDUCE: only allowlisted constructors and rebuild functions
// can be called, and they only build data.
func call(fv any, args tuple) (any, error) {
	g, ok := fv.(*global)
	if !ok {
		return nil, malformed("cannot call %s", typeName(fv))
	}
	switch g.kind {
	case kindOrderedDict:
		// torch.save pickles an OrderedDict as OrderedDict() followed by
		// SETITEMS; copying an argument would let a memoized dict be
		// copied once per four pickle bytes.
		if len(args) != 0 {
			return nil, fmt.Errorf("%w: OrderedDict with %d arguments", ErrUnsupported, len(args))
		}
		return newDict(), nil
	case kindRebuildTensor:
		if len(args) != 4 {
			return nil, malformed("%s takes 4 arguments, got %d", g, len(args))
		}
		return rebuildTensor(args[0], args[1], args[2], args[3], "")
	case kindRebuildTensorV2:
		if len(args) != 6 && len(args) != 7 {
			return nil, malformed("%s takes 6 or 7 arguments, got %d", g, len(args))
		}
		return rebuildTensor(args[0], args[1], args[2], args[3], "")
	case kindRebuildTensorV3:
		if len(args) != 7 && len(args) != 8 {
			return nil, malformed("%s takes 7 or 8 arguments, got %d", g, len(args))
		}
		dt, ok := args[6].(*global)
		if !ok || dt.kind != kindDType {
			return nil, malformed("%s dtype argument is %s", g, typeName(args[6]))
		}
		return rebuildTensor(args[0], args[1], args[2], args[3], dt.dtype)
	case kindRebuildParameter, kindRebuildParameterWithState:
		want := 3
		if g.kind == kindRebuildParameterWithState {
			want = 4
		}
		if len(args) != want {
			return nil, malformed("%s takes %d arguments, got %d", g, want, len(args))
		}
		t, ok := args[0].(*tensorObj)
		if !ok {
			return nil, malformed("%s of %s", g, typeName(args[0]))
		}
		return t, nil
	case kindRebuildFromTypeV2:
		if len(args) != 4 {
			return nil, malformed("%s takes 4 arguments, got %d", g, len(args))
		}
		typ, ok := args[1].(*global)
		if !ok || typ.kind != kindTensorType {
			return nil, malformed("%s to type %s", g, typeName(args[1]))
		}
		inner, ok := args[2].(tuple)
		if !ok {
			return nil, malformed("%s arguments are %s", g, typeName(args[2]))
		}
		fn, ok := args[0].(*global)
		if !ok || fn.kind == kindRebuildFromTypeV2 {
			return nil, malformed("%s of %s", g, typeName(args[0]))
		}
		v, err := call(fn, inner)
		if err != nil {
			return nil, err
		}
		if _, ok := v.(*tensorObj); !ok {
			return nil, malformed("%s did not rebuild a tensor", g)
		}
		return v, nil
	}
	return nil, fmt.Errorf("%w: calling %s", ErrUnsupported, g)
}

// newObject executes NEWOBJ (cls.__new__(cls, *args)).
func newObject(cv any, args tuple) (any, error) {
	g, ok := cv.(*global)
	if !ok {
		return nil, malformed("cannot instantiate %s", typeName(cv))
	}
	if g.kind == kindOrderedDict {
		return newDict(), nil
	}
	return nil, fmt.Errorf("%w: instantiating %s", ErrUnsupported, g)
}

func rebuildTensor(sv, offv, sizev, stridev any, dtype tensor.DType) (*tensorObj, error) {
	st, ok := sv.(*storage)
	if !ok {
		return nil, malformed("tensor storage is %s", typeName(sv))
	}
	off, ok := asInt(offv)
	if !ok || off < 0 {
		return nil, malformed("storage offset %v", offv)
	}
	size, err := intTuple(sizev, "tensor size")
	if err != nil {
		return nil, err
	}
	stride, err := intTuple(stridev, "tensor stride")
	if err != nil {
		return nil, err
	}
	if len(size) != len(stride) {
		return nil, malformed("tensor size has %d dimensions but stride %d", len(size), len(stride))
	}
	if dtype == "" {
		dtype = st.dtype
	}
	shape := make([]int, len(size))
	for i, s := range size {
		shape[i] = int(s)
	}
	return &tensorObj{st: st, dtype: dtype, offset: off, shape: shape, stride: stride}, nil
}

// storageFromPID checks a persistent id of the form
// ('storage', storage_type, key, location, numel[, view_metadata]) and
// returns the storage it names, not yet resolved. legacy allows the sixth
// element of the pre-1.6 format.
func storageFromPID(pid any, legacy bool) (*storage, error) {
	t, ok := pid.(tuple)
	if !ok {
		return nil, malformed("persistent id is %s, not a tuple", typeName(pid))
	}
	if len(t) < 1 || t[0] != "storage" {
		return nil, malformed("persistent id is not a storage")
	}
	if legacy && len(t) != 6 || !legacy && len(t) != 5 {
		return nil, malformed("storage persistent id has %d elements", len(t))
	}
	g, ok := t[1].(*global)
	if !ok || g.kind != kindStorageType {
		return nil, malformed("storage type is %s", typeName(t[1]))
	}
	key, err := storageKey(t[2])
	if err != nil {
		return nil, err
	}
	numel, ok := asInt(t[4])
	if !ok || numel < 0 {
		return nil, malformed("storage %q: size %v", key, t[4])
	}
	es := int64(g.dtype.Size())
	if numel > (1<<62)/es {
		return nil, malformed("storage %q: size %d too large", key, numel)
	}
	st := &storage{key: key, dtype: g.dtype, nbytes: numel * es}
	if legacy && t[5] != nil {
		view, ok := t[5].(tuple)
		if !ok || len(view) != 3 {
			return nil, malformed("storage %q: view metadata is %s", key, typeName(t[5]))
		}
		vkey, err := storageKey(view[0])
		if err != nil {
			return nil, err
		}
		voff, ok1 := asInt(view[1])
		vsize, ok2 := asInt(view[2])
		if !ok1 || !ok2 || voff < 0 || vsize < 0 || voff > (1<<62)/es || vsize > (1<<62)/es {
			return nil, malformed("storage view %q: bad offset or size", vkey)
		}
		st.key, st.root, st.viewOff, st.nbytes = vkey, key, voff*es, vsize*es
	}
	return st, nil
}

func storageKey(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case *big.Int:
		if x.BitLen() <= 256 {
			return x.String(), nil
		}
	}
	return "", malformed("storage key is %s", typeName(v))
}
