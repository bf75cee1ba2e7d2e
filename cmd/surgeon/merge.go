package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/nlpodyssey/spago/nn"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/detect"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/plugins/host"
	"github.com/surgeon-ml/surgeon/plugins/rpc"
	"github.com/surgeon-ml/surgeon/surgery/attach"
	"github.com/surgeon-ml/surgeon/surgery/ranks"
)

func init() {
	register("merge", command{
		usage: "merge [MODEL] --adapter PEFT_DIR [--adapter PEFT_DIR ... --weight W ...] [--method linear|cat|svd|ties|dare] " +
			"[--rank R | --energy F] [--density D] [--seed S] (-o OUT | --adapter-out DIR) [--dtype F32|F16|BF16] [--type T for OUT.gguf]",
		short: "fold PEFT adapters into a model's weights (or combine them into one adapter)",
		run:   runMerge,
	})
}

// mergeMethods are the --method values.
var mergeMethods = []string{"linear", "cat", "svd", "ties", "dare"}

const mergeMethodDoc = `how adapters are combined:
  linear  each adapter's update applied in turn, scaled by its weight (default)
  cat     the exact weighted sum of the updates as one adapter, combined module by module by
          the adapters' plugin (capability concat: LoRA and rsLoRA stack their factors)
  svd     that sum truncated per module by SVD to --rank R (or --energy F); as cat, then resize
  ties    per parameter: each update trimmed to its top --density fraction by magnitude, a sign
          elected by the weighted sum, the disjoint weighted mean of the agreeing entries (any adapter type)
  dare    per parameter: entries dropped with probability 1-density (--seed), the rest rescaled
          by 1/density, then the weighted sum (any adapter type)
cat and svd write an adapter with --adapter-out (MODEL optional) and/or merged weights with -o;
linear, ties and dare write merged weights (-o, MODEL required)`

