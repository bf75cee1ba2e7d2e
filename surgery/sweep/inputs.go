package sweep

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/surgeon-ml/surgeon/surgery/recipe"
)

// ErrInput marks a point input (model or data) that a cluster job could
// not find.
var ErrInput = errors.New("input not found")

// Input is a model or data path a sweep reads.
type Input struct {
	// Key is the recipe key ("model.path", "data.train").
	Key string
	// Path is the resolved path, or the hf:// address.
	Path string
	// Hub is set for an hf:// address: the jobs resolve it through
	// SURGEON_CACHE (shared storage) rather than a local path.
	Hub bool
	// Points names the points reading it.
	Points []string
}

// Inputs returns the model and data every point of s reads, each once,
// in first-use order, after checking that local ones exist: a cluster job
// must not discover a missing file hours later on a node. The error names
// every missing path, its recipe key and a point that reads it.
func Inputs(s *Sweep) ([]Input, error) {
	var out []Input
	at := map[string]int{}
	var errs []error
	for i := range s.Points {
		p := &s.Points[i]
		rec, err := recipe.Load(p.Recipe, p.Sets)
		if err != nil {
			return nil, fmt.Errorf("point %d (%s): %w", i, p.Name, err)
		}
		for _, in := range []struct{ key, path string }{
			{"model.path", rec.Model.Path}, {"data.train", rec.Data.Train}, {"data.validation", rec.Data.Validation}, {"data.test", rec.Data.Test},
		} {
			if in.path == "" {
				continue
			}
			path := rec.Resolve(in.path)
			if j, ok := at[in.key+"\x00"+path]; ok {
				out[j].Points = append(out[j].Points, p.Name)
				continue
			}
			at[in.key+"\x00"+path] = len(out)
			hub := strings.HasPrefix(path, "hf://")
			out = append(out, Input{Key: in.key, Path: path, Hub: hub, Points: []string{p.Name}})
			if hub {
				continue
			}
			if _, err := os.Stat(path); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s = %s (point %s): %w", p.Recipe, in.key, path, p.Name, ErrInput))
			}
		}
	}
	return out, errors.Join(errs...)
}
