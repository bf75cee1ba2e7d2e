// Package hub finds model files named by hf://owner/repo/path URIs: in a
// local mirror of the Hugging Face hub, in the download cache, or by
// downloading them, resuming interrupted downloads and checking each file
// against the sha256 the hub publishes for it.
package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/surgeon-ml/surgeon/internal/atomicfs"
)

// Errors Resolve wraps, for errors.Is.
var (
	// ErrBadURI reports a URI that is not hf://owner/repo/path.
	ErrBadURI = errors.New("hub: malformed URI")
	// ErrNotFound reports a file the hub does not have (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized reports a file the hub refuses to serve (HTTP 401 or
	// 403): a private or gated repository, a bad token, or, for requests
	// without a token, a repository that does not exist.
	ErrUnauthorized = errors.New("access denied")
	// ErrChecksum reports a download whose sha256 differs from the one the
	// hub announced.
	ErrChecksum = errors.New("sha256 mismatch")
)

// Options says where Resolve looks for files and how it downloads them.
// Empty fields take the defaults given with each.
type Options struct {
	// Cache is the download cache directory; default $SURGEON_CACHE or
	// ~/.cache/surgeon. Files live at Cache/hf/owner/repo/revision/path.
	Cache string
	// Mirror is a directory laid out as owner/repo/path, consulted before
	// the cache and the network; default $SURGEON_HF_MIRROR. A mirror has
	// no revisions: its copy is used whatever the revision.
	Mirror string
	// Endpoint is the hub's base URL; default $HF_ENDPOINT or
	// https://huggingface.co.
	Endpoint string
	// Revision is the branch, tag or commit; default "main". A URI may
	// name its own as hf://owner/repo@revision/path.
	Revision string
	// Token is sent as a bearer token to the endpoint; default $HF_TOKEN.
	Token string
	// Client makes the requests; default http.DefaultClient.
	Client *http.Client
	// Progress, when set, is called as a download advances with the bytes
	// on disk so far and the file size, or -1 when the size is unknown.
	Progress func(done, total int64)
}

// withDefaults fills the empty fields of o.
func (o Options) withDefaults() (Options, error) {
	if o.Cache == "" {
		o.Cache = os.Getenv("SURGEON_CACHE")
	}
	if o.Cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return o, fmt.Errorf("hub: no cache directory: set Options.Cache or SURGEON_CACHE: %w", err)
		}
		o.Cache = filepath.Join(home, ".cache", "surgeon")
	}
	if o.Mirror == "" {
		o.Mirror = os.Getenv("SURGEON_HF_MIRROR")
	}
	if o.Endpoint == "" {
		o.Endpoint = os.Getenv("HF_ENDPOINT")
	}
	if o.Endpoint == "" {
		o.Endpoint = "https://huggingface.co"
	}
	if o.Revision == "" {
		o.Revision = "main"
	}
	if o.Token == "" {
		o.Token = os.Getenv("HF_TOKEN")
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	return o, nil
}

