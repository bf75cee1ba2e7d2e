package checkpoint

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/ops"
)

// Giving back the activations that no backward pass reads when a block
// ends (ops.SetReleaseDead) leaves the loss and every gradient bit for bit
// the same, for every family of the reference models, with weights in
// memory (Load) and stored (LoadStored), with every parameter trainable
// and with only the first block's (so that the later blocks' frozen
// projections leave their inputs dead). The pool poisons what it takes
// back under make test (SURGEON_POOL_POISON=1), so an activation given
// back too early would turn gradients into NaN. With a frozen block there
// must be something to give back.
func TestReleaseDeadSameGradients(t *testing.T) {
	cases, err := os.ReadDir(refDir)
	if err != nil {
		t.Fatal(err)
	}
	firstBlock := regexp.MustCompile(`\.0\.`)
	for _, c := range cases {
		dir := filepath.Join(refDir, c.Name())
		if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
			continue
		}
		for _, tc := range []struct {
			name  string
			load  func(string) (*Loaded, error)
			train func(path string) bool
		}{
			{"Load/all", Load, func(string) bool { return true }},
			{"Load/first-block", Load, firstBlock.MatchString},
			{"LoadStored/first-block", LoadStored, firstBlock.MatchString},
		} {
			t.Run(c.Name()+"/"+tc.name, func(t *testing.T) {
				grads := func(release bool) (float32, map[string][]float32, int64) {
					l, err := tc.load(dir)
					if err != nil {
						t.Fatal(err)
					}
					defer l.Close()
					for _, p := range layer.Params(l.Model) {
						p.Param.SetRequiresGrad(tc.train(p.Path) && !isStored(l, p.Path))
					}
					defer ops.SetReleaseDead(ops.SetReleaseDead(release))
					before := ops.Released()
					lv, g := lossAndGrads(t, l)
					return lv, g, ops.Released() - before
				}
				l0, g0, n0 := grads(false)
				l1, g1, n1 := grads(true)
				if n0 != 0 {
					t.Fatalf("%d floats given back with the release off", n0)
				}
				if tc.name != "Load/all" && n1 == 0 {
					t.Fatal("nothing given back with the later blocks frozen")
				}
				sameGrads(t, tc.name, "with the release", l0, g0, l1, g1)
			})
		}
	}
}

// isStored reports whether the parameter at path is a linear weight that
// l keeps where it is stored (LoadStored), which cannot be trained.
func isStored(l *Loaded, path string) bool {
	for name, s := range layer.Storables(l.Model) {
		if s.Stored() != nil && name+".weight" == path {
			return true
		}
	}
	return false
}
