package hub

import (
	"fmt"
	"strings"
)

// Scheme prefixes the model sources Resolve understands.
const Scheme = "hf://"

// ref is a parsed hf:// URI.
type ref struct {
	uri               string // as given
	owner, repo, file string
	revision          string // from "repo@revision", or ""
}

// IsURI reports whether s names a hub source (hf://...) rather than a
// local path. It checks only the scheme; Resolve reports a malformed rest.
func IsURI(s string) bool {
	return strings.HasPrefix(s, Scheme)
}

// parse splits hf://owner/repo[@revision]/path/in/repo.
func parse(uri string) (ref, error) {
	bad := func(why string) (ref, error) {
		return ref{}, fmt.Errorf("%w %q: %s (want hf://owner/repo/path/in/repo)", ErrBadURI, uri, why)
	}
	if !IsURI(uri) {
		return bad("no hf:// scheme")
	}
	rest := strings.TrimPrefix(uri, Scheme)
	if strings.ContainsAny(rest, "\\?#\x00") {
		return bad(`contains \, ?, # or a NUL byte`)
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 3 {
		return bad("needs an owner, a repository and a file")
	}
	for _, p := range parts {
		switch p {
		case "":
			return bad("empty path element")
		case ".", "..":
			return bad("path element " + p)
		}
	}
	r := ref{uri: uri, owner: parts[0], repo: parts[1], file: strings.Join(parts[2:], "/")}
	if i := strings.IndexByte(r.repo, '@'); i >= 0 {
		r.repo, r.revision = r.repo[:i], r.repo[i+1:]
		if r.repo == "" || r.revision == "" {
			return bad("empty repository or revision around @")
		}
	}
	return r, nil
}
