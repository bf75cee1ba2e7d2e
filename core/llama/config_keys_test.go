package llama

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Keys of a config.json that no field reads (dropouts, initializer_range,
// use_cache, a family's or a user's own) are written back as they were;
// label2id follows id2label, and num_labels goes as transformers' to_dict
// drops it.
func TestConfigKeepsUnknownKeys(t *testing.T) {
	src := `{"model_type":"llama","architectures":["LlamaForCausalLM"],"hidden_size":32,"intermediate_size":64,
		"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":50,
		"attention_dropout":0.1,"initializer_range":0.03,"use_cache":false,"my_key":{"a":[1,2]},"num_labels":7}`
	c, err := ParseConfig([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Map()
	for k, want := range map[string]any{
		"attention_dropout": 0.1, "initializer_range": 0.03, "use_cache": false,
		"my_key": map[string]any{"a": []any{1.0, 2.0}}, "num_labels": 7.0, "hidden_size": 32.0,
	} {
		if !reflect.DeepEqual(m[k], want) {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	// The map round-trips: config.json written from it parses to the same map.
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if m2 := c2.Map(); !reflect.DeepEqual(m, m2) {
		t.Errorf("after a round trip %v, want %v", m2, m)
	}

	cls := New(c).AsClassifier([]string{"neg", "pos"}, 1)
	cm := cls.Config.Map()
	if _, ok := cm["num_labels"]; ok {
		t.Errorf("classifier config keeps num_labels %v", cm["num_labels"])
	}
	if want := map[string]any{"neg": 0, "pos": 1}; !reflect.DeepEqual(cm["label2id"], want) {
		t.Errorf("label2id %#v, want %#v", cm["label2id"], want)
	}
	if cm["attention_dropout"] != 0.1 {
		t.Errorf("classifier config lost attention_dropout: %v", cm["attention_dropout"])
	}
}
