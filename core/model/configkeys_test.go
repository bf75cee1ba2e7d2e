package model_test

import (
	"encoding/json"
	"reflect"
	"testing"

	_ "github.com/surgeon-ml/surgeon/core/bert"
	_ "github.com/surgeon-ml/surgeon/core/distilbert"
	"github.com/surgeon-ml/surgeon/core/model"
	_ "github.com/surgeon-ml/surgeon/core/roberta"
)

// Every encoder family writes back the config.json keys it does not read.
func TestEncodersKeepUnknownKeys(t *testing.T) {
	extra := `"hidden_dropout_prob":0.2,"initializer_range":0.03,"my_key":[1,"a"]`
	for _, c := range []struct{ name, cfg string }{
		{"bert", `{"model_type":"bert","architectures":["BertForSequenceClassification"],"hidden_size":32,"num_hidden_layers":1,
			"num_attention_heads":4,"intermediate_size":64,"vocab_size":50,"id2label":{"0":"a","1":"b"},` + extra + `}`},
		{"distilbert", `{"model_type":"distilbert","architectures":["DistilBertForSequenceClassification"],"dim":32,"n_layers":1,
			"n_heads":4,"hidden_dim":64,"vocab_size":50,"id2label":{"0":"a","1":"b"},` + extra + `}`},
		{"roberta", `{"model_type":"roberta","architectures":["RobertaForSequenceClassification"],"hidden_size":32,"num_hidden_layers":1,
			"num_attention_heads":4,"intermediate_size":64,"vocab_size":50,"max_position_embeddings":40,"pad_token_id":1,
			"type_vocab_size":1,"id2label":{"0":"a","1":"b"},` + extra + `}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := model.New([]byte(c.cfg))
			if err != nil {
				t.Fatal(err)
			}
			got := m.HFConfig()
			var want map[string]any
			if err := json.Unmarshal([]byte(`{`+extra+`}`), &want); err != nil {
				t.Fatal(err)
			}
			for k, v := range want {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	type inner struct {
		B int `json:"b"`
	}
	type cfg struct {
		inner
		A    int `json:"a,omitempty"`
		Skip int `json:"-"`
		Bare int
	}
	got := model.UnknownKeys[cfg]([]byte(`{"a":1,"b":2,"Bare":3,"-":4,"x":{"y":5}}`))
	want := map[string]json.RawMessage{"-": json.RawMessage(`4`), "x": json.RawMessage(`{"y":5}`)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("UnknownKeys %v, want %v", got, want)
	}
	m := map[string]any{"x": "mine"}
	model.SetUnknown(m, got)
	if m["x"] != "mine" || m["-"] != 4.0 {
		t.Fatalf("SetUnknown: %v", m)
	}
	if model.UnknownKeys[cfg]([]byte(`[1]`)) != nil {
		t.Fatal("a non-object has unknown keys")
	}
}
