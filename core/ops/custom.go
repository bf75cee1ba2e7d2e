package ops

import (
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// Custom runs an autograd function defined outside this package (a model
// family's own operator) and records it on the tape like the built-in
// operators, so that Backward reaches it in order.
func Custom(f ag.AutoGradFunction) mat.Tensor { return run(f) }
