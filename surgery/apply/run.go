package apply

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/data"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/train"
	"github.com/surgeon-ml/surgeon/formats/native"
	"github.com/surgeon-ml/surgeon/internal/atomicfs"
	"github.com/surgeon-ml/surgeon/internal/runlock"
	"github.com/surgeon-ml/surgeon/surgery/attach"
	"github.com/surgeon-ml/surgeon/surgery/recipe"
)

// Report is report.json.
type Report struct {
	Recipe     string `json:"recipe"`
	RecipeHash string `json:"recipe_hash"`
	Model      string `json:"model"`
	Task       string `json:"task"`
	Plan       *Plan  `json:"plan"`
	// SpecialTokens are the special tokens put around each text and what
	// decided them.
	SpecialTokens checkpoint.Specials `json:"special_tokens"`
	Trainable     int64               `json:"trainable_params"`
	Total         int64               `json:"total_params"`
	TrainablePct  float64             `json:"trainable_percent"`
	EvalSplit     string              `json:"eval_split"`
	Before        map[string]float64  `json:"metrics_before"`
	After         map[string]float64  `json:"metrics_after"`
	Epochs        []train.EpochResult `json:"epochs"`
	BestEpoch     int                 `json:"best_epoch"`
	Steps         int                 `json:"steps"`
	TrainTokens   int64               `json:"train_tokens"`
	TrainSeconds  float64             `json:"train_seconds"`
	TokensPerSec  float64             `json:"tokens_per_second"`
	WallSeconds   float64             `json:"wall_seconds"`
	PeakRSSBytes  int64               `json:"peak_rss_bytes"`
	Resumed       bool                `json:"resumed"`
	Files         []string            `json:"files"`
	Extra         map[string]any      `json:"extra,omitempty"`
}

// batches returns the training batches of an epoch (deterministic).
func (r *Run) trainBatches() (func(epoch int) []data.Batch, int) {
	rec := r.Recipe
	if r.Classifier() {
		b := data.NewBatcher(r.Train, rec.Train.BatchSize, true, rec.Train.Seed, r.Pad).SortByLength(8)
		return b.Epoch, b.Len()
	}
	seqs := make([]data.Sequence, len(r.TrainChunks))
	for i, c := range r.TrainChunks {
		seqs[i] = data.Sequence{IDs: c, Label: -1}
	}
	b := data.NewBatcher(seqs, rec.Train.BatchSize, true, rec.Train.Seed, r.Pad)
	n := b.Len()
	if rec.Train.StepsPerEpoch > 0 {
		// An epoch is StepsPerEpoch batches of windows drawn from a
		// reshuffled pass (repeated if needed).
		n = rec.Train.StepsPerEpoch * max(1, rec.Train.GradAccum)
		return func(epoch int) []data.Batch {
			var out []data.Batch
			for k := 0; len(out) < n; k++ {
				out = append(out, b.Epoch(epoch*1000+k)...)
			}
			return out[:n]
		}, n
	}
	return b.Epoch, n
}

// lmBatch splits windows into inputs and next-token targets.
func lmBatch(b data.Batch) (model.Batch, []int) {
	var ids [][]int
	var targets []int
	for _, w := range b.IDs {
		if len(w) < 2 {
			continue
		}
		ids = append(ids, w[:len(w)-1])
	}
	T := 0
	for _, s := range ids {
		T = max(T, len(s))
	}
	mb := model.Batch{IDs: make([][]int, len(ids)), Mask: make([][]bool, len(ids))}
	for i, w := range b.IDs {
		if len(w) < 2 {
			continue
		}
		row := make([]int, T)
		mask := make([]bool, T)
		n := b.Lengths[i] - 1
		for t := 0; t < T; t++ {
			if t < len(w)-1 {
				row[t] = w[t]
			}
			mask[t] = t < n
			if t < n {
				targets = append(targets, w[t+1])
			} else {
				targets = append(targets, -1)
			}
		}
		mb.IDs[i], mb.Mask[i] = row, mask
	}
	return mb, targets
}

