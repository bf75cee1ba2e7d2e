package checkpoint

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
)

// checkTensors compares the model's parameters with a checkpoint's tensors
// before anything is read: every missing tensor is listed by Hugging Face
// name with the shape the model expects, every shape that differs with
// both shapes and the config keys that set the differing size (a config
// that contradicts the tensors names its key), and unused tensors are
// listed by name. shape returns a tensor's stored shape, or false when the
// checkpoint lacks it.
func checkTensors(m model.Model, shape func(name string) ([]int, bool), names []string) error {
	var problems []string
	for _, p := range layer.Params(m) {
		got, ok := shape(p.Path)
		if !ok {
			problems = append(problems, fmt.Sprintf("missing %s %v", p.Path, p.Shape))
			continue
		}
		if !slices.Equal(got, p.Shape) {
			problems = append(problems, fmt.Sprintf("%s: checkpoint shape %v, model expects %v%s", p.Path, got, p.Shape, keysFor(m, p.Path, got, p.Shape)))
		}
	}
	if err := checkUnused(m, names); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) == 0 {
		return nil
	}
	const show = 8
	n := len(problems)
	if n > show {
		problems = append(problems[:show], fmt.Sprintf("... (%d more)", n-show))
	}
	return fmt.Errorf("the checkpoint does not fit the model its config.json describes (%d problems): %s", n, strings.Join(problems, "; "))
}

// keysFor names the config keys whose value is a size the model expects
// where the checkpoint has another: " (config intermediate_size = 200;
// the checkpoint has 256)".
func keysFor(m model.Model, param string, got, want []int) string {
	if len(got) != len(want) {
		return ""
	}
	cfg := m.HFConfig()
	var dims [][]string
	if e, ok := m.(model.ShapeExplainer); ok {
		dims = e.ShapeKeys(param)
	}
	var hints []string
	for i := range want {
		if got[i] == want[i] {
			continue
		}
		if i < len(dims) && len(dims[i]) > 0 {
			var parts []string
			for _, k := range dims[i] {
				parts = append(parts, fmt.Sprintf("%s = %v", k, cfg[k]))
			}
			hints = append(hints, fmt.Sprintf("set by config %s; the checkpoint has %d", strings.Join(parts, ", "), got[i]))
			continue
		}
		var keys []string
		for k, v := range cfg {
			if strings.HasSuffix(k, "_id") {
				continue
			}
			if n, ok := v.(float64); ok && int(n) == want[i] && n == float64(int(n)) {
				keys = append(keys, k)
			}
			if n, ok := v.(int); ok && n == want[i] {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		if len(keys) > 0 {
			hints = append(hints, fmt.Sprintf("config %s = %d; the checkpoint has %d", strings.Join(keys, " or "), want[i], got[i]))
		}
	}
	if len(hints) == 0 {
		return ""
	}
	return " (" + strings.Join(hints, "; ") + ")"
}