// Resolve returns a local path holding the file uri names: the mirror's
// copy if there is one, else the cached copy, else a fresh download into
// the cache. A download interrupted by an error or by cancelling ctx
// leaves a .partial file that the next call resumes.
func Resolve(ctx context.Context, uri string, o Options) (localPath string, err error) {
	r, err := parse(uri)
	if err != nil {
		return "", err
	}
	if o, err = o.withDefaults(); err != nil {
		return "", err
	}
	rev := r.revision
	if rev == "" {
		rev = o.Revision
	}
	if err := checkRevision(rev); err != nil {
		return "", fmt.Errorf("hub: %s: %w", uri, err)
	}
	if o.Mirror != "" {
		p := filepath.Join(o.Mirror, r.owner, r.repo, filepath.FromSlash(r.file))
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	dest := filepath.Join(o.Cache, "hf", r.owner, r.repo, filepath.FromSlash(rev), filepath.FromSlash(r.file))
	if cached(dest) {
		return dest, nil
	}
	unlock, err := lock(ctx, dest)
	if err != nil {
		return "", fmt.Errorf("hub: %s: %w", uri, err)
	}
	defer unlock()
	if cached(dest) { // another caller finished it while we waited
		return dest, nil
	}
	if err := download(ctx, r, rev, dest, o); err != nil {
		if o.Mirror != "" && !errors.Is(err, ErrChecksum) {
			err = fmt.Errorf("%w (and not in mirror %s)", err, o.Mirror)
		}
		return "", err
	}
	return dest, nil
}

// checkRevision rejects revisions that would escape the cache directory.
func checkRevision(rev string) error {
	if strings.ContainsAny(rev, "\\\x00") {
		return fmt.Errorf("bad revision %q", rev)
	}
	for _, p := range strings.Split(rev, "/") {
		if p == "" || p == "." || p == ".." {
			return fmt.Errorf("bad revision %q", rev)
		}
	}
	return nil
}

// sidecar returns the file recording the verified sha256 of dest.
func sidecar(dest string) string { return dest + ".sha256" }

// cached reports whether dest is present and was verified.
func cached(dest string) bool {
	fi, err := os.Stat(dest)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	b, err := os.ReadFile(sidecar(dest))
	return err == nil && len(b) >= 64 && sha256Hex(string(b[:64])) != ""
}

// locks serialises downloads of the same file within the process.
var locks sync.Map // dest -> chan struct{}

// lock takes the in-process lock for dest, giving up when ctx ends.
func lock(ctx context.Context, dest string) (func(), error) {
	v, _ := locks.LoadOrStore(dest, make(chan struct{}, 1))
	ch := v.(chan struct{})
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// errRestart asks download to discard the partial file and start over.
var errRestart = errors.New("restart download")

// download fetches r into dest, resuming dest.partial when it exists.
func download(ctx context.Context, r ref, rev, dest string, o Options) error {
	base, err := url.Parse(strings.TrimRight(o.Endpoint, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("hub: %s: endpoint %q is not an http(s) URL", r.uri, o.Endpoint)
	}
	segs := []string{url.PathEscape(r.owner), url.PathEscape(r.repo), "resolve", url.PathEscape(rev)}
	for _, s := range strings.Split(r.file, "/") {
		segs = append(segs, url.PathEscape(s))
	}
	u := base.String() + "/" + strings.Join(segs, "/")
	if err := os.MkdirAll(filepath.Dir(dest), atomicfs.DirPerm); err != nil {
		return fmt.Errorf("hub: %s: %w", r.uri, err)
	}
	partial := dest + ".partial"
	for range 2 {
		err = fetch(ctx, r, u, partial, dest, o)
		if !errors.Is(err, errRestart) {
			return err
		}
		if err := os.Remove(partial); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("hub: %s: %w", r.uri, err)
		}
	}
	return fmt.Errorf("hub: %s: server at %s did not honour a fresh download", r.uri, u)
}

// fetch makes one request for u, appending to or restarting partial, and
// on success verifies it and moves it to dest.
func fetch(ctx context.Context, r ref, u, partial, dest string, o Options) (err error) {
	var offset int64
	if fi, err := os.Stat(partial); err == nil {
		offset = fi.Size()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("hub: %s: %w", r.uri, err)
	}
	req.Header.Set("Accept-Encoding", "identity") // ranges and hashes are over the raw bytes
	req.Header.Set("User-Agent", "surgeon")
	if o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+o.Token)
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	// The hub announces an LFS file's sha256 in X-Linked-Etag on the
	// redirect to its storage, whose own response the client returns.
	var linked string
	client := *o.Client
	next := o.Client.CheckRedirect
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.Response != nil && linked == "" {
			linked = sha256Hex(req.Response.Header.Get("X-Linked-Etag"))
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("hub: download %s: %w", r.uri, err)
	}
	defer resp.Body.Close()

	total := int64(-1)
	flags := os.O_WRONLY | os.O_CREATE
	switch resp.StatusCode {
	case http.StatusOK:
		offset, flags = 0, flags|os.O_TRUNC
		if resp.ContentLength >= 0 {
			total = resp.ContentLength
		}
	case http.StatusPartialContent:
		start, size, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset {
			return errRestart
		}
		flags |= os.O_APPEND
		total = size
		if total < 0 && resp.ContentLength >= 0 {
			total = offset + resp.ContentLength
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if offset > 0 {
			return errRestart
		}
		return statusError(r, u, resp)
	default:
		return statusError(r, u, resp)
	}
	want := linked
	if want == "" {
		want = sha256Hex(resp.Header.Get("X-Linked-Etag"))
	}
	if want == "" {
		want = sha256Hex(resp.Header.Get("ETag"))
	}

	h := sha256.New()
	if offset > 0 {
		if err := hashFile(h, partial); err != nil {
			return fmt.Errorf("hub: %s: resume: %w", r.uri, err)
		}
	}
	f, err := os.OpenFile(partial, flags, atomicfs.FilePerm)
	if err != nil {
		return fmt.Errorf("hub: %s: %w", r.uri, err)
	}
	pw := &progressWriter{done: offset, total: total, report: o.Progress}
	n, copyErr := io.Copy(io.MultiWriter(f, h, pw), resp.Body)
	if err := f.Close(); err != nil && copyErr == nil {
		copyErr = err
	}
	if copyErr != nil {
		// The partial file stays for the next attempt to resume.
		return fmt.Errorf("hub: download %s: interrupted after %d bytes: %w", r.uri, offset+n, copyErr)
	}
	if total >= 0 && offset+n != total {
		return fmt.Errorf("hub: download %s: got %d of %d bytes", r.uri, offset+n, total)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && sum != want {
		if offset > 0 {
			return errRestart // the partial file may predate a change upstream
		}
		if err := os.Remove(partial); err != nil {
			return fmt.Errorf("hub: %s: %w: got %s, hub says %s; removing the download: %v", r.uri, ErrChecksum, sum, want, err)
		}
		return fmt.Errorf("hub: %s: %w: got %s, hub says %s", r.uri, ErrChecksum, sum, want)
	}
	if err := os.Rename(partial, dest); err != nil {
		return fmt.Errorf("hub: %s: %w", r.uri, err)
	}
	if err := writeAtomic(sidecar(dest), sum+"  "+filepath.Base(dest)+"\n"); err != nil {
		return fmt.Errorf("hub: %s: record sha256: %w", r.uri, err)
	}
	return nil
}

// statusError describes a response that carries no file.
func statusError(r ref, u string, resp *http.Response) error {
	detail := ""
	if m := resp.Header.Get("X-Error-Message"); m != "" {
		detail = ": " + m
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("hub: %s: %w (HTTP %d from %s%s); the repository may be private, gated or missing: set HF_TOKEN or Options.Token",
			r.uri, ErrUnauthorized, resp.StatusCode, u, detail)
	case http.StatusNotFound:
		return fmt.Errorf("hub: %s: %w (HTTP 404 from %s%s)", r.uri, ErrNotFound, u, detail)
	}
	return fmt.Errorf("hub: %s: HTTP %s from %s%s", r.uri, resp.Status, u, detail)
}

// contentRange parses "bytes start-end/size"; size is -1 when given as *.
func contentRange(v string) (start, size int64, ok bool) {
	v, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, false
	}
	s, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false
	}
	size = -1
	if sz != "*" {
		if size, err = strconv.ParseInt(strings.TrimSpace(sz), 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, size, true
}

// sha256Hex returns the lower-case sha256 in an ETag-style header value
// (quotes and a W/ prefix removed), or "" when it holds none.
func sha256Hex(v string) string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "W/")
	v = strings.ToLower(strings.Trim(v, `"`))
	if len(v) != 64 {
		return ""
	}
	if _, err := hex.DecodeString(v); err != nil {
		return ""
	}
	return v
}

// hashFile feeds the contents of path to w.
func hashFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// writeAtomic writes content to path through a temporary file and a rename.
func writeAtomic(path, content string) (err error) {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), atomicfs.FilePerm); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// progressWriter reports bytes as they reach the file.
type progressWriter struct {
	done, total int64
	report      func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if p.report != nil {
		p.report(p.done, p.total)
	}
	return len(b), nil
}
