// Package apply runs a recipe: it loads the model, selects target layers,
// attaches adapters through the plugins, loads and batches the data,
// trains, evaluates and writes the output folder. Everything that can be
// checked is checked in Prepare, before any training starts.
package apply

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/data"
	"github.com/surgeon-ml/surgeon/core/hub"
	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/plugins/program"
	"github.com/surgeon-ml/surgeon/surgery/adapter"
	"github.com/surgeon-ml/surgeon/surgery/attach"
	"github.com/surgeon-ml/surgeon/surgery/recipe"
	"github.com/surgeon-ml/surgeon/surgery/target"
)

// Options configure a run.
type Options struct {
	// Planner provides adapter plans (the plugin host).
	Planner attach.Store
	// Hub configures hf:// model sources.
	Hub hub.Options
	// Log receives status lines (nil: discarded).
	Log func(format string, args ...any)
}

// Row is one line of a plan.
type Row struct {
	Module    string         `json:"module"`
	Shape     [2]int         `json:"shape"`
	Adapter   string         `json:"adapter"`
	Group     string         `json:"group,omitempty"`
	Rank      int            `json:"rank,omitempty"`
	Scale     float64        `json:"scale,omitempty"`
	Alpha     float64        `json:"alpha,omitempty"`
	Config    map[string]any `json:"config,omitempty"`
	Trainable int64          `json:"trainable"`
}

// Plan is what a recipe will do, printable before training.
type Plan struct {
	Recipe    string `json:"recipe"`
	Model     string `json:"model"`
	Task      string `json:"task"`
	Mode      string `json:"mode"`
	Rows      []Row  `json:"rows"`
	Trainable int64  `json:"trainable"`
	Total     int64  `json:"total"`
	// Memory estimates what training needs (see Run.estimateMemory).
	Memory Memory `json:"memory"`
}

// Percent is the trainable share of all parameters.
func (p *Plan) Percent() float64 {
	if p.Total == 0 {
		return 0
	}
	return 100 * float64(p.Trainable) / float64(p.Total)
}

// Run is a prepared recipe.
type Run struct {
	Recipe    *recipe.Recipe
	Opts      Options
	Model     model.Model
	Loaded    *checkpoint.Loaded
	ModelPath string
	Tokenizer data.Tokenizer
	BOS, EOS  int
	// Specials are the special tokens put around each text: the
	// tokenizer's own settings, or the recipe's data.add_bos/add_eos.
	Specials checkpoint.Specials
	Pad      int
	Plan     *Plan
	Adapters map[string]*adapter.Adapted
	// Trainable are the parameters the optimizer updates, in a fixed order.
	Trainable []*nn.Param
	// Saved are the fully trained modules (modules_to_save), by path.
	Saved []string
	// Data splits.
	Train, Val, Test []data.Sequence
	// TrainChunks and friends are the causal-LM windows.
	TrainChunks, ValChunks, TestChunks [][]int
}

func (r *Run) logf(format string, args ...any) {
	if r.Opts.Log != nil {
		r.Opts.Log(format, args...)
	}
}

// Classifier reports whether the task is sequence classification.
func (r *Run) Classifier() bool { return r.Recipe.Model.Task == recipe.TaskSequenceClassification }

// Prepare loads everything a recipe needs and checks it: model, tokenizer,
// target selection, adapter plans, data files and fields. Nothing is trained.
func Prepare(ctx context.Context, rec *recipe.Recipe, opts Options) (*Run, error) {
	r := &Run{Recipe: rec, Opts: opts}
	p, err := hub.Local(ctx, rec.Resolve(rec.Model.Path), opts.Hub)
	if err != nil {
		return nil, fmt.Errorf("%s: model.path: %w", rec.Path, err)
	}
	r.ModelPath = p
	load := checkpoint.Load
	if rec.Model.Weights == recipe.WeightsStored {
		load = checkpoint.LoadStored
	}
	l, err := load(r.ModelPath)
	if err != nil {
		return nil, fmt.Errorf("%s: model.path: %w", rec.Path, err)
	}
	r.Loaded = l
	if err := r.setupModel(); err != nil {
		return nil, err
	}
	if err := r.setupTokenizer(); err != nil {
		return nil, err
	}
	if err := r.setupTargets(ctx); err != nil {
		return nil, err
	}
	if err := r.setupData(); err != nil {
		return nil, err
	}
	r.Plan.Memory = r.estimateMemory()
	return r, nil
}

// Close releases the model files.
func (r *Run) Close() error {
	if r.Loaded != nil {
		return r.Loaded.Close()
	}
	return nil
}