func (r *Run) setTraining(on bool, seed uint64) {
	for _, a := range r.Adapters {
		a.SetTraining(on, seed)
	}
}

// step runs forward and backward on one batch.
func (r *Run) step(b data.Batch, scale float64, seed uint64) (float64, int, error) {
	r.setTraining(true, seed)
	defer r.setTraining(false, 0)
	tokens := 0
	for _, n := range b.Lengths {
		tokens += n
	}
	var loss = ops.CrossEntropy
	if r.Classifier() {
		logits, err := r.Model.Logits(b.Batch)
		if err != nil {
			return 0, 0, err
		}
		l := loss(logits, b.Labels)
		v := float64(ops.Data(l)[0])
		return v, tokens, ops.Backward(ops.Scale(l, float32(scale)))
	}
	mb, targets := lmBatch(b)
	logits, err := r.Model.Logits(mb)
	if err != nil {
		return 0, 0, err
	}
	l := loss(logits, targets)
	v := float64(ops.Data(l)[0])
	return v, tokens, ops.Backward(ops.Scale(l, float32(scale)))
}

// Evaluate computes the task metrics on a split ("train", "validation" or
// "test") with the current weights.
func (r *Run) Evaluate(split string) (map[string]float64, error) {
	var m map[string]float64
	err := ops.WithoutGrad(func() error {
		var err error
		m, err = r.evaluate(split)
		return err
	})
	return m, err
}

func (r *Run) evaluate(split string) (map[string]float64, error) {
	rec := r.Recipe
	bs := rec.Eval.BatchSize
	if r.Classifier() {
		seqs := map[string][]data.Sequence{"train": r.Train, "validation": r.Val, "test": r.Test}[split]
		if rec.Eval.MaxExamples > 0 && len(seqs) > rec.Eval.MaxExamples {
			seqs = seqs[:rec.Eval.MaxExamples]
		}
		if len(seqs) == 0 {
			return nil, fmt.Errorf("the %s split is empty", split)
		}
		acc := train.NewClassification(len(rec.Model.Labels))
		for _, b := range data.NewBatcher(seqs, bs, false, 0, r.Pad).Epoch(0) {
			logits, err := r.Model.Logits(b.Batch)
			if err != nil {
				return nil, err
			}
			d := ops.Data(logits)
			c := ops.Cols(logits)
			for i, gold := range b.Labels {
				row := d[i*c : (i+1)*c]
				best := 0
				for j, v := range row {
					if v > row[best] {
						best = j
					}
				}
				acc.Add(gold, best)
			}
		}
		return acc.Metrics(), nil
	}
	chunks := map[string][][]int{"train": r.TrainChunks, "validation": r.ValChunks, "test": r.TestChunks}[split]
	if rec.Eval.MaxExamples > 0 && len(chunks) > rec.Eval.MaxExamples {
		chunks = chunks[:rec.Eval.MaxExamples]
	}
	if len(chunks) == 0 {
		return nil, fmt.Errorf("the %s split is empty", split)
	}
	seqs := make([]data.Sequence, len(chunks))
	for i, c := range chunks {
		seqs[i] = data.Sequence{IDs: c, Label: -1}
	}
	var pp train.Perplexity
	for _, b := range data.NewBatcher(seqs, bs, false, 0, r.Pad).Epoch(0) {
		mb, targets := lmBatch(b)
		logits, err := r.Model.Logits(mb)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, t := range targets {
			if t >= 0 {
				n++
			}
		}
		pp.Add(float64(ops.Data(ops.CrossEntropy(logits, targets))[0]), n)
	}
	return pp.Metrics(), nil
}

