package hub

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const uri = "hf://owner/repo/dir/model.bin"

// content is the file the test servers serve.
var content = func() []byte {
	b := make([]byte, 10_000)
	for i := range b {
		b[i] = byte(i * 7 % 251)
	}
	return b
}()

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// request is what a test server saw.
type request struct {
	path, rng, auth string
	sent            int
}

// hubServer serves content at /owner/repo/resolve/<rev>/dir/model.bin.
type hubServer struct {
	*httptest.Server
	body        []byte
	headers     map[string]string // set on every file response
	ignoreRange bool
	status      int // answer every request with this status instead
	stallAfter  int // send this many bytes, then wait for the client to go
	redirect    string

	active   sync.WaitGroup // handlers running
	mu       sync.Mutex
	requests []request
}

func newServer(t *testing.T, configure func(*hubServer)) *hubServer {
	t.Helper()
	s := &hubServer{body: content, headers: map[string]string{"ETag": `"` + sum(content) + `"`}}
	if configure != nil {
		configure(s)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *hubServer) serve(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Done()
	rec := request{path: r.URL.EscapedPath(), rng: r.Header.Get("Range"), auth: r.Header.Get("Authorization")}
	defer func() {
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
	}()
	if s.status != 0 {
		w.Header().Set("X-Error-Message", "told to fail")
		w.WriteHeader(s.status)
		return
	}
	if s.redirect != "" && !strings.HasPrefix(r.URL.Path, "/cdn/") {
		w.Header().Set("X-Linked-Etag", s.redirect)
		http.Redirect(w, r, "/cdn/blob", http.StatusFound)
		return
	}
	for k, v := range s.headers {
		w.Header().Set(k, v)
	}
	body, status := s.body, http.StatusOK
	if from, ok := strings.CutPrefix(rec.rng, "bytes="); ok && !s.ignoreRange {
		n, err := strconv.Atoi(strings.TrimSuffix(from, "-"))
		if err != nil || n >= len(s.body) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(s.body)-1, len(s.body)))
		body, status = s.body[n:], http.StatusPartialContent
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if s.stallAfter > 0 && s.stallAfter < len(body) {
		n, _ := w.Write(body[:s.stallAfter])
		rec.sent = n
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	n, _ := w.Write(body)
	rec.sent = n
}

// seen waits for the handlers of requests already answered to finish and
// returns what they saw.
func (s *hubServer) seen() []request {
	s.active.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.requests...)
}

// options points Resolve at s with a fresh cache and no mirror.
func options(t *testing.T, s *hubServer) Options {
	t.Helper()
	for _, k := range []string{"SURGEON_HF_MIRROR", "SURGEON_CACHE", "HF_ENDPOINT", "HF_TOKEN"} {
		t.Setenv(k, "")
	}
	o := Options{Cache: t.TempDir()}
	if s != nil {
		o.Endpoint = s.URL
	}
	return o
}

// cachePath is where Resolve puts uri for revision rev.
func cachePath(o Options, rev string) string {
	return filepath.Join(o.Cache, "hf", "owner", "repo", rev, "dir", "model.bin")
}

