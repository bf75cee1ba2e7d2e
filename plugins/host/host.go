package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/surgeon-ml/surgeon/plugins/rpc"
)

// Options configure a Manager.
type Options struct {
	// Dirs are the plugin directories (default DefaultDirs()).
	Dirs []string
	// LockPath is the lock file (default DefaultLock(Dirs)).
	LockPath string
	// Logger receives host and plugin logs (default: discard).
	Logger hclog.Logger
	// CallTimeout bounds each Describe/Plan/Init call (default 2 minutes).
	CallTimeout time.Duration
}

// Manager starts and stops plugin processes: at most one per plugin.
type Manager struct {
	opts    Options
	mu      sync.Mutex
	running map[string]*Plugin
	lock    *Lock
}

// Plugin is a running plugin process.
type Plugin struct {
	Name   string
	Path   string
	Desc   *rpc.Description
	client *plugin.Client
	rpc    rpc.Interface
	stderr *tail
	mgr    *Manager
}

// New returns a manager. It reads the lock file.
func New(opts Options) (*Manager, error) {
	if opts.Dirs == nil {
		opts.Dirs = DefaultDirs()
	}
	if opts.LockPath == "" {
		opts.LockPath = DefaultLock(opts.Dirs)
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = 2 * time.Minute
	}
	l, err := ReadLock(opts.LockPath)
	if err != nil {
		return nil, err
	}
	return &Manager{opts: opts, running: map[string]*Plugin{}, lock: l}, nil
}

// Lock returns the lock file contents.
func (m *Manager) Lock() *Lock { return m.lock }

// LockPath returns where the lock file is.
func (m *Manager) LockPath() string { return m.opts.LockPath }

// Dirs returns the plugin directories searched.
func (m *Manager) Dirs() []string { return m.opts.Dirs }

// tail keeps the last lines a plugin wrote to stderr, and the start of a
// Go panic or fatal error (whose message would otherwise scroll away under
// its stack trace).
type tail struct {
	mu    sync.Mutex
	lines []string
	part  []byte
	crash []string
}

const tailLines = 8

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, p...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimSpace(string(t.part[:i])); line != "" {
			if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
				t.crash = []string{line}
			} else if len(t.crash) > 0 && len(t.crash) < 4 {
				t.crash = append(t.crash, line)
			}
			t.lines = append(t.lines, line)
			if len(t.lines) > tailLines {
				t.lines = t.lines[len(t.lines)-tailLines:]
			}
		}
		t.part = t.part[i+1:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.crash) > 0 {
		return strings.Join(t.crash, " | ") + " ..."
	}
	lines := t.lines
	if s := strings.TrimSpace(string(t.part)); s != "" {
		lines = append(append([]string(nil), lines...), s)
	}
	return strings.Join(lines, " | ")
}

// start launches a plugin binary after checking its lock entry.
func (m *Manager) start(ctx context.Context, b Binary) (*Plugin, error) {
	entry, ok := m.lock.Plugins[b.Name]
	if !ok {
		return nil, fmt.Errorf("plugin %s (%s): %w %s; run 'surgeon plugins lock' to trust it", b.Name, b.Path, ErrNotLocked, m.opts.LockPath)
	}
	sum, err := hex.DecodeString(entry.SHA256)
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("plugin %s: lock file %s has a malformed checksum", b.Name, m.opts.LockPath)
	}
	st := &tail{}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  rpc.Handshake,
		VersionedPlugins: rpc.VersionedPlugins(nil),
		Cmd:              exec.Command(b.Path),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		SecureConfig:     &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		AutoMTLS:         true,
		Logger:           m.opts.Logger.Named(b.Name),
		Stderr:           st,
		SyncStderr:       st,
		StartTimeout:     30 * time.Second,
	})
	p := &Plugin{Name: b.Name, Path: b.Path, client: client, stderr: st, mgr: m}
	cp, err := client.Client()
	if err != nil {
		client.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, fmt.Errorf("plugin %s (%s): %w in %s; refusing to run it (rebuild and run 'surgeon plugins lock' if the change is yours)", b.Name, b.Path, ErrChecksum, m.opts.LockPath)
		}
		return nil, p.wrap(fmt.Errorf("start: %w", err))
	}
	raw, err := cp.Dispense(rpc.PluginName)
	if err != nil {
		client.Kill()
		return nil, p.wrap(fmt.Errorf("dispense: %w", err))
	}
	p.rpc = raw.(rpc.Interface)
	cctx, cancel := context.WithTimeout(ctx, m.opts.CallTimeout)
	defer cancel()
	d, err := p.rpc.Describe(cctx)
	if err != nil {
		client.Kill()
		return nil, p.wrap(fmt.Errorf("describe: %w", err))
	}
	p.Desc = d
	return p, nil
}

