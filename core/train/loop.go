package train

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/internal/atomicfs"
)

// Config describes a training run.
type Config struct {
	Epochs int
	// MaxSteps stops after this many optimizer steps (0: no limit).
	MaxSteps int
	// Batches is the number of batches per epoch.
	Batches   int
	GradAccum int
	// LR, Kind, Warmup (fraction) or WarmupSteps define the schedule.
	LR          float64
	Kind        string
	Warmup      float64
	WarmupSteps int
	MaxGradNorm float64
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64
	// CheckpointDir receives state.gob; empty disables checkpoints.
	CheckpointDir string
	// CheckpointEvery saves every N optimizer steps (0: at each epoch end).
	CheckpointEvery int
	// Fingerprint identifies the run; a checkpoint with another one is not resumed.
	Fingerprint string
	// SelectBy names the evaluation metric that picks the best epoch
	// ("" keeps the last epoch); HigherIsBetter says which way.
	SelectBy       string
	HigherIsBetter bool
}

// StepsPerEpoch returns the number of optimizer steps in an epoch.
func (c Config) StepsPerEpoch() int { return (c.Batches + c.GradAccum - 1) / c.GradAccum }

// TotalSteps returns the number of optimizer steps of the run.
func (c Config) TotalSteps() int {
	t := c.Epochs * c.StepsPerEpoch()
	if c.MaxSteps > 0 && c.MaxSteps < t {
		t = c.MaxSteps
	}
	return t
}

// Event reports progress after each optimizer step.
type Event struct {
	Step, TotalSteps int
	Epoch, Epochs    int
	Loss             float64 // mean over the step's batches
	LR               float64
	GradNorm         float64
	Tokens           int // tokens in this step
	TokensPerSec     float64
	Elapsed, ETA     time.Duration
}

// EpochResult is the evaluation after an epoch.
type EpochResult struct {
	Epoch   int                `json:"epoch"`
	Step    int                `json:"step"`
	Loss    float64            `json:"train_loss"`
	Metrics map[string]float64 `json:"metrics"`
}

// Hooks connect the loop to a model and data.
type Hooks struct {
	// Forward runs batch i of an epoch: forward and backward, accumulating
	// gradients of the trainable parameters scaled by `scale`; it returns
	// the unscaled mean loss and the number of tokens.
	Forward func(epoch, i int, scale float64) (loss float64, tokens int, err error)
	// Eval evaluates after an epoch (may be nil).
	Eval func(epoch int) (map[string]float64, error)
	// Progress is called after every optimizer step (may be nil).
	Progress func(Event)
}

// State is what a checkpoint holds.
type State struct {
	Fingerprint string
	Step        int
	Epoch       int // current epoch
	Batch       int // next batch of the current epoch
	Params      [][]float32
	M, V        [][]float32
	T           int
	History     []EpochResult
	Best        int // index in History of the best epoch, -1 if none
	BestParams  [][]float32
	Elapsed     time.Duration
	Tokens      int64
	LossSum     float64
	LossN       int
}

// Result is the outcome of a run.
type Result struct {
	History   []EpochResult
	Best      int // index of the selected epoch in History (-1: none evaluated)
	Steps     int
	Tokens    int64
	Elapsed   time.Duration
	Resumed   bool
	ResumedAt int
}

// ErrNonFinite is returned when the loss or the gradients become NaN or Inf.
var ErrNonFinite = errors.New("non-finite loss or gradient")

func snapshot(params []*nn.Param) [][]float32 {
	out := make([][]float32, len(params))
	for i, p := range params {
		out[i] = append([]float32(nil), ops.Data(p)...)
	}
	return out
}

func restore(params []*nn.Param, vals [][]float32) error {
	if len(vals) != len(params) {
		return fmt.Errorf("checkpoint holds %d parameters, the run has %d", len(vals), len(params))
	}
	for i, p := range params {
		if len(vals[i]) != p.Size() {
			return fmt.Errorf("checkpoint parameter %d has %d values, the run has %d", i, len(vals[i]), p.Size())
		}
		copy(ops.Data(p), vals[i])
	}
	return nil
}

func statePath(dir string) string { return filepath.Join(dir, "state.gob") }

// LoadState reads a checkpoint, or returns nil if there is none.
func LoadState(dir string) (*State, error) {
	f, err := os.Open(statePath(dir))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var s State
	if err := gob.NewDecoder(f).Decode(&s); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", statePath(dir), err)
	}
	return &s, nil
}