func TestDownload(t *testing.T) {
	other := sum([]byte("something else"))
	tests := []struct {
		name      string
		uri       string
		configure func(*hubServer)
		o         Options
		path      string
		auth      string
	}{
		{name: "quoted etag", uri: uri},
		{name: "weak etag", uri: uri, configure: func(s *hubServer) { s.headers["ETag"] = `W/"` + strings.ToUpper(sum(content)) + `"` }},
		{name: "linked etag wins", uri: uri, configure: func(s *hubServer) {
			s.headers["ETag"] = `"` + other + `"`
			s.headers["X-Linked-Etag"] = `"` + sum(content) + `"`
		}},
		{name: "git blob etag is not a sha256", uri: uri, configure: func(s *hubServer) { s.headers["ETag"] = `"` + strings.Repeat("ab", 20) + `"` }},
		{name: "no etag", uri: uri, configure: func(s *hubServer) { s.headers = nil }},
		{name: "redirect carries linked etag", uri: uri, configure: func(s *hubServer) {
			s.redirect = `"` + sum(content) + `"`
			s.headers["ETag"] = `"d41d8cd98f00b204e9800998ecf8427e"`
		}},
		{name: "revision option and token", uri: uri, o: Options{Revision: "v1.0", Token: "tok"},
			path: "/owner/repo/resolve/v1.0/dir/model.bin", auth: "Bearer tok"},
		{name: "revision in uri", uri: "hf://owner/repo@abc123/dir/model.bin", o: Options{Revision: "ignored"},
			path: "/owner/repo/resolve/abc123/dir/model.bin"},
		{name: "escaped path", uri: "hf://owner/repo/dir/model.bin", o: Options{Revision: "refs/pr/1"},
			path: "/owner/repo/resolve/refs%2Fpr%2F1/dir/model.bin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.configure)
			o := options(t, s)
			o.Revision, o.Token = tc.o.Revision, tc.o.Token
			var last [2]int64
			o.Progress = func(done, total int64) { last = [2]int64{done, total} }
			got, err := Resolve(context.Background(), tc.uri, o)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(got)
			if err != nil || !bytes.Equal(b, content) {
				t.Fatalf("downloaded %d bytes (%v), want the %d-byte file", len(b), err, len(content))
			}
			side, err := os.ReadFile(got + ".sha256")
			if err != nil || !strings.HasPrefix(string(side), sum(content)+"  model.bin") {
				t.Errorf("sidecar %q (%v)", side, err)
			}
			if _, err := os.Stat(got + ".partial"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("partial file left behind: %v", err)
			}
			if last != [2]int64{int64(len(content)), int64(len(content))} {
				t.Errorf("last progress %v", last)
			}
			reqs := s.seen()
			want := tc.path
			if want == "" {
				want = "/owner/repo/resolve/main/dir/model.bin"
			}
			if reqs[0].path != want || reqs[0].rng != "" || reqs[0].auth != tc.auth {
				t.Errorf("first request %+v, want path %s, auth %q, no range", reqs[0], want, tc.auth)
			}
			// A second call is a cache hit.
			again, err := Resolve(context.Background(), tc.uri, o)
			if err != nil || again != got || len(s.seen()) != len(reqs) {
				t.Errorf("second call: %q, %v, %d requests (had %d)", again, err, len(s.seen()), len(reqs))
			}
		})
	}
}

func TestResume(t *testing.T) {
	const have = 4000
	tests := []struct {
		name      string
		partial   []byte
		ignore    bool
		wantRange []string // Range header of each request
		wantSent  int      // body bytes sent over all requests
	}{
		{"server honours range", content[:have], false, []string{"bytes=4000-"}, len(content) - have},
		{"server ignores range", content[:have], true, []string{"bytes=4000-"}, len(content)},
		{"stale partial restarts", bytes.Repeat([]byte{1}, have), false, []string{"bytes=4000-", ""}, len(content) - have + len(content)},
		{"partial longer than file", make([]byte, len(content)+5), false, []string{"bytes=10005-", ""}, len(content)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, func(s *hubServer) { s.ignoreRange = tc.ignore })
			o := options(t, s)
			dest := cachePath(o, "main")
			if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dest+".partial", tc.partial, 0o644); err != nil {
				t.Fatal(err)
			}
			var first int64 = -1
			o.Progress = func(done, total int64) {
				if first < 0 {
					first = done
				}
			}
			got, err := Resolve(context.Background(), uri, o)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(got); !bytes.Equal(b, content) {
				t.Fatal("resumed file differs from the original")
			}
			reqs := s.seen()
			sent := 0
			var ranges []string
			for _, r := range reqs {
				ranges = append(ranges, r.rng)
				sent += r.sent
			}
			if strings.Join(ranges, "|") != strings.Join(tc.wantRange, "|") || sent != tc.wantSent {
				t.Errorf("ranges %q, %d bytes sent; want %q, %d", ranges, sent, tc.wantRange, tc.wantSent)
			}
			if tc.name == "server honours range" && first <= have {
				t.Errorf("first progress report %d, want above the %d bytes already there", first, have)
			}
		})
	}
}

