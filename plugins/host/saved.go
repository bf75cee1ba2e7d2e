package host

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/surgeon-ml/surgeon/plugins/rpc"
)

// SaveAdapter asks the plugin how an adapter's modules are saved.
func (p *Plugin) SaveAdapter(ctx context.Context, req rpc.SaveRequest) (map[string]any, error) {
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	c, err := p.rpc.SaveAdapter(ctx, req)
	return c, p.wrap(err)
}

// LoadAdapter asks the plugin to read a saved adapter's config and tensor
// list back into modules.
func (p *Plugin) LoadAdapter(ctx context.Context, req rpc.LoadRequest) ([]rpc.LoadedModule, error) {
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	m, err := p.rpc.LoadAdapter(ctx, req)
	return m, p.wrap(err)
}

// SaveAdapter asks the plugin providing req.Adapter how its modules are saved.
func (r *Router) SaveAdapter(ctx context.Context, req rpc.SaveRequest) (map[string]any, error) {
	p, err := r.m.Find(ctx, rpc.KindAdapter, req.Adapter)
	if err != nil {
		return nil, err
	}
	return p.SaveAdapter(ctx, req)
}

// LoadAdapter reads a saved adapter with the plugin providing req.Adapter.
func (r *Router) LoadAdapter(ctx context.Context, req rpc.LoadRequest) ([]rpc.LoadedModule, error) {
	p, err := r.m.Find(ctx, rpc.KindAdapter, req.Adapter)
	if err != nil {
		return nil, err
	}
	return p.LoadAdapter(ctx, req)
}

// Reader returns the adapter component that reads PEFT folders of
// peftType, from the lock file's descriptions (case-insensitive).
func (r *Router) Reader(_ context.Context, peftType string) (string, error) {
	var known []string
	for _, pn := range r.m.lock.Names() {
		for _, c := range r.m.lock.Plugins[pn].Components {
			for _, t := range c.PEFTTypes {
				if strings.EqualFold(t, peftType) {
					return c.Name, nil
				}
				known = append(known, t)
			}
		}
	}
	sort.Strings(known)
	return "", fmt.Errorf("no adapter plugin reads peft_type %q (the plugins read: %s; lock file %s)", peftType, strings.Join(dedupe(known), ", "), r.m.opts.LockPath)
}

func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Offering returns the adapter components whose plugins list capability
// (rpc.CapResize, rpc.CapExtract), sorted.
func (r *Router) Offering(capability string) []string {
	var out []string
	for _, pn := range r.m.lock.Names() {
		for _, c := range r.m.lock.Plugins[pn].Components {
			if c.Kind == rpc.KindAdapter && c.Offers(capability) {
				out = append(out, c.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}