func runMerge(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	var adapters listFlag
	var weights floatList
	fs.Var(&adapters, "adapter", "PEFT adapter folder (repeatable; applied in order)")
	fs.Var(&weights, "weight", "weight of each adapter's update (repeatable; default 1 each)")
	out := fs.String("o", "", "output folder of the merged model (a Hugging Face folder)")
	adapterOut := fs.String("adapter-out", "", "output PEFT folder of the combined adapter (--method cat or svd)")
	dtype := fs.String("dtype", "F32", "weight dtype of the output: F32, F16 or BF16")
	ggufType := fs.String("type", "f16", "when OUT ends in .gguf: type of the 2-D weights (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)")
	method := fs.String("method", "linear", mergeMethodDoc)
	rank := fs.Int("rank", 0, "svd: the rank of the combined adapter (with --energy: the largest rank allowed)")
	energy := fs.Float64("energy", 0, "svd: keep per module the smallest rank holding this fraction of the squared Frobenius norm")
	density := fs.Float64("density", 0, "ties, dare: fraction of each update's entries kept (0 < D <= 1)")
	seed := fs.Uint64("seed", 0, "dare: random seed of the drop masks")
	inMemory := fs.Bool("in-memory", false, "load the whole model instead of streaming it tensor by tensor (streaming applies to a Hugging Face folder written as one; ties and dare always load)")
	pos, err := parseArgs("merge", fs, args, stdout)
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	switch {
	case !contains(mergeMethods, *method):
		return usagef("unknown --method %q (linear, cat, svd, ties, dare)", *method)
	case len(adapters) == 0:
		return usagef("at least one --adapter is required")
	case len(weights) != 0 && len(weights) != len(adapters):
		return usagef("%d --weight values for %d adapters", len(weights), len(adapters))
	case len(pos) > 1:
		return usagef("want at most one MODEL, got %d arguments", len(pos))
	case *out == "" && *adapterOut == "":
		return usagef("-o OUT is required (or --adapter-out DIR with --method cat or svd)")
	case *out != "" && len(pos) == 0:
		return usagef("-o needs a MODEL to merge into")
	case *out == "" && len(pos) == 1:
		return usagef("MODEL given but no -o OUT to write the merged model to")
	case *adapterOut != "" && *method != "cat" && *method != "svd":
		return usagef("--adapter-out applies to --method cat or svd (%s yields merged weights: use -o)", *method)
	case (given["rank"] || given["energy"]) && *method != "svd":
		return usagef("--rank and --energy apply to --method svd")
	case given["density"] && *method != "ties" && *method != "dare":
		return usagef("--density applies to --method ties or dare")
	case given["seed"] && *method != "dare":
		return usagef("--seed applies to --method dare")
	}
	var sel rpc.RankSelection
	if *method == "svd" {
		switch {
		case given["rank"] && *rank <= 0:
			return usagef("--rank must be positive, got %d", *rank)
		case given["energy"]:
			sel = rpc.RankSelection{Method: rpc.MethodEnergy, Value: *energy, Rank: *rank}
		case given["rank"]:
			sel = rpc.RankSelection{Method: rpc.MethodRank, Rank: *rank}
		default:
			return usagef("--method svd needs --rank R or --energy F")
		}
		if err := sel.Validate(); err != nil {
			return usagef("%v", err)
		}
	}
	if *method == "ties" || *method == "dare" {
		if !given["density"] {
			return usagef("--method %s needs --density D", *method)
		}
		if !(*density > 0 && *density <= 1) {
			return usagef("--density must be in (0,1], got %v", *density)
		}
	}
	w := make([]float64, len(adapters))
	for i := range w {
		w[i] = 1
		if len(weights) > 0 {
			w[i] = weights[i]
		}
	}
	dt, err := tensor.ParseDType(*dtype)
	if err != nil {
		return usagef("--dtype: %v", err)
	}
	// MODEL and the adapters may be hf:// addresses.
	if pos, err = resolvePaths(ctx, pos); err != nil {
		return err
	}
	if adapters, err = resolvePaths(ctx, adapters); err != nil {
		return err
	}
	mgr, err := newManager()
	if err != nil {
		return err
	}
	defer mgr.Close()
	if *method == "cat" || *method == "svd" {
		return mergeAdapters(ctx, stdout, mgr, *method, adapters, w, sel, pos, *out, *adapterOut, dt, *ggufType, *inMemory)
	}
	if *method == "linear" && streamable(pos[0], *out, *inMemory) {
		var steps []attach.Step
		for i, dir := range adapters {
			a, targets, err := attach.Read(ctx, mgr.Adapters(), dir)
			if err != nil {
				return err
			}
			steps = append(steps, attach.Step{Adapter: a, Targets: targets, Weight: w[i]})
		}
		done, err := streamMerge(ctx, stdout, mgr, pos[0], steps, *out, dt)
		if done || err != nil {
			return err
		}
	}
	l, err := checkpoint.Load(pos[0])
	if err != nil {
		return err
	}
	defer l.Close()
	if *method == "linear" {
		for i, dir := range adapters {
			a, targets, err := attach.Read(ctx, mgr.Adapters(), dir)
			if err != nil {
				return err
			}
			l.Model = attach.ForAdapter(l.Model, a)
			if _, err := attach.Attach(ctx, l.Model, mgr.Adapters(), targets, 0); err != nil {
				return fmt.Errorf("%s: %w", dir, err)
			}
			if err := mergeWeighted(l.Model, w[i]); err != nil {
				return fmt.Errorf("%s: %w", dir, err)
			}
			if err := attach.ApplySaved(l.Model, a.Saved, w[i]); err != nil {
				return fmt.Errorf("%s: %w", dir, err)
			}
			fmt.Fprintf(stdout, "merged %s (%d modules, weight %g)\n", dir, len(targets), w[i])
		}
	} else {
		deltas := make([]map[string][]float32, len(adapters))
		for i, dir := range adapters {
			a, err := peft.Read(dir)
			if err != nil {
				return err
			}
			l.Model = attach.ForAdapter(l.Model, a)
			if deltas[i], err = ranks.Deltas(ctx, l.Model, mgr.Adapters(), a); err != nil {
				return fmt.Errorf("%s: %w", dir, err)
			}
		}
		if err := ranks.Combine(l.Model, deltas, w, *method, *density, *seed); err != nil {
			return err
		}
		desc := fmt.Sprintf("density %g", *density)
		if *method == "dare" {
			desc += fmt.Sprintf(", seed %d", *seed)
		}
		fmt.Fprintf(stdout, "merged %d adapters by %s (%s, weights %v)\n", len(adapters), *method, desc, w)
	}
	return saveMerged(ctx, stdout, l, *out, dt, *ggufType)
}