func saveState(dir string, s *State) (err error) {
	if err := os.MkdirAll(dir, atomicfs.DirPerm); err != nil {
		return err
	}
	f, err := atomicfs.CreateTemp(dir, ".state-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = gob.NewEncoder(f).Encode(s); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return os.Rename(f.Name(), statePath(dir))
}

// Run trains params. It resumes from a checkpoint in cfg.CheckpointDir with
// the same fingerprint, saves checkpoints as configured and when ctx is
// cancelled (then returns ctx's error), stops with ErrNonFinite on NaN/Inf,
// and at the end restores the best epoch's parameters when SelectBy is set.
func Run(ctx context.Context, params []*nn.Param, cfg Config, h Hooks) (*Result, error) {
	if cfg.GradAccum < 1 {
		cfg.GradAccum = 1
	}
	if cfg.Batches < 1 {
		return nil, fmt.Errorf("no training batches")
	}
	gc := TuneGC()
	defer gc.Restore()
	total := cfg.TotalSteps()
	warm := cfg.WarmupSteps
	if warm == 0 {
		warm = int(math.Round(cfg.Warmup * float64(total)))
	}
	sched := Schedule{Kind: cfg.Kind, Base: cfg.LR, Warmup: warm, Total: total}
	if err := sched.Validate(); err != nil {
		return nil, err
	}
	opt := NewAdamW(params, cfg.Beta1, cfg.Beta2, cfg.Eps, cfg.WeightDecay)
	st := &State{Fingerprint: cfg.Fingerprint, Best: -1}
	res := &Result{Best: -1}
	if cfg.CheckpointDir != "" {
		old, err := LoadState(cfg.CheckpointDir)
		if err != nil {
			return nil, err
		}
		if old != nil && old.Fingerprint == cfg.Fingerprint {
			if err := restore(params, old.Params); err != nil {
				return nil, err
			}
			if len(old.M) != len(params) || len(old.V) != len(params) {
				return nil, fmt.Errorf("checkpoint optimizer state does not match the run")
			}
			opt.M, opt.V, opt.T = old.M, old.V, old.T
			st = old
			res.Resumed, res.ResumedAt = true, old.Step
		}
	}
	save := func() error {
		if cfg.CheckpointDir == "" {
			return nil
		}
		st.Params = snapshot(params)
		st.M, st.V, st.T = opt.M, opt.V, opt.T
		return saveState(cfg.CheckpointDir, st)
	}
	opt.ZeroGrad()
	start := time.Now()
	base := st.Elapsed
	for st.Epoch < cfg.Epochs && st.Step < total {
		for st.Batch < cfg.Batches && st.Step < total {
			stepStart := time.Now()
			n := min(cfg.GradAccum, cfg.Batches-st.Batch)
			var loss float64
			tokens := 0
			for k := 0; k < n; k++ {
				l, tk, err := h.Forward(st.Epoch, st.Batch+k, 1/float64(n))
				if err != nil {
					return nil, fmt.Errorf("epoch %d batch %d: %w", st.Epoch+1, st.Batch+k, err)
				}
				if math.IsNaN(l) || math.IsInf(l, 0) {
					return nil, fmt.Errorf("%w: loss %v at step %d (epoch %d); lower the learning rate or check the data", ErrNonFinite, l, st.Step+1, st.Epoch+1)
				}
				loss += l / float64(n)
				tokens += tk
			}
			norm := ClipGradNorm(params, cfg.MaxGradNorm)
			if math.IsNaN(norm) || math.IsInf(norm, 0) {
				return nil, fmt.Errorf("%w: gradient norm %v at step %d (epoch %d); lower the learning rate", ErrNonFinite, norm, st.Step+1, st.Epoch+1)
			}
			lr := sched.LR(st.Step)
			opt.Step(lr)
			gc.Step()
			st.Step++
			st.Batch += n
			st.Tokens += int64(tokens)
			st.LossSum += loss
			st.LossN++
			elapsed := base + time.Since(start)
			if h.Progress != nil {
				done := st.Step - res.ResumedAt
				var eta time.Duration
				if done > 0 {
					eta = time.Duration(float64(time.Since(start)) / float64(done) * float64(total-st.Step))
				}
				h.Progress(Event{Step: st.Step, TotalSteps: total, Epoch: st.Epoch + 1, Epochs: cfg.Epochs, Loss: loss, LR: lr,
					GradNorm: norm, Tokens: tokens, TokensPerSec: float64(tokens) / time.Since(stepStart).Seconds(), Elapsed: elapsed, ETA: eta})
			}
			st.Elapsed = elapsed
			if cfg.CheckpointEvery > 0 && st.Step%cfg.CheckpointEvery == 0 {
				if err := save(); err != nil {
					return nil, err
				}
			}
			if err := ctx.Err(); err != nil {
				if serr := save(); serr != nil {
					return nil, fmt.Errorf("%w (and saving the checkpoint failed: %v)", err, serr)
				}
				return nil, err
			}
		}
		// End of epoch (or of MaxSteps): evaluate.
		r := EpochResult{Epoch: st.Epoch + 1, Step: st.Step}
		if st.LossN > 0 {
			r.Loss = st.LossSum / float64(st.LossN)
		}
		if h.Eval != nil {
			m, err := h.Eval(st.Epoch)
			if err != nil {
				return nil, fmt.Errorf("evaluation after epoch %d: %w", st.Epoch+1, err)
			}
			r.Metrics = m
		}
		st.History = append(st.History, r)
		if cfg.SelectBy != "" && r.Metrics != nil {
			v, ok := r.Metrics[cfg.SelectBy]
			better := st.Best < 0
			if ok && st.Best >= 0 {
				bv := st.History[st.Best].Metrics[cfg.SelectBy]
				better = (cfg.HigherIsBetter && v > bv) || (!cfg.HigherIsBetter && v < bv)
			}
			if ok && better {
				st.Best = len(st.History) - 1
				st.BestParams = snapshot(params)
			}
		}
		st.Epoch++
		st.Batch = 0
		st.LossSum, st.LossN = 0, 0
		if err := save(); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if st.Best >= 0 && st.BestParams != nil {
		if err := restore(params, st.BestParams); err != nil {
			return nil, err
		}
	}
	res.History, res.Best, res.Steps, res.Tokens, res.Elapsed = st.History, st.Best, st.Step, st.Tokens, st.Elapsed
	if res.Best < 0 && len(res.History) > 0 {
		res.Best = len(res.History) - 1
	}
	return res, nil
}

// RemoveCheckpoint deletes a run's checkpoint after it completed.
func RemoveCheckpoint(dir string) error {
	err := os.Remove(statePath(dir))
	if os.IsNotExist(err) {
		return nil
	}
	return err
}
