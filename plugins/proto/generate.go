// Package proto holds the surgeon plugin protocol definition; the generated
// Go code lives in pluginv2. Regenerate with `make generate` (needs protoc,
// protoc-gen-go and protoc-gen-go-grpc on PATH).
package proto

//go:generate protoc -I . --go_out=pluginv2 --go_opt=module=github.com/surgeon-ml/surgeon/plugins/proto/pluginv2 --go-grpc_out=pluginv2 --go-grpc_opt=module=github.com/surgeon-ml/surgeon/plugins/proto/pluginv2 surgeon/plugin/v2/plugin.proto