// mergeAdapters combines adapters into one (cat or svd), writes it with
// --adapter-out and, with -o, merges it into MODEL.
func mergeAdapters(ctx context.Context, stdout io.Writer, mgr *host.Manager, method string, dirs []string, w []float64,
	sel rpc.RankSelection, pos []string, out, adapterOut string, dt tensor.DType, ggufType string, inMemory bool) error {
	var as []*peft.Adapter
	for _, dir := range dirs {
		a, err := peft.Read(dir)
		if err != nil {
			return err
		}
		as = append(as, a)
	}
	var combined *peft.Adapter
	var err error
	if method == "cat" {
		combined, err = ranks.Cat(ctx, mgr.Adapters(), as, w)
	} else {
		var stats []ranks.Stat
		combined, stats, err = ranks.SVD(ctx, mgr.Adapters(), as, w, sel)
		if err == nil {
			printStats(stdout, stats, true)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "combined %d adapters by %s (weights %v): %d modules, %d adapter parameters\n", len(dirs), method, w, len(combined.Modules), adapterParams(combined))
	if adapterOut != "" {
		if err := peft.Write(adapterOut, combined); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s\n", adapterOut)
	}
	if out == "" {
		return nil
	}
	if streamable(pos[0], out, inMemory) {
		targets, err := attach.Split(ctx, mgr.Adapters(), combined)
		if err != nil {
			return err
		}
		done, err := streamMerge(ctx, stdout, mgr, pos[0], []attach.Step{{Adapter: combined, Targets: targets, Weight: 1}}, out, dt)
		if done || err != nil {
			return err
		}
	}
	l, err := checkpoint.Load(pos[0])
	if err != nil {
		return err
	}
	defer l.Close()
	targets, err := attach.Split(ctx, mgr.Adapters(), combined)
	if err != nil {
		return err
	}
	if l.Model, err = attach.Load(ctx, l.Model, mgr.Adapters(), combined, targets); err != nil {
		return err
	}
	if err := attach.Merge(l.Model); err != nil {
		return err
	}
	return saveMerged(ctx, stdout, l, out, dt, ggufType)
}

// streamable tells whether a merge of model into out can stream: a
// Hugging Face folder written as one.
func streamable(model, out string, inMemory bool) bool {
	if inMemory || strings.HasSuffix(strings.ToLower(out), ".gguf") {
		return false
	}
	f, err := detect.Path(model)
	return err == nil && f == detect.HFModel
}

// streamMerge merges steps into the Hugging Face folder dir one tensor at
// a time (checkpoint.Skeleton.Stream). It reports false, without error
// and without output, when the merge cannot stream (attach.ErrNeedsMemory):
// the caller then loads the model.
func streamMerge(ctx context.Context, stdout io.Writer, mgr *host.Manager, dir string, steps []attach.Step, out string, dt tensor.DType) (bool, error) {
	sk, err := checkpoint.OpenSkeleton(dir)
	if err != nil {
		return false, err
	}
	defer sk.Close()
	ed, err := attach.StreamMerge(ctx, sk, mgr.Adapters(), steps)
	if errors.Is(err, attach.ErrNeedsMemory) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	l := sk.Loaded()
	extra, err := checkpoint.TokenizerFiles(l)
	if err != nil {
		return false, err
	}
	err = sk.Stream(ctx, out, checkpoint.SaveOptions{DType: dt, Extra: extra}, ed)
	if errors.Is(err, attach.ErrNeedsMemory) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, st := range steps {
		fmt.Fprintf(stdout, "merged %d modules (weight %g)\n", len(st.Targets), st.Weight)
	}
	fmt.Fprintf(stdout, "wrote %s (streamed)\n", out)
	return true, nil
}

// saveMerged writes the merged model as a Hugging Face folder, or as a
// llama.cpp GGUF file when out ends in .gguf.
func saveMerged(ctx context.Context, stdout io.Writer, l *checkpoint.Loaded, out string, dt tensor.DType, ggufType string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if strings.HasSuffix(strings.ToLower(out), ".gguf") {
		if err := checkpoint.SaveGGUF(out, l, ggufType); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (GGUF %s)\n", out, ggufType)
		return nil
	}
	extra, err := checkpoint.TokenizerFiles(l)
	if err != nil {
		return err
	}
	if err := checkpoint.SaveHF(out, l.Model, checkpoint.SaveOptions{DType: dt, Extra: extra}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", out)
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
