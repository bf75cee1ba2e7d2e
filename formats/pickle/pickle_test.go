package pickle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
)

// wantTensor is the expected result of File.Tensor.
type wantTensor struct {
	dtype tensor.DType
	shape []int
	data  []byte
}

// twelve is a FloatStorage holding 0..11.
var twelve = f32Bytes(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)

func TestSynthetic(t *testing.T) {
	viewTensors := []tt{
		{"whole", "FloatStorage", "0", 12, 0, []int{3, 4}, []int{4, 1}},
		{"row1", "FloatStorage", "0", 12, 4, []int{4}, []int{1}},
		{"transposed", "FloatStorage", "0", 12, 0, []int{4, 3}, []int{1, 4}},
		{"col2", "FloatStorage", "0", 12, 2, []int{3}, []int{4}},
		{"scalar", "FloatStorage", "0", 12, 5, []int{}, []int{}},
		{"empty", "FloatStorage", "0", 12, 0, []int{0, 3}, []int{3, 1}},
		{"broadcast", "FloatStorage", "0", 12, 1, []int{2, 3}, []int{0, 1}},
		{"step3d", "FloatStorage", "0", 12, 1, []int{2, 2, 2}, []int{6, 1, 2}},
	}
	viewWant := map[string]wantTensor{
		"whole":      {tensor.F32, []int{3, 4}, twelve},
		"row1":       {tensor.F32, []int{4}, f32Bytes(4, 5, 6, 7)},
		"transposed": {tensor.F32, []int{4, 3}, f32Bytes(0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11)},
		"col2":       {tensor.F32, []int{3}, f32Bytes(2, 6, 10)},
		"scalar":     {tensor.F32, []int{}, f32Bytes(5)},
		"empty":      {tensor.F32, []int{0, 3}, []byte{}},
		"broadcast":  {tensor.F32, []int{2, 3}, f32Bytes(1, 2, 3, 1, 2, 3)},
		"step3d":     {tensor.F32, []int{2, 2, 2}, f32Bytes(1, 3, 2, 4, 7, 9, 8, 10)},
	}

	dtypeStorages := map[string]struct {
		class string
		dtype tensor.DType
		data  []byte
	}{
		"h": {"HalfStorage", tensor.F16, []byte{0x00, 0x3c, 0x00, 0xc0}},
		"b": {"BFloat16Storage", tensor.BF16, []byte{0x80, 0x3f, 0x00, 0x40}},
		"d": {"DoubleStorage", tensor.F64, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0xc0}},
		"l": {"LongStorage", tensor.I64, i64Bytes(-1, 1<<40)},
		"i": {"IntStorage", tensor.I32, []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}},
		"s": {"ShortStorage", tensor.I16, []byte{1, 0, 0xfe, 0xff}},
		"c": {"CharStorage", tensor.I8, []byte{0x7f, 0x80}},
		"u": {"ByteStorage", tensor.U8, []byte{0, 255}},
		"o": {"BoolStorage", tensor.Bool, []byte{1, 0}},
	}
	var dtypeTensors []tt
	dtypeWant := map[string]wantTensor{}
	dtypeData := map[string][]byte{}
	for _, k := range []string{"h", "b", "d", "l", "i", "s", "c", "u", "o"} {
		s := dtypeStorages[k]
		dtypeTensors = append(dtypeTensors, tt{string(s.dtype), s.class, k, 2, 0, []int{2}, []int{1}})
		dtypeWant[string(s.dtype)] = wantTensor{s.dtype, []int{2}, s.data}
		dtypeData[k] = s.data
	}

	w1 := tt{"w", "FloatStorage", "0", 4, 0, []int{2, 2}, []int{2, 1}}
	nested := newPickle(2).op('}', '(')
	nested.str("model").global("collections", "OrderedDict").op(')', 'R', '(').str("w").rebuild(w1, false).op('u')
	nested.str("epoch").int(3)
	nested.str("name").str("run-1")
	nested.str("opt").op('}', '(').str("lr").op('G').op(0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a)
	nested.str("buf").op(']', '(').rebuild(tt{"", "FloatStorage", "0", 4, 2, []int{2}, []int{1}}, false).op('N', 'e')
	nested.op('u').op('u')

	// Protocol 4 as Python 3.8+ writes it: FRAME, SHORT_BINUNICODE,
	// STACK_GLOBAL, MEMOIZE; a Parameter wrapping the tensor; dict state
	// applied by BUILD (a state_dict's _metadata).
	p4 := &pk{}
	p4.op(0x80, 4, 0x95, 0, 0, 0, 0, 0, 0, 0, 0)
	sg := func(module, name string) {
		p4.op(0x8c, byte(len(module))).WriteString(module)
		p4.op(0x94, 0x8c, byte(len(name))).WriteString(name)
		p4.op(0x94, 0x93, 0x94)
	}
	sg("collections", "OrderedDict")
	p4.op(')', 'R', 0x94)
	p4.op(0x8c, 1).WriteString("p")
	p4.op(0x94)
	sg("torch._utils", "_rebuild_parameter")
	sg("torch._utils", "_rebuild_tensor_v2")
	p4.op('(', '(')
	p4.op(0x8c, 7).WriteString("storage")
	sg("torch", "HalfStorage")
	p4.op(0x8c, 1).WriteString("k")
	p4.op(0x8c, 3).WriteString("cpu")
	p4.op('K', 2, 't', 0x94, 'Q', 'K', 0, 'K', 2, 0x85, 'K', 1, 0x85, 0x89)
	p4.op('h', 2) // memo 2 = OrderedDict class
	p4.op(')', 'R', 't', 'R', 0x88, 'h', 2, ')', 'R', 0x87, 'R', 's')
	p4.op('}', 0x8c, 9).WriteString("_metadata")
	p4.op('}', 's', 'b')
	pkl4 := p4.stop()

	v3 := newPickle(2).op('}').str("x")
	v3.global("torch._utils", "_rebuild_tensor_v3").op('(')
	v3.op('(').str("storage").global("torch", "UntypedStorage").str("0").str("cpu").int(6).op('t', 'Q')
	v3.int(1).ints(2).ints(1).op(0x89).op('N').global("torch", "bfloat16").op('t', 'R', 's')

	fromType := newPickle(2).op('}').str("x")
	fromType.global("torch._tensor", "_rebuild_from_type_v2").op('(')
	fromType.global("torch._utils", "_rebuild_tensor_v2").global("torch", "Tensor")
	fromType.op('(').op('(').str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(12).op('t', 'Q')
	fromType.int(0).ints(2).ints(1).op(0x89, 'N', 't').op('}', 't', 'R', 's')

	bare := newPickle(2).rebuild(tt{"", "FloatStorage", "0", 12, 10, []int{2}, []int{1}}, false)

	legacyTensors := []tt{
		{"a", "FloatStorage", "100", 12, 0, []int{2, 2}, []int{1, 2}},
		{"b", "LongStorage", "200", 2, 1, []int{1}, []int{1}},
	}
	legacy := legacyFile(stateDict(legacyTensors, true), []string{"100", "200"},
		map[string][]byte{"100": twelve, "200": i64Bytes(7, 9)}, map[string]int{"100": 4, "200": 8})

	lv := newPickle(2).op('}').str("v").global("torch._utils", "_rebuild_tensor_v2").op('(', '(')
	lv.str("storage").global("torch", "FloatStorage").str("100").str("cpu").int(12).str("101").int(4).int(4).op(0x87, 't', 'Q')
	lv.int(1).ints(2).ints(1).op(0x89, 'N', 't', 'R', 's')
	legacyView := legacyFile(lv.stop(), []string{"100"}, map[string][]byte{"100": twelve}, map[string]int{"100": 4})

	bigEndian := makeZip(t,
		zipEntry{"m/data.pkl", stateDict([]tt{{"be", "FloatStorage", "0", 2, 0, []int{2}, []int{1}}}, false)},
		zipEntry{"m/byteorder", []byte("big")},
		zipEntry{"m/data/0", []byte{0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0}},
	)

	var deflated bytes.Buffer
	zw := zip.NewWriter(&deflated)
	for _, e := range []zipEntry{
		{"archive/data.pkl", stateDict(viewTensors[:4], false)},
		{"archive/data/0", twelve},
	} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		file    []byte
		names   []string
		skipped []string
		legacy  bool
		want    map[string]wantTensor
	}{
		{
			name:  "views of one storage",
			file:  checkpoint(t, stateDict(viewTensors, false), map[string][]byte{"0": twelve}),
			names: []string{"whole", "row1", "transposed", "col2", "scalar", "empty", "broadcast", "step3d"},
			want:  viewWant,
		},
		{
			name:  "every dtype",
			file:  checkpoint(t, stateDict(dtypeTensors, false), dtypeData),
			names: []string{"F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"},
			want:  dtypeWant,
		},
		{
			name:    "nested dicts and non-tensor leaves",
			file:    checkpoint(t, nested.stop(), map[string][]byte{"0": f32Bytes(1, 2, 3, 4)}),
			names:   []string{"model.w", "opt.buf.0"},
			skipped: []string{"epoch", "name", "opt.lr", "opt.buf.1"},
			want: map[string]wantTensor{
				"model.w":   {tensor.F32, []int{2, 2}, f32Bytes(1, 2, 3, 4)},
				"opt.buf.0": {tensor.F32, []int{2}, f32Bytes(3, 4)},
			},
		},
		{
			name:  "protocol 4 parameter",
			file:  checkpoint(t, pkl4, map[string][]byte{"k": {0x00, 0x3c, 0x00, 0x40}}),
			names: []string{"p"},
			want:  map[string]wantTensor{"p": {tensor.F16, []int{2}, []byte{0x00, 0x3c, 0x00, 0x40}}},
		},
		{
			name:  "rebuild_tensor_v3 over untyped storage",
			file:  checkpoint(t, v3.stop(), map[string][]byte{"0": {1, 2, 3, 4, 5, 6}}),
			names: []string{"x"},
			want:  map[string]wantTensor{"x": {tensor.BF16, []int{2}, []byte{3, 4, 5, 6}}},
		},
		{
			name:  "rebuild_from_type_v2",
			file:  checkpoint(t, fromType.stop(), map[string][]byte{"0": twelve}),
			names: []string{"x"},
			want:  map[string]wantTensor{"x": {tensor.F32, []int{2}, f32Bytes(0, 1)}},
		},
		{
			name:  "bare tensor",
			file:  checkpoint(t, bare.stop(), map[string][]byte{"0": twelve}),
			names: []string{"tensor"},
			want:  map[string]wantTensor{"tensor": {tensor.F32, []int{2}, f32Bytes(10, 11)}},
		},
		{
			name:  "big-endian archive",
			file:  bigEndian,
			names: []string{"be"},
			want:  map[string]wantTensor{"be": {tensor.F32, []int{2}, f32Bytes(1, -2)}},
		},
		{
			name:  "deflated entries",
			file:  deflated.Bytes(),
			names: []string{"whole", "row1", "transposed", "col2"},
			want:  viewWant,
		},
		{
			name:   "legacy format",
			file:   legacy,
			names:  []string{"a", "b"},
			legacy: true,
			want: map[string]wantTensor{
				"a": {tensor.F32, []int{2, 2}, f32Bytes(0, 2, 1, 3)},
				"b": {tensor.I64, []int{1}, i64Bytes(9)},
			},
		},
		{
			name:   "legacy storage view",
			file:   legacyView,
			names:  []string{"v"},
			legacy: true,
			want:   map[string]wantTensor{"v": {tensor.F32, []int{2}, f32Bytes(5, 6)}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := readBytes(t, c.file)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.Names(), c.names) || f.Len() != len(c.names) {
				t.Fatalf("names %q, want %q", f.Names(), c.names)
			}
			if !slices.Equal(f.Skipped(), c.skipped) {
				t.Fatalf("skipped %q, want %q", f.Skipped(), c.skipped)
			}
			if f.Legacy() != c.legacy {
				t.Fatalf("Legacy() = %v", f.Legacy())
			}
			for _, name := range c.names {
				got, err := f.Tensor(name)
				if err != nil {
					t.Fatal(err)
				}
				w := c.want[name]
				if got.Name != name || got.DType != w.dtype || !slices.Equal(got.Shape, w.shape) || !bytes.Equal(got.Data, w.data) {
					t.Fatalf("%s: got %s%v % x, want %s%v % x", name, got.DType, got.Shape, got.Data, w.dtype, w.shape, w.data)
				}
			}
			if _, err := f.Tensor("nope"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("missing tensor: %v", err)
			}
		})
	}
}