// EvalSplit is the split evaluated before and after training.
func (r *Run) EvalSplit() string {
	s := r.Recipe.Eval.Split
	has := func(s string) bool {
		if r.Classifier() {
			return len(map[string][]data.Sequence{"train": r.Train, "validation": r.Val, "test": r.Test}[s]) > 0
		}
		return len(map[string][][]int{"train": r.TrainChunks, "validation": r.ValChunks, "test": r.TestChunks}[s]) > 0
	}
	if s != "" && has(s) {
		return s
	}
	for _, s := range []string{"test", "validation", "train"} {
		if has(s) {
			return s
		}
	}
	return "train"
}

// OutputDir is the run's output folder.
func (r *Run) OutputDir() string { return outputDir(r.Recipe) }

// outputDir is rec's output folder: output.dir, else runs/<recipe name>,
// relative to the recipe.
func outputDir(rec *recipe.Recipe) string {
	d := rec.Output.Dir
	if d == "" {
		stem := strings.TrimSuffix(filepath.Base(rec.Path), filepath.Ext(rec.Path))
		d = filepath.Join("runs", stem)
	}
	return rec.Resolve(d)
}

// checkpointDir holds the resumable state of an unfinished run.
func (r *Run) checkpointDir() string { return r.OutputDir() + ".checkpoint" }

// OutputLock is the exclusive lock on a run's output folder and its
// checkpoint, held by one process at a time (see LockOutput).
type OutputLock struct {
	dir  string
	key  string
	lock *runlock.Lock
	busy bool // an Execute of this process is using the folder
}

// outputLocks are the output locks this process holds, by lock file.
var outputLocks struct {
	sync.Mutex
	m map[string]*OutputLock
}

// LockOutput takes the exclusive lock on rec's output folder and its
// checkpoint (a lock file DIR.lock beside them, holding this process's
// PID), without waiting: while another process holds it, it fails with an
// error naming the folder and that process's PID. The lock goes with the
// process, however it ends, so a killed run never blocks the next one.
//
// Execute takes the lock itself for its duration. A caller that takes it
// first, before Prepare, makes a second run on a busy folder fail at once
// instead of after loading the model; Execute then uses the caller's lock,
// which the caller releases.
func LockOutput(rec *recipe.Recipe) (*OutputLock, error) {
	dir := outputDir(rec)
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: output folder %s: %w", rec.Path, dir, err)
	}
	key := runlock.PathFor(abs)
	outputLocks.Lock()
	defer outputLocks.Unlock()
	if o := outputLocks.m[key]; o != nil {
		return nil, fmt.Errorf("%s: output folder %s is in use by another run of this process (PID %d)", rec.Path, dir, os.Getpid())
	}
	l, err := runlock.Acquire(key)
	if err != nil {
		if errors.Is(err, runlock.ErrBusy) {
			return nil, fmt.Errorf("%s: output folder %s is in use by another run: %w", rec.Path, dir, err)
		}
		return nil, fmt.Errorf("%s: output folder %s: %w", rec.Path, dir, err)
	}
	o := &OutputLock{dir: dir, key: key, lock: l}
	if outputLocks.m == nil {
		outputLocks.m = map[string]*OutputLock{}
	}
	outputLocks.m[key] = o
	return o, nil
}

// Dir is the locked output folder.
func (o *OutputLock) Dir() string { return o.dir }

// Release gives the lock back and removes its lock file. It is safe to
// call more than once.
func (o *OutputLock) Release() error {
	if o == nil {
		return nil
	}
	outputLocks.Lock()
	defer outputLocks.Unlock()
	if outputLocks.m[o.key] == o {
		delete(outputLocks.m, o.key)
	}
	return o.lock.Release()
}

