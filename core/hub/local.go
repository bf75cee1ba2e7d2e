package hub

import (
	"context"
	"os"
	"path/filepath"
)

// Local returns a local path for src, a command's or recipe's model or
// adapter argument: a local path is returned unchanged, an hf:// address
// is resolved with Resolve (mirror, cache, download). An address naming a
// folder of the mirror (a Hugging Face model or PEFT adapter folder laid
// out as owner/repo/path) resolves to that folder; folders are not
// downloaded, only single files.
func Local(ctx context.Context, src string, o Options) (string, error) {
	if !IsURI(src) {
		return src, nil
	}
	r, err := parse(src)
	if err != nil {
		return "", err
	}
	if d, err := o.withDefaults(); err == nil && d.Mirror != "" {
		p := filepath.Join(d.Mirror, r.owner, r.repo, filepath.FromSlash(r.file))
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p, nil
		}
	}
	return Resolve(ctx, src, o)
}