// TestToSafetensorsDTypes converts a checkpoint holding every dtype and
// views, and reads the result back.
func TestToSafetensorsDTypes(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "mixed.pt")
	ts := []tt{
		{"f32.t", "FloatStorage", "0", 12, 0, []int{4, 3}, []int{1, 4}},
		{"f32.empty", "FloatStorage", "0", 12, 0, []int{0}, []int{1}},
		{"half", "HalfStorage", "1", 2, 0, []int{2}, []int{1}},
		{"bf16", "BFloat16Storage", "2", 2, 0, []int{2}, []int{1}},
		{"f64", "DoubleStorage", "3", 1, 0, []int{}, []int{}},
		{"i64", "LongStorage", "4", 2, 0, []int{2}, []int{1}},
		{"i32", "IntStorage", "5", 1, 0, []int{1}, []int{1}},
		{"i16", "ShortStorage", "6", 1, 0, []int{1}, []int{1}},
		{"i8", "CharStorage", "7", 1, 0, []int{1}, []int{1}},
		{"u8", "ByteStorage", "8", 1, 0, []int{1}, []int{1}},
		{"bool", "BoolStorage", "9", 1, 0, []int{1}, []int{1}},
	}
	data := map[string][]byte{
		"0": twelve, "1": {0, 0x3c, 0, 0xbc}, "2": {0x80, 0x3f, 0, 0}, "3": {0, 0, 0, 0, 0, 0, 0xf0, 0x3f},
		"4": i64Bytes(-5, 5), "5": {1, 2, 3, 4}, "6": {5, 6}, "7": {0x80}, "8": {0xff}, "9": {1},
	}
	if err := os.WriteFile(src, checkpoint(t, stateDict(ts, false), data), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "mixed.safetensors")
	if err := ToSafetensors(src, dst); err != nil {
		t.Fatal(err)
	}
	f, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sf, err := safetensors.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	if !slices.Equal(sf.Names(), f.Names()) && sf.Len() != f.Len() {
		t.Fatalf("names %q, want %q", sf.Names(), f.Names())
	}
	if sf.Metadata()["source"] != "mixed.pt" {
		t.Fatalf("metadata %v", sf.Metadata())
	}
	for _, name := range f.Names() {
		want, err := f.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sf.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("%s: %s%v % x, want %s%v % x", name, got.DType, got.Shape, got.Data, want.DType, want.Shape, want.Data)
		}
	}

	// A failed conversion leaves nothing behind.
	bad := filepath.Join(dir, "bad.pt")
	if err := os.WriteFile(bad, []byte("not a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "bad.safetensors")
	if err := ToSafetensors(bad, out); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad source: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("output of a failed conversion exists: %v", err)
	}
}