// useOutputLock makes r the one user of its output folder until done is
// called: through the caller's lock when this process holds it (see
// LockOutput), else through one of its own.
func (r *Run) useOutputLock() (done func() error, err error) {
	dir := r.OutputDir()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: output folder %s: %w", r.Recipe.Path, dir, err)
	}
	key := runlock.PathFor(abs)
	outputLocks.Lock()
	if o := outputLocks.m[key]; o != nil {
		defer outputLocks.Unlock()
		if o.busy {
			return nil, fmt.Errorf("%s: output folder %s is in use by another run of this process (PID %d)", r.Recipe.Path, dir, os.Getpid())
		}
		o.busy = true
		return func() error {
			outputLocks.Lock()
			o.busy = false
			outputLocks.Unlock()
			return nil
		}, nil
	}
	outputLocks.Unlock()
	o, err := LockOutput(r.Recipe)
	if err != nil {
		return nil, err
	}
	outputLocks.Lock()
	o.busy = true
	outputLocks.Unlock()
	return o.Release, nil
}

// Execute trains, evaluates and writes the output folder. It resumes an
// interrupted run of the same recipe from its checkpoint. It holds the
// output lock (see LockOutput) while it runs: a run on a folder in use
// fails before touching the folder or its checkpoint.
func (r *Run) Execute(ctx context.Context, progress func(train.Event)) (*Report, error) {
	if err := r.checkMemory(); err != nil {
		return nil, err
	}
	done, err := r.useOutputLock()
	if err != nil {
		return nil, err
	}
	rep, err := r.execute(ctx, progress)
	if uerr := done(); uerr != nil {
		err = errors.Join(err, uerr)
	}
	if err != nil {
		return nil, err
	}
	return rep, nil
}