func (r *Run) setupModel() error {
	rec := r.Recipe
	m := r.Loaded.Model
	switch rec.Model.Task {
	case recipe.TaskCausalLM:
		if m.Task() != model.CausalLM {
			return fmt.Errorf("%s: model.task is causal-lm but %s is a %s model", rec.Path, r.ModelPath, m.Task())
		}
	case recipe.TaskSequenceClassification:
		c, ok := m.(model.Classifier)
		if !ok {
			return fmt.Errorf("%s: %s (%s) has no sequence-classification head", rec.Path, r.ModelPath, modelType(m))
		}
		cm, err := c.ClassifierFor(rec.Model.Labels, uint64(rec.Train.Seed))
		if err != nil {
			return fmt.Errorf("%s: model.labels has %d classes: %s: %w", rec.Path, len(rec.Model.Labels), r.ModelPath, err)
		}
		m = cm
	}
	layer.Freeze(m, true)
	r.Model = m
	return nil
}

func (r *Run) setupTokenizer() error {
	tok, err := checkpoint.LoadTokenizer(r.ModelPath, r.Loaded)
	if err != nil {
		return fmt.Errorf("%s: tokenizer: %w", r.Recipe.Path, err)
	}
	r.Tokenizer = tok
	r.BOS, r.EOS = tok.BOS(), tok.EOS()
	r.Specials = checkpoint.SpecialTokens(r.ModelPath, r.Loaded, tok)
	d := r.Recipe.Data
	if d.AddBOS != nil || d.AddEOS != nil {
		if d.AddBOS != nil {
			r.Specials.BOS = *d.AddBOS
		}
		if d.AddEOS != nil {
			r.Specials.EOS = *d.AddEOS
		}
		r.Specials.From = "recipe (data.add_bos / data.add_eos)"
	}
	if r.Specials.EOS && r.EOS < 0 {
		return fmt.Errorf("%s: data.add_eos: the tokenizer has no EOS token", r.Recipe.Path)
	}
	r.Pad = max(0, tok.EOS())
	if p, ok := tok.(interface{ Pad() int }); ok && p.Pad() >= 0 {
		r.Pad = p.Pad()
	}
	// A classifier with a pad_token_id pools its rightmost token that is
	// not that id, as transformers does: pad its batches with that very
	// id, or it would read padding.
	if id, ok := configPad(r.Model); ok && r.Classifier() {
		r.Pad = id
	}
	return nil
}

// configPad returns m's config.json pad_token_id when it is a token id.
func configPad(m model.Model) (int, bool) {
	var id int
	switch v := m.HFConfig()["pad_token_id"].(type) {
	case float64:
		if v != float64(int(v)) {
			return 0, false
		}
		id = int(v)
	case int:
		id = v
	default:
		return 0, false
	}
	return id, id >= 0 && id < m.VocabSize()
}

// headPatterns returns the modules trained fully: the recipe's
// modules_to_save, or the classification head by default.
func (r *Run) headPatterns() []string {
	if len(r.Recipe.Train.ModulesToSave) > 0 {
		return r.Recipe.Train.ModulesToSave
	}
	if !r.Classifier() {
		return nil
	}
	if c, ok := r.Model.(model.Classifier); ok {
		return c.HeadModules()
	}
	return nil
}