func TestChecksumMismatch(t *testing.T) {
	bad := `"` + sum([]byte("not the file")) + `"`
	tests := []struct {
		name      string
		configure func(*hubServer)
	}{
		{"etag", func(s *hubServer) { s.headers["ETag"] = bad }},
		{"linked etag on redirect", func(s *hubServer) { s.redirect = bad }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.configure)
			o := options(t, s)
			_, err := Resolve(context.Background(), uri, o)
			if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), uri) {
				t.Fatalf("error %v, want ErrChecksum naming %s", err, uri)
			}
			dest := cachePath(o, "main")
			for _, p := range []string{dest, dest + ".partial", dest + ".sha256"} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left behind (%v)", filepath.Base(p), err)
				}
			}
		})
	}
}

func TestHTTPErrors(t *testing.T) {
	tests := []struct {
		status int
		is     error
		want   string
	}{
		{http.StatusNotFound, ErrNotFound, "HTTP 404"},
		{http.StatusUnauthorized, ErrUnauthorized, "HF_TOKEN"},
		{http.StatusForbidden, ErrUnauthorized, "HTTP 403"},
		{http.StatusInternalServerError, nil, "500 Internal Server Error"},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			s := newServer(t, func(s *hubServer) { s.status = tc.status })
			o := options(t, s)
			_, err := Resolve(context.Background(), uri, o)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			for _, w := range []string{uri, tc.want, "told to fail"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if _, err := os.Stat(cachePath(o, "main")); !errors.Is(err, os.ErrNotExist) {
				t.Error("file created")
			}
		})
	}
}

func TestNetworkError(t *testing.T) {
	s := newServer(t, nil)
	o := options(t, s)
	s.Close()
	o.Mirror = filepath.Join(t.TempDir(), "mirror")
	_, err := Resolve(context.Background(), uri, o)
	if err == nil || !strings.Contains(err.Error(), uri) || !strings.Contains(err.Error(), "not in mirror") {
		t.Errorf("error %v, want one naming %s and the mirror", err, uri)
	}
	o.Endpoint = "ftp://example.com"
	if _, err := Resolve(context.Background(), uri, o); err == nil || !strings.Contains(err.Error(), "ftp://example.com") {
		t.Errorf("bad endpoint: %v", err)
	}
}

func TestMirrorHit(t *testing.T) {
	s := newServer(t, nil)
	o := options(t, s)
	mirror := t.TempDir()
	want := filepath.Join(mirror, "owner", "repo", "dir", "model.bin")
	if err := os.MkdirAll(filepath.Dir(want), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want, []byte("mirrored"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		set  func(*Options)
	}{
		{"option", func(o *Options) { o.Mirror = mirror }},
		{"environment", func(*Options) { t.Setenv("SURGEON_HF_MIRROR", mirror) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := o
			tc.set(&o)
			got, err := Resolve(context.Background(), "hf://owner/repo@v2/dir/model.bin", o)
			if err != nil || got != want {
				t.Errorf("Resolve = %q, %v; want %q", got, err, want)
			}
			if n := len(s.seen()); n != 0 {
				t.Errorf("%d requests made", n)
			}
			if _, err := os.Stat(filepath.Join(o.Cache, "hf")); !errors.Is(err, os.ErrNotExist) {
				t.Error("mirror hit copied into the cache")
			}
		})
	}
}

func TestRealMirror(t *testing.T) {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Skip("repository root (go.mod) not found; cannot locate ../shared/fixtures")
		}
		dir = filepath.Dir(dir)
	}
	mirror := filepath.Join(dir, "..", "shared", "fixtures", "hf-mirror")
	if _, err := os.Stat(mirror); err != nil {
		t.Skipf("hub mirror fixture not found at %s (see /work/shared/fixtures/README.md): %v", mirror, err)
	}
	o := options(t, nil)
	o.Mirror, o.Endpoint = mirror, "http://127.0.0.1:1" // nothing listens there
	got, err := Resolve(context.Background(), "hf://ggml-org/models/tinyllamas/stories260K.gguf", o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got)
	if err != nil || !bytes.HasPrefix(b, []byte("GGUF")) {
		t.Errorf("%s: not a GGUF file (%v)", got, err)
	}
}