func (r *Run) execute(ctx context.Context, progress func(train.Event)) (*Report, error) {
	start := time.Now()
	rec := r.Recipe
	out := r.OutputDir()
	if st, err := os.Stat(out); err == nil && st.IsDir() && !rec.Output.Overwrite {
		return nil, fmt.Errorf("%s: output folder %s exists (set output.overwrite = true or remove it)", rec.Path, out)
	}
	ckpt := r.checkpointDir()
	if err := os.MkdirAll(ckpt, atomicfs.DirPerm); err != nil {
		return nil, err
	}
	split := r.EvalSplit()
	rep := &Report{Recipe: rec.Path, RecipeHash: rec.Hash(), Model: rec.Model.Path, Task: rec.Model.Task, Plan: r.Plan, SpecialTokens: r.Specials,
		Trainable: r.Plan.Trainable, Total: r.Plan.Total, TrainablePct: r.Plan.Percent(), EvalSplit: split}
	// Metrics before training are computed once and kept with the checkpoint.
	beforePath := filepath.Join(ckpt, "before-"+rec.Hash()[:16]+".json")
	if raw, err := os.ReadFile(beforePath); err == nil && json.Unmarshal(raw, &rep.Before) == nil {
	} else {
		r.logf("evaluating the %s split before training", split)
		m, err := r.Evaluate(split)
		if err != nil {
			return nil, fmt.Errorf("evaluation before training: %w", err)
		}
		rep.Before = m
		raw, _ := json.Marshal(m)
		if err := writeFileAtomic(beforePath, raw); err != nil {
			return nil, err
		}
	}
	epochBatches, n := r.trainBatches()
	var cache []data.Batch
	cacheEpoch := -1
	selectBy, higher := "", true
	if len(r.Val) > 0 || len(r.ValChunks) > 0 {
		if r.Classifier() {
			selectBy = "accuracy"
		} else {
			selectBy, higher = "perplexity", false
		}
	}
	metricsPath := filepath.Join(ckpt, "metrics.csv")
	if err := trimMetrics(metricsPath, ckpt, rec.Hash()); err != nil {
		return nil, err
	}
	mf, err := os.OpenFile(metricsPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, atomicfs.FilePerm)
	if err != nil {
		return nil, err
	}
	defer mf.Close()
	mw := csv.NewWriter(mf)
	if st, _ := mf.Stat(); st != nil && st.Size() == 0 {
		mw.Write([]string{"step", "epoch", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "elapsed_s"})
	}
	cfg := train.Config{Epochs: rec.Train.Epochs, MaxSteps: rec.Train.MaxSteps, Batches: n, GradAccum: rec.Train.GradAccum,
		LR: rec.Train.LR, Kind: rec.Train.Schedule, Warmup: rec.Train.Warmup, WarmupSteps: rec.Train.WarmupSteps,
		MaxGradNorm: rec.Train.MaxGradNorm, Beta1: rec.Train.Beta1, Beta2: rec.Train.Beta2, Eps: rec.Train.Eps,
		WeightDecay: rec.Train.WeightDecay, CheckpointDir: ckpt, CheckpointEvery: rec.Train.CheckpointEvery,
		Fingerprint: rec.Hash(), SelectBy: selectBy, HigherIsBetter: higher}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = max(1, cfg.StepsPerEpoch()/4)
	}
	seed := uint64(rec.Train.Seed)
	// The buffers of a step's activations are reused by the next step
	// instead of being left to the collector (see ops.SetPoolLimit), up to
	// the plan's estimate of them, which the step holds at its peak anyway
	// (twice that took the quickstart's RSS from 613 to 857 MiB).
	defer ops.SetPoolLimit(ops.SetPoolLimit(r.Plan.Memory.Activations))
	defer ops.FreeBuffers()
	res, err := train.Run(ctx, r.Trainable, cfg, train.Hooks{
		Forward: func(epoch, i int, scale float64) (float64, int, error) {
			if epoch != cacheEpoch {
				cache, cacheEpoch = epochBatches(epoch), epoch
			}
			was := ops.SetCheckpointing(rec.Train.GradientCheckpointing)
			defer ops.SetCheckpointing(was)
			defer ops.SetCheckpointBlocks(ops.SetCheckpointBlocks(rec.Train.CheckpointBlocks))
			return r.step(cache[i], scale, seed^uint64(epoch)<<32^uint64(i))
		},
		// Each epoch is evaluated: on the validation split, which also picks
		// the best epoch, or else on the evaluation split (reported only).
		Eval: func(epoch int) (map[string]float64, error) {
			if selectBy != "" {
				return r.Evaluate("validation")
			}
			return r.Evaluate(split)
		},
		Progress: func(e train.Event) {
			mw.Write([]string{strconv.Itoa(e.Step), strconv.Itoa(e.Epoch), fmtF(e.Loss), fmtF(e.LR), fmtF(e.GradNorm),
				strconv.Itoa(e.Tokens), fmtF(e.TokensPerSec), fmtF(e.Elapsed.Seconds())})
			mw.Flush()
			if progress != nil {
				progress(e)
			}
		},
	})
	if err != nil {
		mw.Flush()
		return nil, err
	}
	mw.Flush()
	if err := mw.Error(); err != nil {
		return nil, fmt.Errorf("%s: %w", metricsPath, err)
	}
	rep.Epochs, rep.BestEpoch, rep.Steps, rep.TrainTokens, rep.Resumed = res.History, res.Best+1, res.Steps, res.Tokens, res.Resumed
	rep.TrainSeconds = res.Elapsed.Seconds()
	if rep.TrainSeconds > 0 {
		rep.TokensPerSec = float64(res.Tokens) / rep.TrainSeconds
	}
	r.logf("evaluating the %s split after training", split)
	if rep.After, err = r.Evaluate(split); err != nil {
		return nil, fmt.Errorf("evaluation after training: %w", err)
	}
	if err := r.writeOutput(context.WithoutCancel(ctx), out, ckpt, rep, start); err != nil {
		return nil, err
	}
	return rep, nil
}

