package pickle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Python values produced by the machine. Scalars map to Go types: None is
// nil, bool, int64, *big.Int (integers beyond 64 bits), float64, string
// (str) and pyBytes (bytes and bytearray).
type (
	// pyBytes is a Python bytes or bytearray value.
	pyBytes []byte
	// tuple is an immutable Python tuple.
	tuple []any
	// list is a Python list; it is a pointer so that memo references share it.
	list struct{ items []any }
	// set is a Python set or frozenset; only its items are kept.
	set struct{ items []any }
	// dict is a Python dict or collections.OrderedDict, in insertion order.
	dict struct {
		keys  []any
		vals  []any
		index map[any]int
		// state is what BUILD applied to the dict (OrderedDict's attribute
		// dict, e.g. a state_dict's _metadata); it is kept but not used.
		state any
	}
)

// maxDepth bounds every recursive walk over unpickled values (dict keys,
// flattening). Pickles of checkpoints nest a handful of levels.
const maxDepth = 100

// Dict keys are hashed through a Go map. Python caches string hashes, Go
// does not, so key sizes are bounded to keep a pickle that reuses one huge
// memoized key from costing far more time than its length.
const (
	// maxStringKey bounds a str key (state_dict keys are under 200 bytes).
	maxStringKey = 4096
	// maxCompositeKey bounds the canonical form of any other key (tuples,
	// bytes, big ints), which is copied for every insertion.
	maxCompositeKey = 256
)

var errKeyTooLong = fmt.Errorf("%w: dict key longer than %d bytes", ErrInvalid, maxCompositeKey)

// noneKey and compositeKey are the map keys of None and of keys that are not
// directly comparable in Go.
type (
	noneKey      struct{}
	compositeKey string
)

func newDict() *dict { return &dict{index: map[any]int{}} }

// set stores key -> val, replacing an existing equal key in place.
func (d *dict) set(key, val any) error {
	k, err := dictKey(key)
	if err != nil {
		return err
	}
	if i, ok := d.index[k]; ok {
		d.vals[i] = val
		return nil
	}
	d.index[k] = len(d.keys)
	d.keys = append(d.keys, key)
	d.vals = append(d.vals, val)
	return nil
}

// get returns the value stored under key.
func (d *dict) get(key any) (any, bool) {
	k, err := dictKey(key)
	if err != nil {
		return nil, false
	}
	i, ok := d.index[k]
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

// dictKey maps a hashable Python key to a comparable Go value, following
// Python's equality for the types that matter (True == 1, 2.0 == 2).
func dictKey(v any) (any, error) {
	switch x := v.(type) {
	case string:
		if len(x) > maxStringKey {
			return nil, malformed("dict key of %d bytes (at most %d)", len(x), maxStringKey)
		}
		return x, nil
	case nil:
		return noneKey{}, nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case int64:
		return x, nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x), nil
		}
		return x, nil
	}
	var b strings.Builder
	if err := appendKey(&b, v, 0); err != nil {
		return nil, err
	}
	return compositeKey(b.String()), nil
}

// appendKey writes a canonical, injective form of a hashable value.
func appendKey(b *strings.Builder, v any, depth int) error {
	if depth > maxDepth {
		return malformed("dict key nested deeper than %d", maxDepth)
	}
	room := maxCompositeKey - b.Len()
	tooLong := errKeyTooLong
	switch x := v.(type) {
	case nil:
		b.WriteString("N")
	case bool:
		if x {
			b.WriteString("i1;")
		} else {
			b.WriteString("i0;")
		}
	case int64:
		b.WriteString("i" + strconv.FormatInt(x, 10) + ";")
	case *big.Int:
		if x.BitLen() > 8*maxCompositeKey {
			return tooLong
		}
		b.WriteString("i" + x.String() + ";")
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			b.WriteString("i" + strconv.FormatInt(int64(x), 10) + ";")
		} else {
			b.WriteString("f" + strconv.FormatUint(math.Float64bits(x), 16) + ";")
		}
	case string:
		if len(x) > room {
			return tooLong
		}
		b.WriteString("s" + strconv.Itoa(len(x)) + ":" + x)
	case pyBytes:
		if len(x) > room {
			return tooLong
		}
		b.WriteString("b" + strconv.Itoa(len(x)) + ":" + string(x))
	case tuple:
		if len(x) > room {
			return tooLong
		}
		b.WriteString("(")
		for _, it := range x {
			if err := appendKey(b, it, depth+1); err != nil {
				return err
			}
		}
		b.WriteString(")")
	case *global:
		b.WriteString("g" + strconv.Itoa(len(x.String())) + ":" + x.String())
	default:
		return malformed("unhashable dict key of type %s", typeName(v))
	}
	if b.Len() > maxCompositeKey {
		return tooLong
	}
	return nil
}

