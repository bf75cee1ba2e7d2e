package pickle

import (
	"math/big"
	"strconv"
)

// entry is one named tensor of a checkpoint.
type entry struct {
	name string
	t    *tensorObj
}

// rootTensorName names the tensor of a checkpoint that is a bare tensor
// rather than a dict of tensors.
const rootTensorName = "tensor"

// flattener walks the unpickled object graph. budget bounds the number of
// containers and leaves visited so that a small pickle whose dicts share
// sub-dicts many times over cannot make the walk exponential.
type flattener struct {
	entries []entry
	skipped []string
	budget  int
	// nameBudget bounds the bytes of all names built, so that a long key
	// shared by many nested dicts cannot multiply into gigabytes of names.
	nameBudget int
	onPath     map[any]bool
}

// flatten lists the tensors of root, naming nested ones by their keys joined
// with '.'. Leaves that are not tensors are reported in skipped. pickleSize
// is the length of the pickle root came from: it bounds the work.
func flatten(root any, pickleSize int) ([]entry, []string, error) {
	f := &flattener{budget: pickleSize + 16, nameBudget: 16*pickleSize + 1<<20, onPath: map[any]bool{}}
	switch x := root.(type) {
	case *dict, *list, tuple:
	case *tensorObj:
		return []entry{{name: rootTensorName, t: x}}, nil, nil
	default:
		return nil, nil, malformed("checkpoint holds a %s, not a dict of tensors", typeName(root))
	}
	if err := f.walk(root, "", 0); err != nil {
		return nil, nil, err
	}
	seen := make(map[string]bool, len(f.entries))
	for _, e := range f.entries {
		if seen[e.name] {
			return nil, nil, malformed("two tensors named %q", e.name)
		}
		seen[e.name] = true
	}
	return f.entries, f.skipped, nil
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func (f *flattener) walk(v any, name string, depth int) error {
	f.budget--
	if f.budget < 0 {
		return malformed("object graph is larger than the pickle")
	}
	f.nameBudget -= len(name)
	if f.nameBudget < 0 {
		return malformed("names of nested entries are larger than the pickle allows")
	}
	if depth > maxDepth {
		return malformed("containers nested deeper than %d", maxDepth)
	}
	var ptr any
	switch x := v.(type) {
	case *dict:
		ptr = x
	case *list:
		ptr = x
	}
	if ptr != nil {
		if f.onPath[ptr] {
			return malformed("%q contains itself", name)
		}
		f.onPath[ptr] = true
		defer delete(f.onPath, ptr)
	}
	switch x := v.(type) {
	case *tensorObj:
		f.entries = append(f.entries, entry{name: name, t: x})
	case *dict:
		for i, k := range x.keys {
			ks, ok := keyString(k)
			if !ok {
				ks = "<" + typeName(k) + " key>"
			}
			if err := f.walk(x.vals[i], join(name, ks), depth+1); err != nil {
				return err
			}
		}
	case *list:
		for i, it := range x.items {
			if err := f.walk(it, join(name, strconv.Itoa(i)), depth+1); err != nil {
				return err
			}
		}
	case tuple:
		for i, it := range x {
			if err := f.walk(it, join(name, strconv.Itoa(i)), depth+1); err != nil {
				return err
			}
		}
	default:
		f.skipped = append(f.skipped, name)
	}
	return nil
}

// keyString renders a dict key the way Python's str() would for the key
// types that make sense in a tensor name.
func keyString(k any) (string, bool) {
	switch x := k.(type) {
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	case *big.Int:
		return x.String(), true
	case bool:
		if x {
			return "True", true
		}
		return "False", true
	case nil:
		return "None", true
	}
	return "", false
}