// wrap names the plugin in an error and, if the process died, says so and
// adds the end of its stderr.
func (p *Plugin) wrap(err error) error {
	if err == nil {
		return nil
	}
	if p.client != nil && (p.client.Exited() || errors.Is(err, rpc.ErrPluginExited)) {
		// Let the process finish exiting so its last stderr lines arrive.
		for i := 0; i < 50 && !p.client.Exited(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		msg := fmt.Sprintf("plugin %s (%s) exited unexpectedly: %v", p.Name, p.Path, err)
		if s := p.stderr.String(); s != "" {
			msg += "; its last stderr lines: " + s
		}
		return fmt.Errorf("%s: %w", msg, rpc.ErrPluginExited)
	}
	return fmt.Errorf("plugin %s: %w", p.Name, err)
}

// Plugin returns the running plugin called name, starting it if needed.
func (m *Manager) Plugin(ctx context.Context, name string) (*Plugin, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.running[name]; ok && !p.client.Exited() {
		return p, nil
	}
	bins, err := Discover(m.opts.Dirs)
	if err != nil {
		return nil, err
	}
	for _, b := range bins {
		if b.Name == name {
			p, err := m.start(ctx, b)
			if err != nil {
				return nil, err
			}
			m.running[name] = p
			return p, nil
		}
	}
	return nil, fmt.Errorf("no plugin called %q in %s", name, strings.Join(m.opts.Dirs, ", "))
}

// Find returns the running plugin that provides the component called name
// of the given kind. It consults the lock file to pick the plugin, so only
// that plugin is started.
func (m *Manager) Find(ctx context.Context, kind rpc.ComponentKind, name string) (*Plugin, error) {
	var known []string
	for _, pn := range m.lock.Names() {
		for _, c := range m.lock.Plugins[pn].Components {
			if c.Kind != kind {
				continue
			}
			if c.Name == name {
				return m.Plugin(ctx, pn)
			}
			known = append(known, c.Name)
		}
	}
	return nil, fmt.Errorf("no plugin provides the %s %q (known %ss: %s; lock file %s)", kind, name, kind, strings.Join(known, ", "), m.opts.LockPath)
}

// Close stops every plugin process.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, p := range m.running {
		p.client.Kill()
		delete(m.running, name)
	}
}

// Kill stops this plugin's process (for tests and cancellation).
func (p *Plugin) Kill() { p.client.Kill() }

// PID returns the plugin process id, or 0.
func (p *Plugin) PID() int {
	if rc := p.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

func (p *Plugin) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.mgr.opts.CallTimeout)
}

// Plan asks the plugin for a layer's plan.
func (p *Plugin) Plan(ctx context.Context, req rpc.PlanRequest) (*rpc.Plan, error) {
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	plan, err := p.rpc.Plan(ctx, req)
	return plan, p.wrap(err)
}

// Init asks the plugin for computed parameter values.
func (p *Plugin) Init(ctx context.Context, req rpc.InitRequest, base []float32) (map[string][]float32, error) {
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	v, err := p.rpc.Init(ctx, req, base)
	return v, p.wrap(err)
}

// Convert runs a converter of the plugin (no call timeout: conversions of
// large checkpoints take long; cancel ctx to stop).
func (p *Plugin) Convert(ctx context.Context, req rpc.ConvertRequest, progress func(rpc.Progress)) error {
	return p.wrap(p.rpc.Convert(ctx, req, progress))
}