// typeName names the Python type of v for error messages.
func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case pyBytes:
		return "bytes"
	case tuple:
		return "tuple"
	case *list:
		return "list"
	case *set:
		return "set"
	case *dict:
		return "dict"
	case *global:
		return x.String()
	case *storage:
		return "storage"
	case *tensorObj:
		return "tensor"
	}
	return fmt.Sprintf("%T", v)
}

// errTruncated marks a pickle that ended before STOP; the legacy reader uses
// it to read more of the file and try again.
var errTruncated = fmt.Errorf("%w: unexpected end of pickle data", ErrInvalid)

// machine is a restricted pickle virtual machine. Every push consumes at
// least one input byte, so the stack and memo never hold more entries than
// the pickle has bytes; lengths are checked against the remaining input
// before anything is allocated; nothing recurses.
type machine struct {
	data  []byte
	pos   int
	stack []any
	marks []int
	memo  map[uint32]any
	// persistentLoad resolves BINPERSID ids; nil refuses them.
	persistentLoad func(pid any) (any, error)
}

// unpickle runs the pickle at the start of data and returns the value left by
// STOP and the number of bytes consumed.
func unpickle(data []byte, persistentLoad func(any) (any, error)) (any, int, error) {
	m := &machine{data: data, memo: map[uint32]any{}, persistentLoad: persistentLoad}
	v, err := m.run()
	if err != nil {
		if errors.Is(err, errTruncated) {
			return nil, m.pos, err
		}
		return nil, m.pos, fmt.Errorf("offset %d: %w", m.pos, err)
	}
	return v, m.pos, nil
}

// short truncates s for an error message.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func (m *machine) remaining() int { return len(m.data) - m.pos }

func (m *machine) take(n int) ([]byte, error) {
	if n < 0 || n > m.remaining() {
		return nil, errTruncated
	}
	b := m.data[m.pos : m.pos+n]
	m.pos += n
	return b, nil
}

// length reads an n-byte little-endian length and checks it fits in the
// remaining input.
func (m *machine) length(n int) (int, error) {
	b, err := m.take(n)
	if err != nil {
		return 0, err
	}
	var l uint64
	switch n {
	case 1:
		l = uint64(b[0])
	case 4:
		l = uint64(binary.LittleEndian.Uint32(b))
	case 8:
		l = binary.LittleEndian.Uint64(b)
	}
	if l > uint64(m.remaining()) {
		return 0, fmt.Errorf("%w: length %d exceeds the %d remaining bytes", errTruncated, l, m.remaining())
	}
	return int(l), nil
}

func (m *machine) line() (string, error) {
	rest := m.data[m.pos:]
	i := bytes.IndexByte(rest, '\n')
	if i < 0 {
		return "", errTruncated
	}
	m.pos += i + 1
	return strings.TrimSuffix(string(rest[:i]), "\r"), nil
}

func (m *machine) push(v any) error {
	// Cannot trigger for well-formed input accounting, but keeps the bound
	// explicit: one slot per input byte at most.
	if len(m.stack) > len(m.data) {
		return malformed("stack larger than the input")
	}
	m.stack = append(m.stack, v)
	return nil
}

func (m *machine) base() int {
	if len(m.marks) == 0 {
		return 0
	}
	return m.marks[len(m.marks)-1]
}

func (m *machine) pop() (any, error) {
	if len(m.stack) <= m.base() {
		return nil, malformed("stack underflow")
	}
	v := m.stack[len(m.stack)-1]
	m.stack = m.stack[:len(m.stack)-1]
	return v, nil
}

func (m *machine) top() (any, error) {
	if len(m.stack) <= m.base() {
		return nil, malformed("stack underflow")
	}
	return m.stack[len(m.stack)-1], nil
}

// popMark removes and returns everything pushed since the last MARK.
func (m *machine) popMark() ([]any, error) {
	if len(m.marks) == 0 {
		return nil, malformed("no MARK on the stack")
	}
	b := m.marks[len(m.marks)-1]
	m.marks = m.marks[:len(m.marks)-1]
	items := make([]any, len(m.stack)-b)
	copy(items, m.stack[b:])
	clear(m.stack[b:])
	m.stack = m.stack[:b]
	return items, nil
}

func (m *machine) memoPut(idx uint32) error {
	v, err := m.top()
	if err != nil {
		return err
	}
	m.memo[idx] = v
	return nil
}