// TestRefusesCodeExecution builds the classic malicious pickle, a REDUCE of
// os.system, inside an otherwise valid checkpoint. It must be refused when
// the global is named, and the command must not run.
func TestRefusesCodeExecution(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "pwned")
	evil := newPickle(2).global("os", "system").str("touch "+marker).op(0x85, 'R').stop()
	path := filepath.Join(t.TempDir(), "evil.pt")
	if err := os.WriteFile(path, checkpoint(t, evil, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	const msg = "pickle: refusing global os.system (only tensor rebuilding is allowed)"
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an error naming %s and containing %q", err, path, msg)
	}
	var ge *GlobalError
	if !errors.As(err, &ge) || ge.Module != "os" || ge.Name != "system" {
		t.Fatalf("GlobalError = %+v", ge)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the command ran")
	}
}

func TestMalformed(t *testing.T) {
	good := []tt{{"w", "FloatStorage", "0", 12, 0, []int{3, 4}, []int{4, 1}}}
	goodPkl := stateDict(good, false)
	goodZip := checkpoint(t, goodPkl, map[string][]byte{"0": twelve})
	inZip := func(pkl []byte) []byte { return checkpoint(t, pkl, map[string][]byte{"0": twelve}) }
	withLen := func(op byte, n uint64, size int) []byte {
		p := newPickle(4).op(op)
		b := make([]byte, 8)
		binary.LittleEndian.PutUint64(b, n)
		p.Write(b[:size])
		p.WriteString("abc")
		return p.stop()
	}
	deepLists := func(n int) []byte {
		p := newPickle(2)
		for range n {
			p.op(']')
		}
		for range n - 1 {
			p.op('a')
		}
		return p.stop()
	}
	// d(i+1) = {"a": d(i), "b": d(i)}: 2^60 leaves from a few hundred bytes.
	dagPkl := func() []byte {
		p := newPickle(2).op('}')
		for range 60 {
			// memo 0 = current; build {"a": cur, "b": cur} and make it current.
			p.op('q', 0, '0', '}', '(').str("a").op('h', 0).str("b").op('h', 0).op('u')
		}
		return p.stop()
	}()
	// One 4000-byte key shared by 90 nested dicts over 1000 leaves: tiny
	// pickle, 360 MB of names.
	longNames := newPickle(2).str(strings.Repeat("k", 4000)).op('q', 1, '0', '}', '2')
	for range 90 {
		longNames.op('h', 1, '}', 'q', 3, 's', '0', 'h', 3)
	}
	longNames.op('h', 1, ']', '(')
	for range 1000 {
		longNames.op('K', 0)
	}
	longNames.op('e', 's', '0')
	cycle := newPickle(2).op(']', 'q', 0, 'h', 0, 'a').stop()
	tarHead := make([]byte, 1024)
	copy(tarHead[257:], "ustar")
	legacyShort := legacyFile(stateDict([]tt{{"a", "FloatStorage", "1", 12, 0, []int{12}, []int{1}}}, true),
		[]string{"1"}, map[string][]byte{"1": twelve}, map[string]int{"1": 4})
	legacyShort = legacyShort[:len(legacyShort)-5]
	scriptZip := makeZip(t, zipEntry{"constants.pkl", []byte{0x80, 2, '.', '.'}}, zipEntry{"m/code/x.py", nil})

	cases := []struct {
		name string
		file []byte
		is   error
		msg  string
	}{
		{"os.system", inZip(newPickle(2).global("os", "system").str("echo hi").op(0x85, 'R').stop()), ErrForbidden, "refusing global os.system"},
		{"builtins.eval via STACK_GLOBAL", inZip(newPickle(4).str("builtins").str("eval").op(0x93).str("1").op(0x85, 'R').stop()), ErrForbidden, "refusing global builtins.eval"},
		{"__builtin__.getattr", inZip(newPickle(2).global("__builtin__", "getattr").stop()), ErrForbidden, "refusing global __builtin__.getattr"},
		{"_load_from_bytes", inZip(newPickle(2).global("torch.storage", "_load_from_bytes").stop()), ErrForbidden, "torch.storage._load_from_bytes"},
		{"builtins.set", inZip(newPickle(2).global("builtins", "set").stop()), ErrForbidden, "builtins.set"},
		{"complex storage", inZip(newPickle(2).global("torch", "ComplexFloatStorage").stop()), ErrUnsupported, "ComplexFloatStorage"},
		{"calling a dtype", inZip(newPickle(2).global("torch", "float32").op(')', 'R').stop()), ErrUnsupported, "calling torch.float32"},
		{"truncated zip", goodZip[:len(goodZip)/2], ErrInvalid, "zip"},
		{"zip without data.pkl", makeZip(t, zipEntry{"a/b", nil}), ErrInvalid, "data.pkl"},
		{"TorchScript", scriptZip, ErrUnsupported, "TorchScript"},
		{"pickle without STOP", inZip(goodPkl[:len(goodPkl)-1]), ErrInvalid, "unexpected end"},
		{"missing storage entry", checkpoint(t, goodPkl, nil), ErrInvalid, "archive/data/0 is missing"},
		{"storage smaller than declared", checkpoint(t, goodPkl, map[string][]byte{"0": twelve[:40]}), ErrInvalid, "48 bytes declared"},
		{"extent past storage end", inZip(stateDict([]tt{{"w", "FloatStorage", "0", 12, 1, []int{3, 4}, []int{4, 1}}}, false)), ErrInvalid, `tensor "w"`},
		{"stride past storage end", inZip(stateDict([]tt{{"w", "FloatStorage", "0", 12, 0, []int{2, 2}, []int{11, 1}}}, false)), ErrInvalid, "only 48 bytes"},
		{"shape overflow", inZip(stateDict([]tt{{"w", "FloatStorage", "0", 12, 0, []int{1 << 30, 1 << 30, 1 << 30}, []int{0, 0, 0}}}, false)), ErrInvalid, "overflows"},
		{"huge broadcast", inZip(stateDict([]tt{{"w", "FloatStorage", "0", 12, 0, []int{1 << 30}, []int{0}}}, false)), ErrInvalid, "expand"},
		{"huge BINUNICODE8", inZip(withLen(0x8d, 1<<62, 8)), ErrInvalid, "exceeds"},
		{"huge BINBYTES", inZip(withLen('B', 0xffffffff, 4)), ErrInvalid, "exceeds"},
		{"huge BINBYTES8", inZip(withLen(0x8e, math.MaxUint64, 8)), ErrInvalid, "exceeds"},
		{"huge LONG4", inZip(withLen(0x8b, 0x7fffffff, 4)), ErrInvalid, "unexpected end"},
		{"negative LONG4", inZip(withLen(0x8b, 0xffffffff, 4)), ErrInvalid, "negative"},
		{"huge FRAME", inZip(withLen(0x95, 1<<40, 8)), ErrInvalid, "exceeds"},
		{"deep nesting", inZip(deepLists(200000)), ErrInvalid, "nested deeper"},
		{"shared sub-dicts", inZip(dagPkl), ErrInvalid, "larger than the pickle"},
		{"names multiplied by nesting", inZip(longNames.stop()), ErrInvalid, "names of nested entries"},
		{"huge string key", inZip(newPickle(2).op('}').str(strings.Repeat("k", 5000)).op('N', 's').stop()), ErrInvalid, "dict key of 5000 bytes"},
		{"huge tuple key", inZip(newPickle(2).op('}').str(strings.Repeat("k", 300)).op(0x85, 'N', 's').stop()), ErrInvalid, "dict key longer"},
		{"OrderedDict with arguments", inZip(newPickle(2).global("collections", "OrderedDict").op(']', 0x85, 'R').stop()), ErrUnsupported, "OrderedDict with 1 arguments"},
		{"list containing itself", inZip(cycle), ErrInvalid, "contains itself"},
		{"stack underflow", inZip(newPickle(2).op('R').stop()), ErrInvalid, "underflow"},
		{"unknown opcode", inZip(newPickle(2).op(0xff).stop()), ErrInvalid, "unknown pickle opcode 0xff"},
		{"memo miss", inZip(newPickle(2).op('h', 7).stop()), ErrInvalid, "memo key 7"},
		{"extra values at STOP", inZip(newPickle(2).op('N', 'N').stop()), ErrInvalid, "2 values"},
		{"unhashable key", inZip(newPickle(2).op('}', ']', 'N', 's').stop()), ErrInvalid, "unhashable"},
		{"bad persistent id", inZip(newPickle(2).str("storage").op(0x85, 'Q').stop()), ErrInvalid, "1 elements"},
		{"scalar checkpoint", inZip(newPickle(2).int(3).stop()), ErrInvalid, "holds a int"},
		{"text-mode string", inZip(newPickle(2).op('S').stop()), ErrUnsupported, "STRING"},
		{"protocol 6", inZip([]byte{0x80, 6, 'N', '.'}), ErrUnsupported, "protocol 6"},
		{"duplicate names", inZip(newPickle(2).op('}', '(').str("a.b").rebuild(good[0], false).str("a").op('}', '(').str("b").rebuild(good[0], false).op('u', 'u').stop()), ErrInvalid, `two tensors named "a.b"`},
		{"not a checkpoint", []byte("hello world"), ErrInvalid, "not a PyTorch checkpoint"},
		{"empty file", nil, ErrInvalid, "not a PyTorch checkpoint"},
		{"bare pickle", newPickle(2).op('}').stop(), ErrInvalid, "bare pickle"},
		{"legacy tar", tarHead, ErrUnsupported, "tar"},
		{"legacy truncated storages", legacyShort, ErrInvalid, "do not fit"},
		{"legacy truncated pickle", append(slices.Clone(legacyMagic), 0x80, 2, 'M'), ErrInvalid, "unexpected end"},
		{"legacy cut magic", legacyMagic[:len(legacyMagic)-1], ErrInvalid, "bare pickle"},
		{"legacy missing pickles", legacyMagic, ErrInvalid, "unexpected end"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := readBytes(t, c.file)
			if err == nil {
				// Tensor data problems surface no later than Tensor.
				for _, n := range f.Names() {
					if _, err = f.Tensor(n); err != nil {
						break
					}
				}
			}
			if err == nil || !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v containing %q", err, c.is, c.msg)
			}
		})
	}
}