// trimMetrics drops the metrics rows of steps after the checkpoint a run
// resumes from (they will be replayed), or all rows when there is no
// usable checkpoint.
func trimMetrics(path, ckpt, fingerprint string) error {
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	keep := -1
	if st, err := train.LoadState(ckpt); err == nil && st != nil && st.Fingerprint == fingerprint {
		keep = st.Step
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	var out []string
	for i, l := range lines {
		if i == 0 {
			out = append(out, l)
			continue
		}
		f := strings.SplitN(l, ",", 2)
		if n, err := strconv.Atoi(f[0]); err == nil && n <= keep {
			out = append(out, l)
		}
	}
	if keep < 0 {
		out = out[:0]
	}
	data := ""
	if len(out) > 0 {
		data = strings.Join(out, "\n") + "\n"
	}
	return writeFileAtomic(path, []byte(data))
}

func fmtF(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// peakRSS returns the process's peak resident set size (VmHWM), or the Go
// runtime's view when /proc is unavailable.
func peakRSS() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				f := strings.Fields(line)
				if len(f) >= 2 {
					kb, _ := strconv.ParseInt(f[1], 10, 64)
					return kb * 1024
				}
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.Sys)
}

func writeFileAtomic(path string, data []byte) error {
	return atomicfs.WriteFile(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeOutput assembles the output folder under a temporary name and
// renames it into place, so an interrupted run never leaves a folder that
// looks complete; the checkpoint is removed last.
func (r *Run) writeOutput(ctx context.Context, out, ckpt string, rep *Report, start time.Time) (err error) {
	rec := r.Recipe
	tmp, err := atomicfs.TempDir(out)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	var files []string
	if rec.Train.Mode == recipe.ModeFull {
		extra, err := checkpoint.TokenizerFiles(r.Loaded)
		if err != nil {
			return err
		}
		if err := checkpoint.SaveHF(filepath.Join(tmp, "model"), r.Model, checkpoint.SaveOptions{Extra: extra}); err != nil {
			return err
		}
		files = append(files, "model/")
	} else {
		a, err := r.PEFTAdapter(ctx)
		if err != nil {
			return err
		}
		if err := writePEFT(filepath.Join(tmp, "adapter"), a); err != nil {
			return err
		}
		files = append(files, "adapter/")
	}
	if raw, err := os.ReadFile(filepath.Join(ckpt, "metrics.csv")); err == nil {
		if err := os.WriteFile(filepath.Join(tmp, "metrics.csv"), raw, atomicfs.FilePerm); err != nil {
			return err
		}
		files = append(files, "metrics.csv")
	}
	if rec.Output.SaveMerged || rec.Output.SaveNative {
		if err := attach.Merge(r.Model); err != nil {
			return err
		}
		if rec.Output.SaveMerged && rec.Train.Mode != recipe.ModeFull {
			extra, err := checkpoint.TokenizerFiles(r.Loaded)
			if err != nil {
				return err
			}
			if err := checkpoint.SaveHF(filepath.Join(tmp, "merged"), r.Model, checkpoint.SaveOptions{Extra: extra}); err != nil {
				return err
			}
			files = append(files, "merged/")
		}
		if rec.Output.SaveNative {
			// A native folder with config and tokenizer, so that it runs
			// like the checkpoint it came from.
			tok, err := checkpoint.TokenizerFiles(r.Loaded)
			if err != nil {
				return err
			}
			if err := native.Save(filepath.Join(tmp, "model"+native.Ext), r.Model, tok); err != nil {
				return err
			}
			files = append(files, "model"+native.Ext)
		}
	}
	rep.Files = append(files, "report.json")
	rep.WallSeconds = time.Since(start).Seconds()
	rep.PeakRSSBytes = peakRSS()
	for k, v := range rep.After {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(rep.After, k)
		}
	}
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "report.json"), append(raw, '\n'), atomicfs.FilePerm); err != nil {
		return err
	}
	if err := atomicfs.ReplaceDir(tmp, out); err != nil {
		return err
	}
	return os.RemoveAll(ckpt)
}