func (m *machine) memoGet(idx uint32) error {
	v, ok := m.memo[idx]
	if !ok {
		return malformed("memo key %d not found", idx)
	}
	return m.push(v)
}

// decodeLong decodes a little-endian two's-complement integer.
func decodeLong(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var u uint64
		for i := len(b) - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		shift := 64 - 8*uint(len(b))
		return int64(u<<shift) >> shift
	}
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	n := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	if n.IsInt64() {
		return n.Int64()
	}
	return n
}

func (m *machine) run() (any, error) {
	for {
		if m.pos >= len(m.data) {
			return nil, errTruncated
		}
		op := m.data[m.pos]
		m.pos++
		if err := m.step(op); err != nil {
			if errors.Is(err, errStop) {
				if len(m.marks) != 0 {
					return nil, malformed("STOP with an open MARK")
				}
				if len(m.stack) != 1 {
					return nil, malformed("STOP with %d values on the stack", len(m.stack))
				}
				return m.stack[0], nil
			}
			return nil, err
		}
	}
}

var errStop = errors.New("stop")

// step executes one opcode.
func (m *machine) step(op byte) error {
	switch op {
	case 0x80: // PROTO
		b, err := m.take(1)
		if err != nil {
			return err
		}
		if b[0] > 5 {
			return fmt.Errorf("%w: pickle protocol %d", ErrUnsupported, b[0])
		}
		return nil
	case 0x95: // FRAME: framing is advisory; the length must fit.
		_, err := m.length(8)
		return err
	case '.': // STOP
		return errStop
	case '(': // MARK
		m.marks = append(m.marks, len(m.stack))
		if len(m.marks) > len(m.data) {
			return malformed("too many MARKs")
		}
		return nil
	case '0': // POP
		if len(m.stack) == m.base() && len(m.marks) > 0 {
			// Python pops a MARK when the stack above it is empty.
			m.marks = m.marks[:len(m.marks)-1]
			return nil
		}
		_, err := m.pop()
		return err
	case '1': // POP_MARK
		_, err := m.popMark()
		return err
	case '2': // DUP
		v, err := m.top()
		if err != nil {
			return err
		}
		return m.push(v)
	case 'N': // NONE
		return m.push(nil)
	case 0x88: // NEWTRUE
		return m.push(true)
	case 0x89: // NEWFALSE
		return m.push(false)
	case 'I': // INT (text)
		s, err := m.line()
		if err != nil {
			return err
		}
		switch s {
		case "00":
			return m.push(false)
		case "01":
			return m.push(true)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return malformed("INT %q", short(s))
		}
		return m.push(n)
	case 'L': // LONG (text)
		s, err := m.line()
		if err != nil {
			return err
		}
		s = strings.TrimSuffix(s, "L")
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return malformed("LONG %q", short(s))
		}
		if n.IsInt64() {
			return m.push(n.Int64())
		}
		return m.push(n)
	case 'F': // FLOAT (text)
		s, err := m.line()
		if err != nil {
			return err
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return malformed("FLOAT %q", short(s))
		}
		return m.push(f)
	case 'J': // BININT
		b, err := m.take(4)
		if err != nil {
			return err
		}
		return m.push(int64(int32(binary.LittleEndian.Uint32(b))))
	case 'K': // BININT1
		b, err := m.take(1)
		if err != nil {
			return err
		}
		return m.push(int64(b[0]))
	case 'M': // BININT2
		b, err := m.take(2)
		if err != nil {
			return err
		}
		return m.push(int64(binary.LittleEndian.Uint16(b)))
	case 0x8a: // LONG1
		n, err := m.length(1)
		if err != nil {
			return err
		}
		b, err := m.take(n)
		if err != nil {
			return err
		}
		return m.push(decodeLong(b))
	case 0x8b: // LONG4
		b, err := m.take(4)
		if err != nil {
			return err
		}
		n := int32(binary.LittleEndian.Uint32(b))
		if n < 0 {
			return malformed("LONG4 with negative length %d", n)
		}
		if int(n) > m.remaining() {
			return errTruncated
		}
		b, err = m.take(int(n))
		if err != nil {
			return err
		}
		return m.push(decodeLong(b))
	case 'G': // BINFLOAT (big-endian)
		b, err := m.take(8)
		if err != nil {
			return err
		}
		return m.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
	case 'X', 0x8c, 0x8d: // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
		size := 4
		switch op {
		case 0x8c:
			size = 1
		case 0x8d:
			size = 8
		}
		n, err := m.length(size)
		if err != nil {
			return err
		}
		b, err := m.take(n)
		if err != nil {
			return err
		}
		if !utf8.Valid(b) {
			return malformed("string is not valid UTF-8")
		}
		return m.push(string(b))
	case 'T', 'U': // BINSTRING, SHORT_BINSTRING: Python 2 str, read as text
		size := 4
		if op == 'U' {
			size = 1
		}
		if op == 'T' {
			// BINSTRING's length is signed.
			if m.remaining() >= 4 && int32(binary.LittleEndian.Uint32(m.data[m.pos:])) < 0 {
				return malformed("BINSTRING with negative length")
			}
		}
		n, err := m.length(size)
		if err != nil {
			return err
		}
		b, err := m.take(n)
		if err != nil {
			return err
		}
		if !utf8.Valid(b) {
			return malformed("string is not valid UTF-8")
		}
		return m.push(string(b))
	case 'B', 'C', 0x8e, 0x96: // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
		size := 8
		switch op {
		case 'B':
			size = 4
		case 'C':
			size = 1
		}
		n, err := m.length(size)
		if err != nil {
			return err
		}
		b, err := m.take(n)
		if err != nil {
			return err
		}
		return m.push(pyBytes(b))
	case ')': // EMPTY_TUPLE
		return m.push(tuple{})
	case 't': // TUPLE
		items, err := m.popMark()
		if err != nil {
			return err
		}
		return m.push(tuple(items))
	case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
		n := int(op-0x85) + 1
		if len(m.stack)-m.base() < n {
			return malformed("stack underflow")
		}
		t := make(tuple, n)
		copy(t, m.stack[len(m.stack)-n:])
		m.stack = m.stack[:len(m.stack)-n]
		return m.push(t)
	case ']': // EMPTY_LIST
		return m.push(&list{})
	case 'l': // LIST
		items, err := m.popMark()
		if err != nil {
			return err
		}
		return m.push(&list{items: items})
	case 'a': // APPEND
		v, err := m.pop()
		if err != nil {
			return err
		}
		return m.appendTo([]any{v})
	case 'e': // APPENDS
		items, err := m.popMark()
		if err != nil {
			return err
		}
		return m.appendTo(items)
	case '}': // EMPTY_DICT
		return m.push(newDict())
	case 'd': // DICT
		items, err := m.popMark()
		if err != nil {
			return err
		}
		d := newDict()
		if err := setItems(d, items); err != nil {
			return err
		}
		return m.push(d)
	case 's': // SETITEM
		if len(m.stack)-m.base() < 2 {
			return malformed("stack underflow")
		}
		kv := m.stack[len(m.stack)-2:]
		items := []any{kv[0], kv[1]}
		m.stack = m.stack[:len(m.stack)-2]
		return m.setItemsOnTop(items)
	case 'u': // SETITEMS
		items, err := m.popMark()
		if err != nil {
			return err
		}
		return m.setItemsOnTop(items)
	case 0x8f: // EMPTY_SET
		return m.push(&set{})
	case 0x90: // ADDITEMS
		items, err := m.popMark()
		if err != nil {
			return err
		}
		v, err := m.top()
		if err != nil {
			return err
		}
		s, ok := v.(*set)
		if !ok {
			return malformed("ADDITEMS on %s", typeName(v))
		}
		s.items = append(s.items, items...)
		return nil
	case 0x91: // FROZENSET
		items, err := m.popMark()
		if err != nil {
			return err
		}
		return m.push(&set{items: items})
	case 'c': // GLOBAL
		mod, err := m.line()
		if err != nil {
			return err
		}
		name, err := m.line()
		if err != nil {
			return err
		}
		g, err := lookupGlobal(mod, name)
		if err != nil {
			return err
		}
		return m.push(g)
	case 0x93: // STACK_GLOBAL
		nv, err := m.pop()
		if err != nil {
			return err
		}
		mv, err := m.pop()
		if err != nil {
			return err
		}
		mod, ok1 := mv.(string)
		name, ok2 := nv.(string)
		if !ok1 || !ok2 {
			return malformed("STACK_GLOBAL needs two strings, got %s and %s", typeName(mv), typeName(nv))
		}
		g, err := lookupGlobal(mod, name)
		if err != nil {
			return err
		}
		return m.push(g)
	case 'R': // REDUCE
		argv, err := m.pop()
		if err != nil {
			return err
		}
		fv, err := m.pop()
		if err != nil {
			return err
		}
		args, ok := argv.(tuple)
		if !ok {
			return malformed("REDUCE arguments are %s, not a tuple", typeName(argv))
		}
		v, err := call(fv, args)
		if err != nil {
			return err
		}
		return m.push(v)
	case 0x81: // NEWOBJ
		argv, err := m.pop()
		if err != nil {
			return err
		}
		cv, err := m.pop()
		if err != nil {
			return err
		}
		args, ok := argv.(tuple)
		if !ok {
			return malformed("NEWOBJ arguments are %s, not a tuple", typeName(argv))
		}
		v, err := newObject(cv, args)
		if err != nil {
			return err
		}
		return m.push(v)
	case 0x92: // NEWOBJ_EX
		kwv, err := m.pop()
		if err != nil {
			return err
		}
		argv, err := m.pop()
		if err != nil {
			return err
		}
		cv, err := m.pop()
		if err != nil {
			return err
		}
		args, ok := argv.(tuple)
		if !ok {
			return malformed("NEWOBJ_EX arguments are %s, not a tuple", typeName(argv))
		}
		if kw, ok := kwv.(*dict); !ok || len(kw.keys) != 0 {
			return fmt.Errorf("%w: NEWOBJ_EX with keyword arguments", ErrUnsupported)
		}
		v, err := newObject(cv, args)
		if err != nil {
			return err
		}
		return m.push(v)
	case 'b': // BUILD
		state, err := m.pop()
		if err != nil {
			return err
		}
		v, err := m.top()
		if err != nil {
			return err
		}
		return build(v, state)
	case 'Q': // BINPERSID
		pid, err := m.pop()
		if err != nil {
			return err
		}
		if m.persistentLoad == nil {
			return malformed("persistent id in a pickle that allows none")
		}
		v, err := m.persistentLoad(pid)
		if err != nil {
			return err
		}
		return m.push(v)
	case 'h': // BINGET
		b, err := m.take(1)
		if err != nil {
			return err
		}
		return m.memoGet(uint32(b[0]))
	case 'j': // LONG_BINGET
		b, err := m.take(4)
		if err != nil {
			return err
		}
		return m.memoGet(binary.LittleEndian.Uint32(b))
	case 'g': // GET (text)
		s, err := m.line()
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return malformed("GET %q", short(s))
		}
		return m.memoGet(uint32(n))
	case 'q': // BINPUT
		b, err := m.take(1)
		if err != nil {
			return err
		}
		return m.memoPut(uint32(b[0]))
	case 'r': // LONG_BINPUT
		b, err := m.take(4)
		if err != nil {
			return err
		}
		return m.memoPut(binary.LittleEndian.Uint32(b))
	case 'p': // PUT (text)
		s, err := m.line()
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return malformed("PUT %q", short(s))
		}
		return m.memoPut(uint32(n))
	case 0x94: // MEMOIZE
		if len(m.memo) >= math.MaxUint32 {
			return malformed("memo full")
		}
		return m.memoPut(uint32(len(m.memo)))
	}
	if name, ok := unsupportedOps[op]; ok {
		return fmt.Errorf("%w: pickle opcode %s", ErrUnsupported, name)
	}
	return malformed("unknown pickle opcode 0x%02x", op)
}

