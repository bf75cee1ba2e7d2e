//go:build !unix

package layer

func mapLazy(int) ([]float32, bool) { return nil, false }

func unmapLazy([]float32) bool { return false }
