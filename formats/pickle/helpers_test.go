package pickle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// fixture returns the path of a shared fixture (../shared/fixtures beside
// the repository), skipping the test when it is absent.
func fixture(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "fixtures", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("fixture %s not available (%v); it lives in ../shared/fixtures next to the repository", p, err)
	}
	return p
}

// pk assembles pickles opcode by opcode for hand-made test inputs.
type pk struct{ bytes.Buffer }

func newPickle(proto byte) *pk {
	p := &pk{}
	p.WriteByte(0x80)
	p.WriteByte(proto)
	return p
}

func (p *pk) op(ops ...byte) *pk { p.Write(ops); return p }

func (p *pk) global(module, name string) *pk {
	p.WriteString("c" + module + "\n" + name + "\n")
	return p
}

func (p *pk) str(s string) *pk {
	p.WriteByte('X')
	_ = binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}

func (p *pk) int(n int) *pk {
	switch {
	case n >= 0 && n < 256:
		p.op('K', byte(n))
	case n >= 0 && n < 65536:
		p.op('M', byte(n), byte(n>>8))
	default:
		p.WriteByte('J')
		_ = binary.Write(p, binary.LittleEndian, int32(n))
	}
	return p
}

func (p *pk) ints(ns ...int) *pk {
	p.op('(')
	for _, n := range ns {
		p.int(n)
	}
	return p.op('t')
}

func (p *pk) stop() []byte { p.WriteByte('.'); return p.Bytes() }

// tt describes one tensor of a synthetic checkpoint: a view of the storage
// named key.
type tt struct {
	name    string
	storage string // torch storage class, e.g. FloatStorage
	key     string
	numel   int
	offset  int
	shape   []int
	stride  []int
}

// rebuild emits _rebuild_tensor_v2(persistent storage, offset, size, stride,
// False, OrderedDict()). legacy emits the six-element persistent id.
func (p *pk) rebuild(x tt, legacy bool) *pk {
	p.global("torch._utils", "_rebuild_tensor_v2")
	p.op('(')
	p.op('(').str("storage").global("torch", x.storage).str(x.key).str("cpu").int(x.numel)
	if legacy {
		p.op('N')
	}
	p.op('t', 'Q')
	p.int(x.offset).ints(x.shape...).ints(x.stride...)
	p.op(0x89).global("collections", "OrderedDict").op(')', 'R')
	p.op('t', 'R')
	return p
}

// stateDict pickles an OrderedDict of the given tensors.
func stateDict(ts []tt, legacy bool) []byte {
	p := newPickle(2)
	p.global("collections", "OrderedDict").op(')', 'R', '(')
	for _, x := range ts {
		p.str(x.name).rebuild(x, legacy)
	}
	p.op('u')
	return p.stop()
}

// zipEntry is one file of a synthetic archive.
type zipEntry struct {
	name string
	data []byte
}

// makeZip writes entries, uncompressed like torch.save, into a zip.
func makeZip(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Store})
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
	return buf.Bytes()
}

// checkpoint makes a torch.save-style zip holding pkl and storages (key ->
// bytes).
func checkpoint(t testing.TB, pkl []byte, storages map[string][]byte) []byte {
	t.Helper()
	entries := []zipEntry{{"archive/data.pkl", pkl}, {"archive/byteorder", []byte("little")}}
	for k, v := range storages {
		entries = append(entries, zipEntry{"archive/data/" + k, v})
	}
	entries = append(entries, zipEntry{"archive/version", []byte("3\n")})
	return makeZip(t, entries...)
}

// legacyFile makes a pre-1.6 torch.save file: magic, protocol, sys info,
// object pickle, key list, then each storage as int64 count + data.
func legacyFile(obj []byte, keys []string, storages map[string][]byte, elem map[string]int) []byte {
	var b bytes.Buffer
	b.Write(legacyMagic)
	b.Write(newPickle(2).int(1001).stop())
	info := newPickle(2).op('}', '(').str("protocol_version").int(1001).str("little_endian").op(0x88).
		str("type_sizes").op('}', '(').str("short").int(2).str("int").int(4).str("long").int(4).op('u').op('u')
	b.Write(info.stop())
	b.Write(obj)
	kp := newPickle(2).op(']', '(')
	for _, k := range keys {
		kp.str(k)
	}
	b.Write(kp.op('e').stop())
	for _, k := range keys {
		d := storages[k]
		_ = binary.Write(&b, binary.LittleEndian, int64(len(d)/elem[k]))
		b.Write(d)
	}
	return b.Bytes()
}

func f32Bytes(vs ...float32) []byte {
	out := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

func i64Bytes(vs ...int64) []byte {
	out := make([]byte, 8*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint64(out[8*i:], uint64(v))
	}
	return out
}

// values decodes a tensor to float64 for comparisons.
func values(t testing.TB, x tensor.Tensor) []float64 {
	t.Helper()
	f, err := x.Float32()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out
}

func seq(lo, hi int) []float64 {
	var out []float64
	for i := lo; i <= hi; i++ {
		out = append(out, float64(i))
	}
	return out
}

func readBytes(t testing.TB, data []byte) (*File, error) {
	t.Helper()
	return Read(bytes.NewReader(data), int64(len(data)))
}