// unsupportedOps are valid opcodes this reader refuses: text-mode strings,
// the copyreg extension registry, old-style instances and out-of-band buffers
// are never produced by torch.save.
var unsupportedOps = map[byte]string{
	'S': "STRING", 'V': "UNICODE", 'P': "PERSID", 'i': "INST", 'o': "OBJ",
	0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
	0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
}

func (m *machine) appendTo(items []any) error {
	v, err := m.top()
	if err != nil {
		return err
	}
	l, ok := v.(*list)
	if !ok {
		return malformed("APPEND to %s", typeName(v))
	}
	l.items = append(l.items, items...)
	return nil
}

func (m *machine) setItemsOnTop(items []any) error {
	v, err := m.top()
	if err != nil {
		return err
	}
	d, ok := v.(*dict)
	if !ok {
		return malformed("SETITEM on %s", typeName(v))
	}
	return setItems(d, items)
}

func setItems(d *dict, items []any) error {
	if len(items)%2 != 0 {
		return malformed("odd number of items for a dict")
	}
	for i := 0; i < len(items); i += 2 {
		if err := d.set(items[i], items[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// build applies BUILD's state. Only the objects this reader creates accept
// it, and the state is never interpreted as code.
func build(v, state any) error {
	switch x := v.(type) {
	case *dict:
		x.state = state
		return nil
	case *tensorObj:
		return nil // tensor attributes (e.g. a Parameter's) are not needed
	}
	return malformed("BUILD on %s", typeName(v))
}
