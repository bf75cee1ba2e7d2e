package pickle

import (
	"bytes"
	"errors"
	"testing"
)

// classified reports whether err wraps one of the package's sentinels, as
// every error from untrusted input must.
func classified(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrForbidden) || errors.Is(err, ErrUnsupported)
}

// fuzzStorage resolves a zip-style persistent id to a small synthetic
// storage whose bytes count up, so that gathers of any layout can run.
func fuzzStorage(pid any) (any, error) {
	st, err := storageFromPID(pid, false)
	if err != nil {
		return nil, err
	}
	if st.nbytes > 1<<16 {
		return nil, malformed("fuzz: storage of %d bytes", st.nbytes)
	}
	buf := make([]byte, st.nbytes)
	for i := range buf {
		buf[i] = byte(i)
	}
	st.src = &blob{ra: bytes.NewReader(buf), size: st.nbytes}
	return st, nil
}

// FuzzUnpickle runs arbitrary bytes through the restricted machine, the
// flattening into names, and the materialisation of every tensor that
// passes validation. Nothing may panic, every error must be classified, and
// a validated tensor must always be readable. The seed corpus
// (testdata/fuzz/FuzzUnpickle) holds the data.pkl of every fixture and
// hand-made pickles for each opcode family.
func FuzzUnpickle(f *testing.F) {
	f.Add(stateDict([]tt{{"w", "FloatStorage", "0", 12, 1, []int{2, 3}, []int{1, 4}}}, false))
	f.Add(newPickle(2).global("os", "system").str("true").op(0x85, 'R').stop())
	f.Fuzz(func(t *testing.T, data []byte) {
		v, n, err := unpickle(data, fuzzStorage)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if n <= 0 || n > len(data) {
			t.Fatalf("consumed %d of %d bytes", n, len(data))
		}
		entries, _, err := flatten(v, n)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		for _, e := range entries {
			l, err := e.t.plan()
			if err != nil {
				if !classified(err) {
					t.Fatalf("tensor %q: unclassified error: %v", e.name, err)
				}
				continue
			}
			if l.bytes > 1<<22 {
				continue // a legitimate but large broadcast; not worth the time
			}
			b, err := e.t.materialize(false)
			if err != nil {
				t.Fatalf("tensor %q: validated but unreadable: %v", e.name, err)
			}
			if int64(len(b)) != l.bytes {
				t.Fatalf("tensor %q: %d bytes, want %d", e.name, len(b), l.bytes)
			}
		}
	})
}

// FuzzRead feeds whole files (zip archives and legacy files) to Read and
// reads every tensor of an accepted file.
func FuzzRead(f *testing.F) {
	f.Add(checkpoint(f, stateDict([]tt{{"w", "FloatStorage", "0", 12, 1, []int{2, 3}, []int{1, 4}}}, false),
		map[string][]byte{"0": twelve}))
	f.Add(legacyFile(stateDict([]tt{{"a", "FloatStorage", "1", 12, 0, []int{3, 4}, []int{1, 3}}}, true),
		[]string{"1"}, map[string][]byte{"1": twelve}, map[string]int{"1": 4}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		for _, name := range r.Names() {
			x, err := r.Tensor(name)
			if err != nil {
				continue // e.g. corrupt deflate data, found only when read
			}
			if len(x.Data) != x.NumElements()*x.DType.Size() {
				t.Fatalf("tensor %q: %d bytes for %s%v", name, len(x.Data), x.DType, x.Shape)
			}
		}
	})
}
