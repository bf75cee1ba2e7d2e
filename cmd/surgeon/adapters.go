package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/qmat"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// floatList collects a repeated float flag.
type floatList []float64

func (l *floatList) String() string { return fmt.Sprint(*l) }
func (l *floatList) Set(v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", v)
	}
	*l = append(*l, f)
	return nil
}

// weightsDoc documents --weights.
const weightsDoc = `how frozen linear weights and embedding tables are held: f32 (read into
float32 memory), stored (they stay memory-mapped in their file's dtype and are
converted one layer at a time while a product runs, and a lookup reads only the
table rows it needs: a model needs about one layer of float32 memory; same
results to rounding; quantized GGUF blocks are multiplied in place when
decoding), or auto: stored for a GGUF file with quantized weights
on a CPU with the assembly kernels (AVX2), f32 otherwise`

// checkWeights validates a --weights value.
func checkWeights(w string) error {
	if w != "f32" && w != "stored" && w != "auto" {
		return usagef("--weights must be f32, stored or auto, got %q", w)
	}
	return nil
}

// loadWithAdapters loads a model and attaches PEFT adapter folders to it on
// the fly. closeAll releases the model and stops the plugins.
func loadWithAdapters(ctx context.Context, path string, adapters []string, weights string) (l *checkpoint.Loaded, closeAll func(), err error) {
	if weights == "auto" {
		weights = "f32"
		if qmat.Accelerated() && checkpoint.QuantizedGGUF(path) {
			weights = "stored"
		}
	}
	if weights == "stored" {
		l, err = checkpoint.LoadStored(path)
	} else {
		l, err = checkpoint.Load(path)
	}
	if err != nil {
		return nil, nil, err
	}
	closers := []func(){func() { l.Close() }}
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if len(adapters) > 0 {
		mgr, err := newManager()
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		closers = append(closers, mgr.Close)
		for _, a := range adapters {
			if l.Model, err = attach.AttachFolder(ctx, l.Model, mgr.Adapters(), a); err != nil {
				closeAll()
				return nil, nil, err
			}
		}
	}
	return l, closeAll, nil
}