// LockAll describes every discovered plugin and records its checksum and
// components in the lock file, trusting the binaries as they are now.
func (m *Manager) LockAll(ctx context.Context) (*Lock, error) {
	bins, err := Discover(m.opts.Dirs)
	if err != nil {
		return nil, err
	}
	l := &Lock{Version: 1, Plugins: map[string]*LockEntry{}}
	for _, b := range bins {
		sum, err := FileSHA256(b.Path)
		if err != nil {
			return nil, err
		}
		m.lock.Plugins[b.Name] = &LockEntry{Path: b.Path, SHA256: sum}
		p, err := m.start(ctx, b)
		if err != nil {
			return nil, err
		}
		p.client.Kill()
		l.Plugins[b.Name] = &LockEntry{Path: b.Path, SHA256: sum, Version: p.Desc.Version, Components: p.Desc.Components}
	}
	if err := l.Write(m.opts.LockPath); err != nil {
		return nil, err
	}
	m.lock = l
	return l, nil
}

// Verify checks every locked plugin's binary against its checksum and
// reports discovered binaries missing from the lock.
func (m *Manager) Verify() (problems []string, err error) {
	bins, err := Discover(m.opts.Dirs)
	if err != nil {
		return nil, err
	}
	found := map[string]Binary{}
	for _, b := range bins {
		found[b.Name] = b
		if _, ok := m.lock.Plugins[b.Name]; !ok {
			problems = append(problems, fmt.Sprintf("%s (%s): not in the lock file", b.Name, b.Path))
		}
	}
	for _, n := range m.lock.Names() {
		e := m.lock.Plugins[n]
		b, ok := found[n]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: locked but not found in %s", n, strings.Join(m.opts.Dirs, ", ")))
			continue
		}
		sum, err := FileSHA256(b.Path)
		if err != nil {
			return nil, err
		}
		if sum != e.SHA256 {
			problems = append(problems, fmt.Sprintf("%s (%s): checksum %s does not match the locked %s", n, b.Path, sum[:12], e.SHA256[:12]))
		}
	}
	return problems, nil
}

// Router routes adapter calls to the plugin that provides each adapter.
type Router struct{ m *Manager }

// Adapters returns a router for adapter calls.
func (m *Manager) Adapters() *Router { return &Router{m: m} }

// Plan plans req.Adapter for a layer with the plugin that provides it.
func (r *Router) Plan(ctx context.Context, req rpc.PlanRequest) (*rpc.Plan, error) {
	p, err := r.m.Find(ctx, rpc.KindAdapter, req.Adapter)
	if err != nil {
		return nil, err
	}
	return p.Plan(ctx, req)
}

// Init computes initial values with the plugin that provides req.Adapter.
func (r *Router) Init(ctx context.Context, req rpc.InitRequest, base []float32) (map[string][]float32, error) {
	p, err := r.m.Find(ctx, rpc.KindAdapter, req.Adapter)
	if err != nil {
		return nil, err
	}
	return p.Init(ctx, req, base)
}

// FindConverter returns the running plugin and component that convert from
// one format to another.
func (m *Manager) FindConverter(ctx context.Context, from, to string) (*Plugin, string, error) {
	var pairs []string
	for _, pn := range m.lock.Names() {
		for _, c := range m.lock.Plugins[pn].Components {
			if c.Kind != rpc.KindConverter {
				continue
			}
			for _, f := range c.From {
				for _, t := range c.To {
					if f == t && f != "gguf" { // gguf -> gguf re-quantizes
						continue
					}
					if f == from && t == to {
						p, err := m.Plugin(ctx, pn)
						return p, c.Name, err
					}
					pairs = append(pairs, f+"->"+t)
				}
			}
		}
	}
	return nil, "", fmt.Errorf("no converter from %s to %s (available: %s; lock file %s)", from, to, strings.Join(pairs, ", "), m.opts.LockPath)
}