func (r *Run) setupTargets(ctx context.Context) error {
	rec := r.Recipe
	// mods are the modules adapters can target; modules_to_save may also
	// name a container (RoBERTa's classifier head holds dense and out_proj).
	var mods, all []target.Module
	for _, m := range layer.Modules(r.Model) {
		tm := target.Module{Path: m.Path, Kind: m.Kind()}
		if s, ok := m.Model.(*layer.Slot); ok {
			if b := s.Base(); b != nil {
				tm.In, tm.Out = b.In(), b.Out()
			}
		}
		if m.Path != "" {
			all = append(all, tm)
		}
		if tm.Kind == "" {
			continue
		}
		mods = append(mods, tm)
	}
	plan := &Plan{Recipe: rec.Path, Model: rec.Model.Path, Task: rec.Model.Task, Mode: rec.Train.Mode}
	params := map[string]layer.Param{}
	for _, p := range layer.Params(r.Model) {
		params[p.Path] = p
	}
	switch rec.Train.Mode {
	case recipe.ModeFull:
		layer.Freeze(r.Model, false)
	default:
		if rec.Train.Mode == recipe.ModeAdapter {
			sels, err := target.Select(mods, rec.Targets)
			if err != nil {
				return fmt.Errorf("%s: %w", rec.Path, err)
			}
			var ts []attach.Target
			for _, s := range sels {
				ts = append(ts, attach.Target{Path: s.Path, Adapter: s.Adapter, Config: s.Config})
			}
			if _, err := attach.Attach(ctx, r.Model, r.Opts.Planner, ts, uint64(rec.Train.Seed)); err != nil {
				return fmt.Errorf("%s: %w", rec.Path, err)
			}
			r.Adapters = attach.Adapted(r.Model)
			for _, s := range sels {
				a := r.Adapters[s.Path]
				if rec.Train.GradientCheckpointing && dropsOut(a) {
					return fmt.Errorf("%s: train.gradient_checkpointing: module %s has adapter dropout, and a block run again in backward would draw other masks: set its dropout to 0 or turn checkpointing off", rec.Path, s.Path)
				}
				row := Row{Module: s.Path, Shape: [2]int{a.Base.Out(), a.Base.In()}, Adapter: s.Adapter, Group: s.Group, Config: s.Config,
					Rank: a.Summary.Rank, Scale: a.Summary.Scale, Alpha: a.Summary.Alpha}
				for i, p := range a.Values {
					if a.Train[i] {
						row.Trainable += int64(p.Size())
					}
				}
				plan.Rows = append(plan.Rows, row)
			}
		}
		heads := r.headPatterns()
		if rec.Train.Mode == recipe.ModeHead && len(heads) == 0 {
			return fmt.Errorf("%s: train.mode = \"head\" needs train.modules_to_save (no default head for a causal LM)", rec.Path)
		}
		if len(heads) > 0 {
			saved, err := target.FullyTrained(all, heads)
			if err != nil {
				return fmt.Errorf("%s: train.modules_to_save: %w", rec.Path, err)
			}
			r.Saved = saved
			// A fully trained module's weights train in memory: a stored
			// weight (model.weights = "stored") is read in first, else its
			// forward would read the file and its gradient go nowhere.
			for path, l := range layer.Storables(r.Model) {
				for _, s := range saved {
					if path == s || strings.HasPrefix(path, s+".") {
						if err := l.Materialize(); err != nil {
							return fmt.Errorf("%s: train.modules_to_save: %s: %w", rec.Path, path, err)
						}
					}
				}
			}
			for _, s := range saved {
				var n int64
				for _, p := range layer.Params(r.Model) {
					if p.Path == s || strings.HasPrefix(p.Path, s+".") {
						p.Param.SetRequiresGrad(true)
						n += int64(p.Param.Size())
					}
				}
				plan.Rows = append(plan.Rows, Row{Module: s, Adapter: "full (modules_to_save)", Trainable: n})
			}
		}
	}
	seen := map[*nn.Param]bool{}
	for _, p := range layer.Params(r.Model) {
		plan.Total += int64(p.Param.Size())
		if p.Param.RequiresGrad() && !seen[p.Param] {
			seen[p.Param] = true
			r.Trainable = append(r.Trainable, p.Param)
			plan.Trainable += int64(p.Param.Size())
		}
	}
	if rec.Train.Mode == recipe.ModeFull {
		plan.Rows = append(plan.Rows, Row{Module: "(all)", Adapter: "full", Trainable: plan.Trainable})
	}
	// Adapter parameters are counted in Total as PEFT does (base + adapter).
	if len(r.Trainable) == 0 {
		return fmt.Errorf("%s: nothing to train", rec.Path)
	}
	r.Plan = plan
	return nil
}

func toInt(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case int64:
		return int(x)
	case float64:
		return int(math.Round(x))
	}
	return 0
}

