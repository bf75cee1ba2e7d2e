package llama

import (
	"strings"

	"github.com/surgeon-ml/surgeon/core/model"
)

var _ model.ShapeExplainer = (*Model)(nil)

var (
	heads   = []string{"num_attention_heads", "head_dim"}
	kvHeads = []string{"num_key_value_heads", "head_dim"}
	hidden  = []string{"hidden_size"}
	inter   = []string{"intermediate_size"}
	vocab   = []string{"vocab_size"}
)

// shapeKeys maps parameter name suffixes to the config keys of each
// dimension.
var shapeKeys = map[string][][]string{
	"embed_tokens.weight":          {vocab, hidden},
	"lm_head.weight":               {vocab, hidden},
	"score.weight":                 {{"num_labels", "id2label"}, hidden},
	"q_proj.weight":                {heads, hidden},
	"q_proj.bias":                  {heads},
	"k_proj.weight":                {kvHeads, hidden},
	"k_proj.bias":                  {kvHeads},
	"v_proj.weight":                {kvHeads, hidden},
	"v_proj.bias":                  {kvHeads},
	"o_proj.weight":                {hidden, heads},
	"gate_proj.weight":             {inter, hidden},
	"up_proj.weight":               {inter, hidden},
	"down_proj.weight":             {hidden, inter},
	"layernorm.weight":             {hidden},
	"norm.weight":                  {hidden},
	"q_norm.weight":                {{"head_dim"}},
	"k_norm.weight":                {{"head_dim"}},
	"feedforward_layernorm.weight": {hidden},
}

// ShapeKeys names the config keys that set each dimension of a parameter.
func (m *Model) ShapeKeys(param string) [][]string {
	best := ""
	for suffix := range shapeKeys {
		if (param == suffix || strings.HasSuffix(param, "."+suffix) || strings.HasSuffix(param, "_"+suffix)) && len(suffix) > len(best) {
			best = suffix
		}
	}
	if best == "" {
		return nil
	}
	return shapeKeys[best]
}
