package pickle

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/surgeon-ml/surgeon/core/tensor"
	"github.com/surgeon-ml/surgeon/formats/safetensors"
)

// ToSafetensors converts every tensor of the PyTorch checkpoint src into the
// safetensors file dst, keeping names (in checkpoint order), dtypes and
// shapes. Tensors are streamed one at a time; dst appears only once complete.
// The metadata is {"format": "pt", "source": base name of src}.
func ToSafetensors(src, dst string) (err error) {
	f, err := Open(src)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: %w", src, cerr)
		}
	}()
	names := f.Names()
	descs := make([]safetensors.Descriptor, len(names))
	for i, name := range names {
		t := f.tensors[name]
		descs[i] = safetensors.Descriptor{Name: name, DType: t.dtype, Shape: t.shape}
	}
	meta := map[string]string{"format": "pt", "source": filepath.Base(src)}
	w, err := safetensors.Create(dst, descs, &safetensors.Options{Metadata: meta})
	if err != nil {
		return err
	}
	for _, name := range names {
		var t tensor.Tensor
		t, err = f.Tensor(name)
		if err == nil {
			err = w.WriteTensor(t)
		}
		if err != nil {
			return errors.Join(fmt.Errorf("convert %s to %s: %w", src, dst, err), w.Abort())
		}
	}
	return w.Close()
}
