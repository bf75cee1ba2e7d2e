package lora

import "github.com/surgeon-ml/surgeon/plugins/rpc"

func planReq(adapter string, cfg map[string]any) rpc.PlanRequest {
	return rpc.PlanRequest{Adapter: adapter, Layer: rpc.Layer{Path: "l", Kind: "linear", In: 8, Out: 6}, Config: cfg}
}