func (r *Run) setupData() error {
	rec := r.Recipe
	d := rec.Data
	o := data.Options{Format: d.Format, TextField: d.TextField, LabelField: d.LabelField, Header: d.Header == nil || *d.Header,
		Separator: d.Separator, MaxExamples: d.MaxExamples}
	if r.Classifier() {
		o.Labels = rec.Model.Labels
	} else {
		o.LabelField = ""
	}
	load := func(key, p string) ([]data.Example, error) {
		if p == "" {
			return nil, nil
		}
		path := rec.Resolve(p)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%s: data.%s: %w", rec.Path, key, err)
		}
		ex, err := data.Load(path, o)
		if err != nil {
			return nil, fmt.Errorf("%s: data.%s: %w", rec.Path, key, err)
		}
		if len(ex) == 0 {
			return nil, fmt.Errorf("%s: data.%s: %s holds no examples", rec.Path, key, path)
		}
		return ex, nil
	}
	train, err := load("train", d.Train)
	if err != nil {
		return err
	}
	val, err := load("validation", d.Validation)
	if err != nil {
		return err
	}
	test, err := load("test", d.Test)
	if err != nil {
		return err
	}
	vf, tf := d.ValidationFraction, d.TestFraction
	if val != nil {
		vf = 0
	}
	if test != nil {
		tf = 0
	}
	// Text for a causal LM is split in order (the held-out part is the end
	// of the text, after its windows are cut); examples are split at random.
	lmSplit := !r.Classifier() && (vf > 0 || tf > 0)
	if (vf > 0 || tf > 0) && !lmSplit {
		var v2, t2 []data.Example
		train, v2, t2 = data.Split(train, vf, tf, d.Seed)
		if val == nil {
			val = v2
		}
		if test == nil {
			test = t2
		}
	}
	maxLen := rec.Model.MaxLength
	if r.Classifier() {
		// Special tokens as the tokenizer's settings (or the recipe) say;
		// a decoder classifier pools the last token that is not its
		// pad_token_id (or the last real one when it has none).
		eos := -1
		if r.Specials.EOS {
			eos = r.EOS
		}
		var tok data.Tokenizer = r.Tokenizer
		// Tokenizers that end a text with a special token of their own
		// (RoBERTa's </s> from tokenizer.json, BERT's [SEP]) encode without
		// it, and data.Encode appends it after truncation, as Hugging
		// Face's truncation keeps it; EOS is then not appended a second
		// time. The recipe's data.add_eos, when set, decides instead.
		if end, ok := trailingSpecial(r.Tokenizer); ok && r.Specials.BOS {
			tok = dropSuffix{r.Tokenizer}
			if rec.Data.AddEOS == nil {
				eos = end
			}
		}
		r.Train = data.Encode(tok, train, maxLen, r.Specials.BOS, eos)
		r.Val = data.Encode(tok, val, maxLen, r.Specials.BOS, eos)
		r.Test = data.Encode(tok, test, maxLen, r.Specials.BOS, eos)
		if len(r.Train) == 0 {
			return fmt.Errorf("%s: no training examples", rec.Path)
		}
		r.logf("data: %d train, %d validation, %d test examples", len(r.Train), len(r.Val), len(r.Test))
		return nil
	}
	seqLen := rec.Train.SeqLen
	if seqLen <= 0 {
		seqLen = maxLen
	}
	bos := -1
	if r.Specials.BOS {
		bos = r.BOS
	}
	r.TrainChunks = data.Chunks(r.Tokenizer, train, seqLen, bos)
	r.ValChunks = data.Chunks(r.Tokenizer, val, seqLen, bos)
	r.TestChunks = data.Chunks(r.Tokenizer, test, seqLen, bos)
	if lmSplit {
		n := len(r.TrainChunks)
		nt := int(math.Round(tf * float64(n)))
		nv := int(math.Round(vf * float64(n)))
		if nt > 0 {
			r.TestChunks = r.TrainChunks[n-nt:]
		}
		if nv > 0 {
			r.ValChunks = r.TrainChunks[n-nt-nv : n-nt]
		}
		r.TrainChunks = r.TrainChunks[:n-nt-nv]
	}
	if len(r.TrainChunks) == 0 {
		return fmt.Errorf("%s: data.train is shorter than one window of %d tokens", rec.Path, seqLen+1)
	}
	r.logf("data: %d train, %d validation, %d test windows of %d tokens", len(r.TrainChunks), len(r.ValChunks), len(r.TestChunks), seqLen)
	return nil
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// absDir returns an absolute path.
func absDir(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// modelType names a model's Hugging Face model_type for messages.
func modelType(m model.Model) string {
	if t, ok := m.HFConfig()["model_type"].(string); ok {
		return t
	}
	return fmt.Sprintf("%T", m)
}

// trailingSpecial returns the special token a tokenizer puts after the
// text when it encodes with special tokens, if it puts exactly one.
func trailingSpecial(tok data.Tokenizer) (int, bool) {
	if t, ok := tok.(interface{ Template() ([]int, []int) }); ok {
		if _, suffix := t.Template(); len(suffix) == 1 && suffix[0] >= 0 {
			return suffix[0], true
		}
	}
	return 0, false
}

// dropSuffix encodes with a tokenizer whose special tokens end with one
// token after the text, leaving that token out.
type dropSuffix struct{ data.Tokenizer }

// Encode returns the ids without the trailing special token.
func (d dropSuffix) Encode(text string, special bool) []int {
	ids := d.Tokenizer.Encode(text, special)
	if special && len(ids) > 0 {
		ids = ids[:len(ids)-1]
	}
	return ids
}

// dropsOut reports whether an adapter's forward program applies dropout.
func dropsOut(a *adapter.Adapted) bool {
	for _, n := range a.Fwd.Nodes {
		if (n.Op == program.OpLowRank && n.Value2 > 0) || (n.Op == program.OpDropout && n.Value > 0) {
			return true
		}
	}
	return false
}