func TestCacheHit(t *testing.T) {
	tests := []struct {
		name     string
		sidecar  bool
		requests int
	}{
		{"verified copy is used", true, 0},
		{"copy without sidecar is downloaded again", false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, nil)
			o := options(t, s)
			dest := cachePath(o, "main")
			if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dest, []byte("cached"), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.sidecar {
				if err := os.WriteFile(dest+".sha256", []byte(sum([]byte("cached"))+"  model.bin\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Resolve(context.Background(), uri, o)
			if err != nil || got != dest {
				t.Fatalf("Resolve = %q, %v; want %q", got, err, dest)
			}
			if n := len(s.seen()); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
		})
	}
}

func TestCancelKeepsPartial(t *testing.T) {
	const half = 6000
	s := newServer(t, func(s *hubServer) { s.stallAfter = half })
	o := options(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.Progress = func(done, total int64) {
		if done >= half {
			cancel()
		}
	}
	_, err := Resolve(ctx, uri, o)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), uri) {
		t.Fatalf("error %v, want context.Canceled naming %s", err, uri)
	}
	dest := cachePath(o, "main")
	fi, err := os.Stat(dest + ".partial")
	if err != nil || fi.Size() != half {
		t.Fatalf("partial file: %v, %v; want %d bytes", fi, err, half)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Error("incomplete file moved into place")
	}

	// The next call resumes where the first stopped.
	s.stallAfter = 0
	o.Progress = nil
	got, err := Resolve(context.Background(), uri, o)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, content) {
		t.Error("resumed file differs")
	}
	// The server may log the stalled first request after the second one:
	// its handler ends only when it notices the client has gone.
	reqs := s.seen()
	ranges := map[string]int{}
	for _, r := range reqs {
		ranges[r.rng]++
	}
	if len(reqs) != 2 || ranges[""] != 1 || ranges["bytes=6000-"] != 1 {
		t.Errorf("requests %+v, want the first one and a second one from byte 6000", reqs)
	}

	// An already cancelled context makes no request.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := Resolve(ctx, "hf://owner/repo/other.bin", o); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestMalformedURI(t *testing.T) {
	o := options(t, nil)
	o.Endpoint = "http://127.0.0.1:1"
	for _, u := range []string{
		"", "hf://", "hf://owner", "hf://owner/repo", "hf://owner/repo/", "hf://owner//file",
		"hf://owner/repo/../x", "hf://owner/repo/./x", "http://owner/repo/file", "hf:/owner/repo/file",
		"hf://owner/repo@/file", "hf://owner/@v1/file", "hf://owner/repo/file?download=1", `hf://owner/repo/a\b`,
	} {
		t.Run(u, func(t *testing.T) {
			_, err := Resolve(context.Background(), u, o)
			if !errors.Is(err, ErrBadURI) || !strings.Contains(err.Error(), strconv.Quote(u)) {
				t.Errorf("error %v, want ErrBadURI quoting %q", err, u)
			}
		})
	}
	for _, rev := range []string{"../x", "a//b", "."} {
		o.Revision = rev
		if _, err := Resolve(context.Background(), uri, o); err == nil || !strings.Contains(err.Error(), "revision") {
			t.Errorf("revision %q: %v", rev, err)
		}
	}
}

func TestIsURI(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"hf://ggml-org/models/tinyllamas/stories260K.gguf", true},
		{"hf://x", true},
		{"./model.gguf", false},
		{"/abs/hf://x", false},
		{"https://huggingface.co/x", false},
	}
	for _, tc := range tests {
		if got := IsURI(tc.s); got != tc.want {
			t.Errorf("IsURI(%q) = %v", tc.s, got)
		}
	}
}

func TestParse(t *testing.T) {
	r, err := parse("hf://ggml-org/models/tinyllamas/stories260K.gguf")
	if err != nil || r.owner != "ggml-org" || r.repo != "models" || r.file != "tinyllamas/stories260K.gguf" || r.revision != "" {
		t.Errorf("parse = %+v, %v", r, err)
	}
}
