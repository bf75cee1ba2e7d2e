package recipe

import (
	"testing"

	"github.com/BurntSushi/toml"
)

// scanDoc exercises the TOML syntax the position scanner must follow.
const scanDoc = "\ufeff# comment [not.a.table]\n" + // 1
	"top = \"\"\"\n" + // 2
	"[fake]\n" + // 3
	"x = 1 \\\"\"\" \"\"\"\n" + // 4: the string ends here
	"a.\"b.c\" . d = 'lit # not a comment'\n" + // 5
	"[t] # comment\n" + // 6
	"arr = [ 1, # one\n" + // 7
	"  { k = 2, in = { deep = 3 } },\n" + // 8
	"  [4, 5] ]\n" + // 9
	"  \"é\" = 'x'\n" + // 10
	"[[g]]\r\n" + // 11
	"name = 'first'\n" + // 12
	"[[g.sub]]\n" + // 13
	"p = 1\n" + // 14
	"[[g]]\n" + // 15
	"  name = \"second\"\n" + // 16
	"[[g.sub]]\n" + // 17
	"p = 2\n" + // 18
	"[[g.sub]]\n" + // 19
	"q = '''a\n" + // 20
	"b'''''\n" + // 21
	"[g.tab]\n" + // 22
	"r = 3\n" // 23

func TestScanPositions(t *testing.T) {
	doc := scanDoc
	var m map[string]any
	if _, err := toml.Decode(doc, &m); err != nil {
		t.Fatalf("test document is not TOML: %v", err)
	}
	p := scanPositions(doc)
	tests := []struct {
		path     string
		key, val pos
	}{
		{"top", pos{2, 1}, pos{2, 7}},
		{"a", pos{5, 1}, pos{}},
		{"a.b.c", pos{5, 3}, pos{}},
		{"a.b.c.d", pos{5, 11}, pos{5, 15}},
		{"t", pos{6, 2}, pos{6, 1}},
		{"t.arr", pos{7, 1}, pos{7, 7}},
		{"t.arr.0", pos{}, pos{7, 9}},
		{"t.arr.1", pos{}, pos{8, 3}},
		{"t.arr.1.k", pos{8, 5}, pos{8, 9}},
		{"t.arr.1.in.deep", pos{8, 19}, pos{8, 26}},
		{"t.arr.2.1", pos{}, pos{9, 7}},
		{"t.é", pos{10, 3}, pos{10, 9}},
		{"g", pos{11, 3}, pos{}},
		{"g.0", pos{11, 3}, pos{11, 1}},
		{"g.0.name", pos{12, 1}, pos{12, 8}},
		{"g.0.sub.0.p", pos{14, 1}, pos{14, 5}},
		{"g.1.name", pos{16, 3}, pos{16, 10}},
		{"g.1.sub.0.p", pos{18, 1}, pos{18, 5}},
		{"g.1.sub.1", pos{19, 5}, pos{19, 1}},
		{"g.1.sub.1.q", pos{20, 1}, pos{20, 5}},
		{"g.1.tab.r", pos{23, 1}, pos{23, 5}},
	}
	for _, tt := range tests {
		got := p[tt.path]
		if tt.key != (pos{}) && got.key != tt.key {
			t.Errorf("%s: key at %v, want %v", tt.path, got.key, tt.key)
		}
		if tt.val != (pos{}) && got.val != tt.val {
			t.Errorf("%s: value at %v, want %v", tt.path, got.val, tt.val)
		}
		if got == (place{}) {
			t.Errorf("%s: not found", tt.path)
		}
	}
	for _, absent := range []string{"fake", "fake.x", "x", "b", "g.sub"} {
		if _, ok := p[absent]; ok {
			t.Errorf("%s: found, but is not a key of the document", absent)
		}
	}
}

// FuzzScanPositions checks that the scanner finds every key of any
// document the TOML parser accepts.
func FuzzScanPositions(f *testing.F) {
	f.Add(good)
	f.Add(causal)
	f.Add(scanDoc)
	f.Add("\"a\\\"b\" = 1\n\"\\u00e9\" = { x = [ [ {y=1} ] ] }\n[\"q.r\".s]\nt = 1979-05-27T07:32:00Z\nu = -inf\n")
	f.Add("a = [ { b = \"\"\"x\"\"\" }, [1, 2] ]\n[[c.d]]\ne.'f' = 1")
	f.Fuzz(func(t *testing.T, doc string) {
		var m map[string]any
		if _, err := toml.Decode(doc, &m); err != nil {
			return
		}
		p := scanPositions(doc)
		all := map[string]bool{}
		collect(all, "", m)
		for path := range all {
			if p[path].key.Line == 0 {
				t.Errorf("%q: not found in\n%s", path, doc)
			}
		}
	})
}
