package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

func init() {
	register("merge", command{
		usage: "merge MODEL --adapter PEFT_DIR [--adapter PEFT_DIR ... --weight W ...] -o OUT [--dtype F32|F16|BF16]",
		short: "fold PEFT adapters into a model's weights and write a Hugging Face folder",
		run:   runMerge,
	})
}

func runMerge(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	var adapters listFlag
	var weights floatList
	fs.Var(&adapters, "adapter", "PEFT adapter folder (repeatable; applied in order)")
	fs.Var(&weights, "weight", "weight of each adapter's update (repeatable; default 1 each)")
	out := fs.String("o", "", "output folder (required)")
	dtype := fs.String("dtype", "F32", "weight dtype of the output: F32, F16 or BF16")
	pos, err := parseArgs("merge", fs, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 1:
		return usagef("want exactly one MODEL, got %d arguments", len(pos))
	case len(adapters) == 0:
		return usagef("at least one --adapter is required")
	case *out == "":
		return usagef("-o OUT is required")
	case len(weights) != 0 && len(weights) != len(adapters):
		return usagef("%d --weight values for %d adapters", len(weights), len(adapters))
	}
	dt, err := tensor.ParseDType(*dtype)
	if err != nil {
		return usagef("--dtype: %v", err)
	}
	l, err := checkpoint.Load(pos[0])
	if err != nil {
		return err
	}
	defer l.Close()
	mgr, err := newManager()
	if err != nil {
		return err
	}
	defer mgr.Close()
	for i, dir := range adapters {
		w := 1.0
		if len(weights) > 0 {
			w = weights[i]
		}
		a, err := peft.Read(dir)
		if err != nil {
			return err
		}
		l.Model = attach.ForAdapter(l.Model, a)
		targets, err := attach.FromPEFT(a)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		if _, err := attach.Attach(ctx, l.Model, mgr.Adapters(), targets, 0); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		if err := mergeWeighted(l.Model, w); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		if err := attach.ApplySaved(l.Model, a.Saved, w); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		fmt.Fprintf(stdout, "merged %s (%d modules, weight %g)\n", dir, len(targets), w)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var extra map[string][]byte
	if l.GGUF != nil {
		if extra, err = checkpoint.TokenizerFiles(l); err != nil {
			return err
		}
	}
	if err := checkpoint.SaveHF(*out, l.Model, checkpoint.SaveOptions{DType: dt, Extra: extra}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

// mergeWeighted replaces every adapted layer by base + w*(merged - base).
func mergeWeighted(m nn.Model, w float64) error {
	slots := attach.Slots(m)
	for path, a := range attach.Adapted(m) {
		s := slots[path]
		merged, err := a.Merged()
		if err != nil {
			return fmt.Errorf("module %s: %w", path, err)
		}
		if w != 1 {
			mw, bw := ops.Data(merged.Weight), ops.Data(a.Base.Weight)
			for i := range mw {
				mw[i] = bw[i] + float32(w)*(mw[i]-bw[i])
			}
			if merged.Bias != nil {
				mb := ops.Data(merged.Bias)
				var bb []float32
				if a.Base.Bias != nil {
					bb = ops.Data(a.Base.Bias)
				}
				for i := range mb {
					base := float32(0)
					if bb != nil {
						base = bb[i]
					}
					mb[i] = base + float32(w)*(mb[i]-base)
				}
			}
		}
		s.Layer = merged
	}
	return nil
}