// TestUnpickleValues checks the machine on the scalar and container opcodes
// a checkpoint's non-tensor entries use.
func TestUnpickleValues(t *testing.T) {
	cases := []struct {
		name string
		pkl  []byte
		want any
	}{
		{"none", newPickle(2).op('N').stop(), nil},
		{"true", newPickle(2).op(0x88).stop(), true},
		{"BININT negative", newPickle(2).op('J', 0xfe, 0xff, 0xff, 0xff).stop(), int64(-2)},
		{"BININT2", newPickle(2).op('M', 0x34, 0x12).stop(), int64(0x1234)},
		{"LONG1 negative", newPickle(2).op(0x8a, 2, 0x00, 0xff).stop(), int64(-256)},
		{"LONG1 empty", newPickle(2).op(0x8a, 0).stop(), int64(0)},
		{"LONG4", newPickle(2).op(0x8b, 1, 0, 0, 0, 0x7f).stop(), int64(127)},
		{"BINFLOAT", newPickle(2).op('G', 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18).stop(), math.Pi},
		{"text INT", []byte("I42\n."), int64(42)},
		{"text bool", []byte("I01\n."), true},
		{"text LONG", []byte("L-7L\n."), int64(-7)},
		{"text FLOAT", []byte("F0.5\n."), 0.5},
		{"SHORT_BINUNICODE", newPickle(4).op(0x8c, 2, 'h', 'i').stop(), "hi"},
		{"SHORT_BINSTRING", newPickle(2).op('U', 1, 'x').stop(), "x"},
		{"SHORT_BINBYTES", newPickle(3).op('C', 2, 1, 2).stop(), pyBytes{1, 2}},
		{"DUP and POP", newPickle(2).op('K', 1, '2', '0').stop(), int64(1)},
		{"POP_MARK", newPickle(2).op('K', 1, '(', 'K', 2, 'K', 3, '1').stop(), int64(1)},
		{"memo text", []byte("K\x05p3\n0g3\n."), int64(5)},
		{"LONG_BINPUT/GET", newPickle(2).op('K', 9, 'r', 1, 0, 0, 1, '0', 'j', 1, 0, 0, 1).stop(), int64(9)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, n, err := unpickle(c.pkl, nil)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(c.pkl) {
				t.Fatalf("consumed %d of %d bytes", n, len(c.pkl))
			}
			if !equalValue(got, c.want) {
				t.Fatalf("got %#v, want %#v", got, c.want)
			}
		})
	}

	// Big integers, sets, tuples and dicts with equal keys.
	big, _, err := unpickle(newPickle(2).op(0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1).stop(), nil)
	if err != nil || typeName(big) != "int" || big.(interface{ String() string }).String() != "18446744073709551616" {
		t.Fatalf("LONG1 of 9 bytes: %v %v", big, err)
	}
	v, _, err := unpickle(newPickle(2).op('}', '(', 'K', 1, 'N', 0x88, 'K', 0, ')', 'K', 1, 'K', 1, 0x85, 'N', 'u').stop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := v.(*dict)
	if len(d.keys) != 3 { // True == 1
		t.Fatalf("dict keys %v", d.keys)
	}
	if got, _ := d.get(int64(1)); got != int64(0) {
		t.Fatalf("d[1] = %v", got)
	}
	if _, ok := d.get(&list{}); ok {
		t.Fatal("lookup of an unhashable key succeeded")
	}
	v, _, err = unpickle(newPickle(4).op(0x8f, '(', 'K', 1, 'K', 2, 0x90, '(', 'K', 3, 0x91, 0x86).stop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tp := v.(tuple); len(tp[0].(*set).items) != 2 || len(tp[1].(*set).items) != 1 {
		t.Fatalf("sets %v", tp)
	}
}

// equalValue compares scalar results of the machine.
func equalValue(a, b any) bool {
	switch x := a.(type) {
	case pyBytes:
		y, ok := b.(pyBytes)
		return ok && bytes.Equal(x, y)
	}
	return a == b
}
