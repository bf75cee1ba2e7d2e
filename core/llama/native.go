package llama

import "github.com/surgeon-ml/surgeon/core/model"

var _ model.NativeDecoded = (*Model)(nil)

// DecodedNative restores the config's token ids of 0, which gob dropped.
func (m *Model) DecodedNative() { m.Config.RestoreZeroIDs() }
