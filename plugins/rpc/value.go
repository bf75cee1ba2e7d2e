package rpc

import (
	"fmt"
	"math"
	"sort"

	pb "github.com/surgeon-ml/surgeon/plugins/proto/pluginv2"
)

// Config values cross the process boundary typed (pb.Value), so that an
// integer stays an integer: int, int64 and the other Go integer types
// travel as integers, float32/float64 as floats, bool, string, lists
// ([]any, []string, []int, []float64) and nil. On arrival integers are
// int, floats float64 and lists []any.

// ValueToPB converts a Go configuration value to its protocol form.
func ValueToPB(v any) (*pb.Value, error) {
	switch x := v.(type) {
	case nil:
		return &pb.Value{Kind: &pb.Value_NullValue{NullValue: true}}, nil
	case bool:
		return &pb.Value{Kind: &pb.Value_BoolValue{BoolValue: x}}, nil
	case int:
		return intValue(int64(x)), nil
	case int8:
		return intValue(int64(x)), nil
	case int16:
		return intValue(int64(x)), nil
	case int32:
		return intValue(int64(x)), nil
	case int64:
		return intValue(x), nil
	case uint8:
		return intValue(int64(x)), nil
	case uint16:
		return intValue(int64(x)), nil
	case uint32:
		return intValue(int64(x)), nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return nil, fmt.Errorf("integer %d out of range", x)
		}
		return intValue(int64(x)), nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("integer %d out of range", x)
		}
		return intValue(int64(x)), nil
	case float32:
		return &pb.Value{Kind: &pb.Value_FloatValue{FloatValue: float64(x)}}, nil
	case float64:
		return &pb.Value{Kind: &pb.Value_FloatValue{FloatValue: x}}, nil
	case string:
		return &pb.Value{Kind: &pb.Value_StringValue{StringValue: x}}, nil
	case []string:
		l := &pb.ValueList{}
		for _, s := range x {
			l.Values = append(l.Values, &pb.Value{Kind: &pb.Value_StringValue{StringValue: s}})
		}
		return &pb.Value{Kind: &pb.Value_ListValue{ListValue: l}}, nil
	case []int:
		l := &pb.ValueList{}
		for _, i := range x {
			l.Values = append(l.Values, intValue(int64(i)))
		}
		return &pb.Value{Kind: &pb.Value_ListValue{ListValue: l}}, nil
	case []float64:
		l := &pb.ValueList{}
		for _, f := range x {
			l.Values = append(l.Values, &pb.Value{Kind: &pb.Value_FloatValue{FloatValue: f}})
		}
		return &pb.Value{Kind: &pb.Value_ListValue{ListValue: l}}, nil
	case []any:
		l := &pb.ValueList{}
		for i, e := range x {
			pv, err := ValueToPB(e)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			l.Values = append(l.Values, pv)
		}
		return &pb.Value{Kind: &pb.Value_ListValue{ListValue: l}}, nil
	}
	return nil, fmt.Errorf("value %v of type %T cannot be a config value (want int, float, bool, string or a list)", v, v)
}

func intValue(i int64) *pb.Value { return &pb.Value{Kind: &pb.Value_IntValue{IntValue: i}} }

// ValueFromPB converts a protocol value back to Go: int, float64, bool,
// string, []any or nil.
func ValueFromPB(v *pb.Value) any {
	if v == nil {
		return nil
	}
	switch k := v.Kind.(type) {
	case *pb.Value_IntValue:
		return int(k.IntValue)
	case *pb.Value_FloatValue:
		return k.FloatValue
	case *pb.Value_BoolValue:
		return k.BoolValue
	case *pb.Value_StringValue:
		return k.StringValue
	case *pb.Value_ListValue:
		out := make([]any, 0, len(k.ListValue.GetValues()))
		for _, e := range k.ListValue.GetValues() {
			out = append(out, ValueFromPB(e))
		}
		return out
	}
	return nil
}

// ConfigToPB converts a configuration map; errors name the key.
func ConfigToPB(m map[string]any) (*pb.Config, error) {
	out := &pb.Config{Values: make(map[string]*pb.Value, len(m))}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := ValueToPB(m[k])
		if err != nil {
			return nil, fmt.Errorf("config key %q: %w", k, err)
		}
		out.Values[k] = v
	}
	return out, nil
}

// ConfigFromPB converts a protocol configuration to a map (never nil).
func ConfigFromPB(c *pb.Config) map[string]any {
	out := make(map[string]any, len(c.GetValues()))
	for k, v := range c.GetValues() {
		out[k] = ValueFromPB(v)
	}
	return out
}
