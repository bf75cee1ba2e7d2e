package main

import (
	"context"

	"github.com/surgeon-ml/surgeon/core/hub"
)

// resolvePath turns a command's model or adapter argument into a local
// path: local paths stay as given, hf://owner/repo/path addresses resolve
// through core/hub as recipes' model.path does (the SURGEON_HF_MIRROR
// mirror, the SURGEON_CACHE cache, or a download; HF_ENDPOINT, HF_TOKEN).
func resolvePath(ctx context.Context, p string) (string, error) {
	return hub.Local(ctx, p, hub.Options{})
}

// resolvePaths resolves each of ps with resolvePath.
func resolvePaths(ctx context.Context, ps []string) ([]string, error) {
	out := make([]string, len(ps))
	for i, p := range ps {
		local, err := resolvePath(ctx, p)
		if err != nil {
			return nil, err
		}
		out[i] = local
	}
	return out, nil
}
