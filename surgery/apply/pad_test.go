package apply

import (
	"path/filepath"
	"testing"
)

// A decoder classifier whose config has a pad_token_id pools its
// rightmost token that is not that id (as transformers does), so apply
// pads its batches with the config's id, not the tokenizer's; without one
// it pads with the tokenizer's (the mask then finds the last real token).
func TestClassifierPadsWithConfigPad(t *testing.T) {
	needFixtures(t)
	tok, nvocab := byteLevelTokenizer(t) // <pad> is 1
	for _, c := range []struct {
		name, pad string
		want      int
	}{
		{"config pad_token_id 3", `,"pad_token_id":3`, 3},
		{"no pad_token_id", ``, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := randomModel(t, `{"model_type":"qwen2","architectures":["Qwen2ForSequenceClassification"],
				"hidden_size":32,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":64,
				"vocab_size":`+itoa(nvocab)+`,"max_position_embeddings":64,"id2label":{"0":"NEGATIVE","1":"POSITIVE"}`+c.pad+`}`, tok)
			path := writeRecipe(t, `
[model]
path = "`+dir+`"
task = "sequence-classification"
labels = ["NEGATIVE", "POSITIVE"]
max_length = 32

[data]
train = "`+fixtures+`/uci-sentiment-labelled-sentences/amazon.json"
text_field = "text"
label_field = "class"
test_fraction = 0.2
max_examples = 40
seed = 1

[[targets]]
modules = ["q_proj", "v_proj"]
config = { r = 2, lora_alpha = 4 }

[train]
epochs = 1
batch_size = 8
seed = 1

[output]
dir = "`+filepath.Join(t.TempDir(), "out")+`"
`)
			r, err := prepare(t, path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.Pad != c.want {
				t.Fatalf("batches padded with %d, want %d", r.Pad, c.want)
			}
		})
	}
}
