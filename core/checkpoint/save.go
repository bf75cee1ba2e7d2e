package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
)

// SaveOptions control SaveHF.
type SaveOptions struct {
	// DType of the weights: F32 (default), F16 or BF16.
	DType tensor.DType
	// MaxShardBytes splits the weights into shards with an index when > 0.
	MaxShardBytes int64
	// Extra files to write into the folder (name -> content), e.g. a tokenizer.
	Extra map[string][]byte
}

// SaveHF writes m as a Hugging Face folder: config.json and
// model.safetensors (or shards with model.safetensors.index.json). The
// folder is assembled under a temporary name beside dir and renamed into
// place; an existing dir is replaced only once the new one is complete.
func SaveHF(dir string, m model.Model, opts SaveOptions) (err error) {
	if opts.DType == "" {
		opts.DType = tensor.F32
	}
	if opts.DType != tensor.F32 && opts.DType != tensor.F16 && opts.DType != tensor.BF16 {
		return fmt.Errorf("save %s: dtype %s not writable (F32, F16, BF16)", dir, opts.DType)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	cfg := m.HFConfig()
	cfg["torch_dtype"] = map[tensor.DType]string{tensor.F32: "float32", tensor.F16: "float16", tensor.BF16: "bfloat16"}[opts.DType]
	cj, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), append(cj, '\n'), 0o644); err != nil {
		return err
	}
	for name, data := range opts.Extra {
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
			return err
		}
	}
	var ts []tensor.Tensor
	for _, p := range layer.Params(m) {
		data, err := tensor.FromFloat32(opts.DType, ops.Data(p.Param))
		if err != nil {
			return err
		}
		ts = append(ts, tensor.Tensor{Name: p.Path, DType: opts.DType, Shape: p.Shape, Data: data})
	}
	md := map[string]string{"format": "pt"}
	if opts.MaxShardBytes > 0 {
		err = safetensors.WriteSharded(tmp, "model", ts, md, opts.MaxShardBytes)
	} else {
		err = safetensors.WriteFile(filepath.Join(tmp, safetensors.SingleFileName), ts, md)
	}
	if err != nil {
		return err
	}
	return replaceDir(tmp, dir)
}

// replaceDir moves the complete folder tmp to dir, replacing dir if it exists.
func replaceDir(tmp, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		old := dir + ".old"
		os.RemoveAll(old)
		if err := os.Rename(dir, old); err != nil {
			return err
		}
		if err := os.Rename(tmp, dir); err != nil {
			os.Rename(old, dir)
			return err
		}
		return os.RemoveAll(old)
	}
	return os.Rename(tmp, dir)
}
