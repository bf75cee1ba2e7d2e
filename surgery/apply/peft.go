package apply

import (
	"context"
	"fmt"

	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/surgery/attach"
	"github.com/surgeon-ml/surgeon/surgery/recipe"
)

// PEFTAdapter returns the trained adapters (and fully trained modules) as
// a Hugging Face PEFT adapter, in the saved form the adapter's plugin
// gives. Mixing adapter types in one run is not expressible in one PEFT
// folder and is an error.
func (r *Run) PEFTAdapter(ctx context.Context) (*peft.Adapter, error) {
	info := attach.Info{TaskType: "CAUSAL_LM", BaseModel: r.Recipe.Model.Path, Adapter: recipe.DefaultAdapter}
	if r.Classifier() {
		info.TaskType = "SEQ_CLS"
	}
	for _, g := range r.Recipe.Targets {
		if g.Adapter != "" {
			info.Adapter = g.Adapter
			break
		}
	}
	if len(r.Saved) > 0 {
		info.ModulesToSave = append([]string(nil), r.Saved...)
		info.Saved = attach.SavedTensors(r.Model, r.Saved)
	}
	return attach.ToPEFT(ctx, r.Opts.Planner, r.Adapters, info)
}

func writePEFT(dir string, a *peft.Adapter) error { return peft.Write(dir, a) }

// UseAdapter replaces the run's adapters with a saved PEFT adapter folder
// (its LoRA/DoRA/IA3 modules and its fully trained tensors), so that the
// recipe's data can evaluate it.
func (r *Run) UseAdapter(ctx context.Context, dir string) error {
	attach.Unload(r.Model)
	a, targets, err := attach.Read(ctx, r.Opts.Planner, dir)
	if err != nil {
		return err
	}
	if _, err := attach.Load(ctx, r.Model, r.Opts.Planner, a, targets); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	r.Adapters = attach.Adapted(r.Model)
	return nil
}
