package apply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/surgeon-ml/surgeon/core/hub"
	"github.com/surgeon-ml/surgeon/plugins/builtin/lora"
	"github.com/surgeon-ml/surgeon/plugins/sdk/sdktest"
	"github.com/surgeon-ml/surgeon/surgery/attach"
	"github.com/surgeon-ml/surgeon/surgery/recipe"
)

var fixtures, _ = filepath.Abs("../../../shared/fixtures")

func needFixtures(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(fixtures, "stories260K-gguf")); err != nil {
		t.Skipf("../shared/fixtures missing: %v", err)
	}
}

// smallRecipe is the quickstart cut down to run in seconds.
func smallRecipe(extra string) string {
	return `
[model]
path = "` + fixtures + `/stories260K-gguf/stories260K.gguf"
task = "sequence-classification"
labels = ["ham", "spam"]
max_length = 48

[data]
train = "` + fixtures + `/sms-spam-collection/SMSSpamCollection"
format = "tsv"
text_field = "SMS"
label_field = "Label"
test_fraction = 0.25
max_examples = 400

[[targets]]
name = "attention"
modules = ["q_proj", "v_proj"]
[targets.config]
r = 4
lora_alpha = 8

[train]
epochs = 1
batch_size = 16
lr = 2e-3
` + extra
}

func writeRecipe(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "r.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func prepare(t *testing.T, path string, sets ...string) (*Run, error) {
	t.Helper()
	rec, err := recipe.Load(path, sets)
	if err != nil {
		return nil, err
	}
	return Prepare(context.Background(), rec, Options{Planner: attach.InProcess(sdktest.Connect(t, lora.Adapters()...))})
}

// Every bad recipe fails with one clear error before any training starts.
func TestBadRecipes(t *testing.T) {
	needFixtures(t)
	cases := []struct {
		name string
		body string
		sets []string
		want []string
	}{
		{"unknown key", smallRecipe("lerning_rate = 3\n"), nil, []string{"r.toml:", "unknown key", "train.lerning_rate"}},
		{"typo in target pattern", strings.Replace(smallRecipe(""), `"v_proj"]`, `"v_prj"]`, 1), nil, []string{"v_prj", "matches no", "nearest: model.layers.0.self_attn.v_proj"}},
		{"missing data file", strings.Replace(smallRecipe(""), "SMSSpamCollection", "NoSuchFile", 1), nil, []string{"data.train", "NoSuchFile"}},
		{"label column absent", strings.Replace(smallRecipe(""), `label_field = "Label"`, `label_field = "Class"`, 1), nil, []string{"Class", "Label"}},
		{"rank 0", smallRecipe(""), []string{"targets.0.config.r=0"}, []string{"r must be positive"}},
		{"layer range past the model", strings.Replace(smallRecipe(""), `modules = ["q_proj", "v_proj"]`, `modules = ["q_proj"]`+"\nlayers = \"3-7\"", 1), nil, []string{"3-7", "5 layers"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := prepare(t, writeRecipe(t, c.body), c.sets...)
			if err == nil {
				r.Close()
				t.Fatal("accepted")
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

// A run trains, saves a PEFT adapter that reproduces its reported accuracy
// when loaded onto the base model, and the merged model predicts the same.
func TestApplySavesReproducibleAdapter(t *testing.T) {
	needFixtures(t)
	out := filepath.Join(t.TempDir(), "out")
	path := writeRecipe(t, smallRecipe("\n[output]\ndir = \""+out+"\"\nsave_merged = true\n"))
	r, err := prepare(t, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rep, err := r.Execute(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.After["accuracy"] <= 0 || rep.Steps == 0 {
		t.Fatalf("report %+v", rep)
	}
	for _, f := range []string{"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "merged/model.safetensors", "merged/config.json", "report.json", "metrics.csv"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("output lacks %s", f)
		}
	}
	if _, err := os.Stat(out + ".checkpoint"); !os.IsNotExist(err) {
		t.Errorf("checkpoint left behind after a complete run")
	}
	// Load the saved adapter onto a fresh base model.
	fresh, err := prepare(t, path, "train.mode=head", "targets=[]", "train.modules_to_save=[\"score\"]")
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, err := attach.AttachFolder(context.Background(), fresh.Model, attach.InProcess(sdktest.Connect(t, lora.Adapters()...)), filepath.Join(out, "adapter")); err != nil {
		t.Fatal(err)
	}
	got, err := fresh.Evaluate(rep.EvalSplit)
	if err != nil {
		t.Fatal(err)
	}
	if got["accuracy"] != rep.After["accuracy"] {
		t.Fatalf("saved adapter gives accuracy %v, the run reported %v", got["accuracy"], rep.After["accuracy"])
	}
	// The merged model predicts the same.
	merged, err := prepare(t, strings.Replace(path, "", "", 1), "model.path="+filepath.Join(out, "merged"), "train.mode=head", "targets=[]", "train.modules_to_save=[\"score\"]")
	if err != nil {
		t.Fatal(err)
	}
	defer merged.Close()
	m2, err := merged.Evaluate(rep.EvalSplit)
	if err != nil {
		t.Fatal(err)
	}
	if m2["accuracy"] != rep.After["accuracy"] {
		t.Fatalf("merged model accuracy %v, adapter %v", m2["accuracy"], rep.After["accuracy"])
	}
}

// Every recipe in recipes/ plans and runs a few steps (the full runs are
// `make demo`).
func TestRecipes(t *testing.T) {
	needFixtures(t)
	paths, _ := filepath.Glob("../../recipes/*.toml")
	if len(paths) < 4 {
		t.Fatalf("found %d recipes", len(paths))
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			rec, err := recipe.Load(p, []string{"train.max_steps=2", "data.max_examples=300", "eval.max_examples=40",
				"output.dir=" + out, "train.steps_per_epoch=0"})
			if err != nil {
				t.Fatal(err)
			}
			r, err := Prepare(context.Background(), rec, Options{
				Planner: attach.InProcess(sdktest.Connect(t, lora.Adapters()...)),
				Hub:     hub.Options{Mirror: filepath.Join(fixtures, "hf-mirror"), Cache: t.TempDir()},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.Plan.Trainable == 0 {
				t.Fatal("nothing trainable")
			}
			rep, err := r.Execute(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Steps != 2 || len(rep.After) == 0 {
				t.Fatalf("steps %d, metrics %v", rep.Steps, rep.After)
			}
		})
	}
}
