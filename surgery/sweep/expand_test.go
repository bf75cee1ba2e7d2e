package sweep

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// baseRecipe is a valid recipe without [sweep]; nothing is read from its
// paths unless a point runs for real.
const baseRecipe = `
[model]
path = "model.gguf"
task = "sequence-classification"
labels = ["ham", "spam"]

[data]
train = "train.tsv"
test_fraction = 0.2

[[targets]]
modules = ["q_proj", "v_proj"]
[targets.config]
r = 8
lora_alpha = 16

[train]
max_steps = 2
lr = 1e-3
`

// writeRecipes writes files (name -> body) into a fresh folder and
// returns the folder.
func writeRecipes(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func loadSweep(t *testing.T, sweepTable string, sets ...string) (*Sweep, error) {
	t.Helper()
	dir := writeRecipes(t, map[string]string{
		"s.toml":    baseRecipe + "\n" + sweepTable,
		"head.toml": strings.Replace(baseRecipe, "[[targets]]\nmodules = [\"q_proj\", \"v_proj\"]\n[targets.config]\nr = 8\nlora_alpha = 16\n", "", 1),
	})
	return Load(filepath.Join(dir, "s.toml"), sets, "")
}

type pointView struct {
	Name, Group string
	Overrides   []string
}

func view(s *Sweep) []pointView {
	var out []pointView
	for _, p := range s.Points {
		out = append(out, pointView{p.Name, p.Group, p.Overrides})
	}
	return out
}

func TestExpand(t *testing.T) {
	cases := []struct {
		name  string
		table string
		sets  []string
		want  []pointView
	}{
		{"grid, first axis slowest", `
[sweep.axes]
"targets.0.config.r" = [1, 2]
"train.lr" = [1e-3, 1e-4]
`, nil, []pointView{
			{"r=1,lr=0.001", "r=1,lr=0.001", []string{"targets.0.config.r=1", "train.lr=0.001"}},
			{"r=1,lr=0.0001", "r=1,lr=0.0001", []string{"targets.0.config.r=1", "train.lr=0.0001"}},
			{"r=2,lr=0.001", "r=2,lr=0.001", []string{"targets.0.config.r=2", "train.lr=0.001"}},
			{"r=2,lr=0.0001", "r=2,lr=0.0001", []string{"targets.0.config.r=2", "train.lr=0.0001"}},
		}},
		{"file order wins over key order", `
[sweep.axes]
"train.lr" = [0.5]
"targets.0.config.r" = [4]
`, nil, []pointView{{"lr=0.5,r=4", "lr=0.5,r=4", []string{"train.lr=0.5", "targets.0.config.r=4"}}}},
		{"zip", `
[sweep]
mode = "zip"
[sweep.axes]
"targets.0.config.r" = [4, 8]
"targets.0.adapter" = ["lora", "ia3"]
`, nil, []pointView{
			{"r=4,adapter=lora", "r=4,adapter=lora", []string{"targets.0.config.r=4", `targets.0.adapter="lora"`}},
			{"r=8,adapter=ia3", "r=8,adapter=ia3", []string{"targets.0.config.r=8", `targets.0.adapter="ia3"`}},
		}},
		{"expression of rank, seeds innermost", `
[sweep]
seeds = [1, 2]
[sweep.axes]
"targets.0.config.r" = "2,4"
"targets.0.config.lora_alpha" = "2*r"
`, nil, []pointView{
			{"r=2,seed=1", "r=2", []string{"targets.0.config.r=2", "targets.0.config.lora_alpha=4", "train.seed=1"}},
			{"r=2,seed=2", "r=2", []string{"targets.0.config.r=2", "targets.0.config.lora_alpha=4", "train.seed=2"}},
			{"r=4,seed=1", "r=4", []string{"targets.0.config.r=4", "targets.0.config.lora_alpha=8", "train.seed=1"}},
			{"r=4,seed=2", "r=4", []string{"targets.0.config.r=4", "targets.0.config.lora_alpha=8", "train.seed=2"}},
		}},
		{"expressions: floats, parentheses, recipe values, chains", `
[sweep.axes]
"train.lr" = [0.001]
"targets.0.config.r" = { values = [3], name = "rk" }
"targets.0.config.lora_alpha" = { expr = "(rk + 1) / 2" }
"targets.0.config.lora_dropout" = "lora_alpha / 100 + train.max_steps"
`, nil, []pointView{{"lr=0.001,rk=3", "lr=0.001,rk=3", []string{"train.lr=0.001", "targets.0.config.r=3", "targets.0.config.lora_alpha=2.0", "targets.0.config.lora_dropout=2.02"}}}},
		{"expression of the recipe's own rank", `
[sweep.axes]
"train.lr" = [0.1]
"targets.0.config.lora_alpha" = "targets.0.config.r * 4"
`, nil, []pointView{{"lr=0.1", "lr=0.1", []string{"train.lr=0.1", "targets.0.config.lora_alpha=32"}}}},
		{"ranges", `
[sweep]
mode = "zip"
[sweep.axes]
"targets.0.config.r" = "1,2,4..32"
"train.max_steps" = "1-5,9"
`, nil, []pointView{
			{"r=1,max_steps=1", "r=1,max_steps=1", []string{"targets.0.config.r=1", "train.max_steps=1"}},
			{"r=2,max_steps=2", "r=2,max_steps=2", []string{"targets.0.config.r=2", "train.max_steps=2"}},
			{"r=4,max_steps=3", "r=4,max_steps=3", []string{"targets.0.config.r=4", "train.max_steps=3"}},
			{"r=8,max_steps=4", "r=8,max_steps=4", []string{"targets.0.config.r=8", "train.max_steps=4"}},
			{"r=16,max_steps=5", "r=16,max_steps=5", []string{"targets.0.config.r=16", "train.max_steps=5"}},
			{"r=32,max_steps=9", "r=32,max_steps=9", []string{"targets.0.config.r=32", "train.max_steps=9"}},
		}},
		{"list values and module lists", `
[sweep.axes]
"targets.0.modules" = [["q_proj"], ["q_proj", "v_proj"]]
`, nil, []pointView{
			{"modules=q_proj", "modules=q_proj", []string{`targets.0.modules=["q_proj"]`}},
			{"modules=q_proj+v_proj", "modules=q_proj+v_proj", []string{`targets.0.modules=["q_proj", "v_proj"]`}},
		}},
		{"baselines: recipe, sets, own seeds; sweep sets and extra sets on every point", `
[sweep]
seeds = "1-2"
sets = ["train.max_steps=3"]
[sweep.axes]
"targets.0.config.r" = [4]
[sweep.baselines]
head = { recipe = "head.toml", sets = ["train.mode=head"] }
big = { sets = ["targets.0.config.r=64"], seeds = [] }
`, []string{"train.lr=0.01"}, []pointView{
			{"r=4,seed=1", "r=4", []string{"targets.0.config.r=4", "train.seed=1"}},
			{"r=4,seed=2", "r=4", []string{"targets.0.config.r=4", "train.seed=2"}},
			{"head,seed=1", "head", []string{"train.mode=head", "train.seed=1"}},
			{"head,seed=2", "head", []string{"train.mode=head", "train.seed=2"}},
			{"big", "big", []string{"targets.0.config.r=64"}},
		}},
		{"seed axis becomes the seeds; no axes", `
[sweep.axes]
"train.seed" = [7, 8]
`, nil, []pointView{
			{"seed=7", "base", []string{"train.seed=7"}},
			{"seed=8", "base", []string{"train.seed=8"}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := loadSweep(t, c.table, c.sets...)
			if err != nil {
				t.Fatal(err)
			}
			if got := view(s); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("points\n got %q\nwant %q", got, c.want)
			}
			for i, p := range s.Points {
				if p.Index != i || p.Hash == "" {
					t.Fatalf("point %d: index %d hash %q", i, p.Index, p.Hash)
				}
				last := p.Sets[len(p.Sets)-1]
				if want := "output.dir=" + filepath.Join(s.Dir, "points", p.Name); last != want {
					t.Fatalf("point %s: last set %q, want %q", p.Name, last, want)
				}
				for _, extra := range c.sets {
					if p.Sets[1] != extra && p.Sets[0] != extra {
						t.Fatalf("point %s: sets %q lack the extra %q", p.Name, p.Sets, extra)
					}
				}
			}
			if filepath.Base(s.Dir) != "s-sweep" || filepath.Base(filepath.Dir(s.Dir)) != "runs" {
				t.Fatalf("default dir %s", s.Dir)
			}
		})
	}
}

// The baseline's recipe and sets come last so that they win; the sweep's
// sets apply to baselines too.
func TestBaselineSets(t *testing.T) {
	s, err := loadSweep(t, `
[sweep]
sets = ["train.max_steps=3"]
[sweep.baselines]
head = { recipe = "head.toml", sets = ["train.mode=head"] }
`, "train.mode=adapter")
	if err != nil {
		t.Fatal(err)
	}
	p := s.Points[1]
	if filepath.Base(p.Recipe) != "head.toml" {
		t.Fatalf("baseline recipe %s", p.Recipe)
	}
	want := []string{"train.max_steps=3", "train.mode=adapter", "train.mode=head", "output.dir=" + s.PointDir("head")}
	if !reflect.DeepEqual(p.Sets, want) {
		t.Fatalf("sets %q, want %q", p.Sets, want)
	}
}

func TestExpandErrors(t *testing.T) {
	cases := []struct{ name, table, want string }{
		{"unknown sweep key", "[sweep]\nmodee = \"grid\"\n", `sweep.modee: unknown key`},
		{"bad mode", "[sweep]\nmode = \"cross\"\n", `sweep.mode: want "grid" or "zip"`},
		{"unknown recipe key", "[sweep.axes]\n\"targets.0.confg.r\" = [1]\n", `unknown key "targets.0.confg"`},
		{"wrong type for the key", "[sweep.axes]\n\"train.max_steps\" = [\"many\"]\n", `train.max_steps: expected an integer`},
		{"bad expression", "[sweep.axes]\n\"targets.0.config.r\" = [1]\n\"targets.0.config.lora_alpha\" = \"2**rank\"\n", `bad expression "2**rank"`},
		{"unknown name", "[sweep.axes]\n\"targets.0.config.r\" = [1]\n\"targets.0.config.lora_alpha\" = \"2*rnk\"\n", `unknown name "rnk"`},
		{"cycle", "[sweep.axes]\n\"train.lr\" = \"max_steps / 10\"\n\"train.max_steps\" = \"lr * 10\"\n", `refer to each other`},
		{"zip lengths", "[sweep]\nmode = \"zip\"\n[sweep.axes]\n\"targets.0.config.r\" = [1, 2]\n\"train.lr\" = [0.1]\n", `same number of values: r has 2, lr has 1`},
		{"bad range", "[sweep.axes]\n\"targets.0.config.r\" = \"8-1\"\n", `bad range "8-1"`},
		{"scalar axis", "[sweep.axes]\n\"targets.0.config.r\" = 8\n", `want a list of values`},
		{"empty list", "[sweep.axes]\n\"targets.0.config.r\" = []\n", `empty list`},
		{"output.dir is the sweep's", "[sweep.axes]\n\"output.dir\" = [\"a\"]\n", `the sweep sets output.dir`},
		{"same short name", "[sweep.axes]\n\"train.seed\" = [1]\n\"data.seed\" = [2]\n", `same short name "seed"`},
		{"seeds twice", "[sweep]\nseeds = [1]\n[sweep.axes]\n\"train.seed\" = [1]\n", `keep one`},
		{"float seeds", "[sweep]\nseeds = [1.5]\n", `seeds must be integers`},
		{"baseline without recipe or sets", "[sweep.baselines]\nhead = {}\n", `want a recipe, sets, or both`},
		{"baseline unknown key", "[sweep.baselines]\nhead = { recipes = \"x\" }\n", `unknown key "recipes"`},
		{"missing baseline recipe", "[sweep.baselines]\nhead = { recipe = \"nope.toml\" }\n", `nope.toml`},
		{"duplicate names", "[sweep.axes]\n\"targets.0.adapter\" = [\"a/b\", \"a_b\"]\n", `both named "adapter=a_b"`},
		{"no [sweep]", "", `no [sweep] table`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadSweep(t, c.table)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestParseRange(t *testing.T) {
	cases := []struct {
		in   string
		want []any
		err  string
	}{
		{"1,2,4..32", []any{int64(1), int64(2), int64(4), int64(8), int64(16), int64(32)}, ""},
		{"1-4", []any{int64(1), int64(2), int64(3), int64(4)}, ""},
		{"0-10:5", []any{int64(0), int64(5), int64(10)}, ""},
		{"1..100:10", []any{int64(1), int64(10), int64(100)}, ""},
		{"1e-4..1e-2:10", []any{1e-4, 1e-3, 1e-2}, ""},
		{"0.5, 1e-3", []any{0.5, 1e-3}, ""},
		{"3..20", []any{int64(3), int64(6), int64(12)}, ""},
		{"", nil, "empty"},
		{"1,,2", nil, "empty item"},
		{"4-1", nil, "4 > 1"},
		{"1..8:1", nil, "factor must be > 1"},
		{"0..8", nil, "0 < a <= b"},
		{"1-100000", nil, "more than"},
		{"x", nil, "bad range item"},
	}
	for _, c := range cases {
		got, err := parseRange(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseRange(%q) error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseRange(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestExpr(t *testing.T) {
	env := func(name string) (number, error) {
		switch name {
		case "r", "rank":
			return number{8, true}, nil
		case "lr":
			return number{0.5, false}, nil
		}
		return number{}, os.ErrNotExist
	}
	cases := []struct {
		in   string
		want any
	}{
		{"2*r", int64(16)},
		{"rank/2", 4.0},
		{"rank - 2 * 3", int64(2)},
		{"(rank - 2) * 3", int64(18)},
		{"-rank + 1", int64(-7)},
		{"lr * rank", 4.0},
		{"1e-3 * rank", 0.008},
		{"rank / (rank - 8)", "division by zero"},
		{"2 +", "unexpected end"},
		{"2 ^ 3", "unexpected"},
		{"(2", "missing ')'"},
	}
	for _, c := range cases {
		e, err := parseExpr(c.in)
		var got any
		if err == nil {
			var n number
			if n, err = e.eval(env); err == nil {
				got = n.value()
			}
		}
		if err != nil {
			got = err.Error()
		}
		if s, ok := c.want.(string); ok {
			if gs, _ := got.(string); !strings.Contains(gs, s) {
				t.Errorf("%q: got %v, want error %q", c.in, got, s)
			}
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q = %v (%T), want %v (%T)", c.in, got, got, c.want, c.want)
		}
	}
}

func TestTOMLValue(t *testing.T) {
	for v, want := range map[any]string{int64(3): "3", 2.0: "2.0", 1e-5: "1e-05", "a\"b\n": `"a\"b\n"`, true: "true"} {
		if got, err := tomlValue(v); err != nil || got != want {
			t.Errorf("tomlValue(%#v) = %q, %v; want %q", v, got, err, want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	s, err := loadSweep(t, "[sweep.axes]\n\"targets.0.config.r\" = [1, 2]\n")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := s.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"2 points", "0  r=1", "1  r=2", "targets.0.config.r=2"} {
		if !strings.Contains(out, want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}
}
