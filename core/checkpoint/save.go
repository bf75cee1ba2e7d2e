package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/surgeon-ml/surgeon/core/layer"
	"github.com/surgeon-ml/surgeon/core/model"
	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/native"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
	"github.com/surgeon-ml/surgeon/internal/atomicfs"
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
	if err := layer.MaterializeAll(m); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	tmp, err := beginHF(dir, m, opts)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	var ts []tensor.Tensor
	for _, p := range layer.Params(m) {
		data, err := tensor.FromFloat32(opts.DType, p.Stored())
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
	return atomicfs.ReplaceDir(tmp, dir)
}

// beginHF checks opts and starts a Hugging Face folder for dir under a
// temporary name beside it: config.json (with torch_dtype) and the extra
// files. The caller adds the weights and renames the folder into place.
func beginHF(dir string, m model.Model, opts SaveOptions) (tmp string, err error) {
	if opts.DType != tensor.F32 && opts.DType != tensor.F16 && opts.DType != tensor.BF16 {
		return "", fmt.Errorf("save %s: dtype %s not writable (F32, F16, BF16)", dir, opts.DType)
	}
	tmp, err = atomicfs.TempDir(dir)
	if err != nil {
		return "", err
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
		return "", fmt.Errorf("config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), append(cj, '\n'), atomicfs.FilePerm); err != nil {
		return "", err
	}
	for name, data := range opts.Extra {
		if err := os.WriteFile(filepath.Join(tmp, name), data, atomicfs.FilePerm); err != nil {
			return "", err
		}
	}
	return tmp, nil
}

// SaveNative writes l's model as a spago native folder (see formats/native)
// with its config and the tokenizer files of its source (TokenizerFiles),
// so that the folder runs like the checkpoint it came from.
func SaveNative(dir string, l *Loaded) error {
	if err := layer.MaterializeAll(l.Model); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	files, err := TokenizerFiles(l)
	if err != nil {
		return err
	}
	return native.Save(dir, l.Model, files)
}
