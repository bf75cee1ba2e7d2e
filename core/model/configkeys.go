package model

import (
	"encoding/json"
	"reflect"
	"strings"
)

// UnknownKeys returns the members of the config.json object data that no
// json-tagged field of the struct type T reads (dropouts,
// initializer_range, use_cache, a user's own keys), for a family to write
// back unchanged with SetUnknown: a merged or converted checkpoint keeps
// them. It returns nil when there are none or data is not an object.
func UnknownKeys[T any](data []byte) map[string]json.RawMessage {
	var all map[string]json.RawMessage
	if json.Unmarshal(data, &all) != nil {
		return nil
	}
	known := jsonNames(reflect.TypeFor[T]())
	var out map[string]json.RawMessage
	for k, v := range all {
		if known[k] {
			continue
		}
		if out == nil {
			out = map[string]json.RawMessage{}
		}
		out[k] = v
	}
	return out
}

// jsonNames returns the JSON member names the fields of struct type t
// read, embedded structs included.
func jsonNames(t reflect.Type) map[string]bool {
	names := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			for k := range jsonNames(f.Type) {
				names[k] = true
			}
		case name != "":
			names[name] = true
		case f.IsExported():
			names[f.Name] = true
		}
	}
	return names
}

// SetUnknown adds the unknown config.json members to the config object m
// where m has no value of its own for them.
func SetUnknown(m map[string]any, unknown map[string]json.RawMessage) {
	for k, raw := range unknown {
		if _, set := m[k]; set {
			continue
		}
		var v any
		if json.Unmarshal(raw, &v) == nil {
			m[k] = v
		}
	}
}
