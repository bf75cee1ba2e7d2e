package host

import (
	"context"
	"fmt"
	"strings"

	"github.com/surgeon-ml/surgeon/plugins/rpc"
)

// offers checks that the plugin's adapter offers a capability, naming the
// plugin and what its adapters do offer when it does not.
func (p *Plugin) offers(adapter, capability string) error {
	var with []string
	for _, c := range p.Desc.Components {
		if c.Kind != rpc.KindAdapter {
			continue
		}
		if c.Name == adapter && c.Offers(capability) {
			return nil
		}
		if c.Offers(capability) {
			with = append(with, c.Name)
		}
	}
	others := "none of its adapters does"
	if len(with) > 0 {
		others = "its adapters with it: " + strings.Join(with, ", ")
	}
	return fmt.Errorf("plugin %s (%s): adapter %s does not offer %s (rank surgery; %s): %w", p.Name, p.Path, adapter, capability, others, rpc.ErrUnsupported)
}

func (p *Plugin) surgeon() (rpc.RankSurgeon, error) {
	rs, ok := p.rpc.(rpc.RankSurgeon)
	if !ok {
		return nil, fmt.Errorf("plugin %s: its client offers no rank surgery: %w", p.Name, rpc.ErrUnsupported)
	}
	return rs, nil
}

// Resize reduces the rank of one module with the plugin's adapter. It is
// bounded by the call timeout (the work is small: thin factors).
func (p *Plugin) Resize(ctx context.Context, req rpc.RankRequest, params map[string]rpc.Tensor) (*rpc.RankResult, error) {
	if err := p.offers(req.Adapter, rpc.CapResize); err != nil {
		return nil, err
	}
	rs, err := p.surgeon()
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	r, err := rs.Resize(ctx, req, params)
	return r, p.wrap(err)
}

// Extract computes one module's adapter from its base and fine-tuned
// weights with the plugin's adapter. There is no call timeout: the SVD of
// a large dense weight takes long; cancel ctx to stop.
func (p *Plugin) Extract(ctx context.Context, req rpc.RankRequest, base, tuned []float32) (*rpc.RankResult, error) {
	if err := p.offers(req.Adapter, rpc.CapExtract); err != nil {
		return nil, err
	}
	rs, err := p.surgeon()
	if err != nil {
		return nil, err
	}
	r, err := rs.Extract(ctx, req, base, tuned)
	return r, p.wrap(err)
}

// Concat combines one module of several adapters with the plugin's
// adapter, bounded by the call timeout (thin factors).
func (p *Plugin) Concat(ctx context.Context, req rpc.RankRequest, params map[string]rpc.Tensor) (*rpc.RankResult, error) {
	if err := p.offers(req.Adapter, rpc.CapConcat); err != nil {
		return nil, err
	}
	rs, err := p.surgeon()
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	r, err := rs.Concat(ctx, req, params)
	return r, p.wrap(err)
}

var _ rpc.RankSurgeon = (*Router)(nil)

// Concat combines one module with the plugin that provides req.Adapter.
func (r *Router) Concat(ctx context.Context, req rpc.RankRequest, params map[string]rpc.Tensor) (*rpc.RankResult, error) {
	p, err := r.m.Find(ctx, rpc.KindAdapter, req.Adapter)
	if err != nil {
		return nil, err
	}
	return p.Concat(ctx, req, params)
}

// Resize resizes one module with the plugin that provides req.Adapter.
func (r *Router) Resize(ctx context.Context, req rpc.RankRequest, params map[string]rpc.Tensor) (*rpc.RankResult, error) {
	p, err := r.m.Find(ctx, rpc.KindAdapter, req.Adapter)
	if err != nil {
		return nil, err
	}
	return p.Resize(ctx, req, params)
}

// Extract extracts one module with the plugin that provides req.Adapter.
func (r *Router) Extract(ctx context.Context, req rpc.RankRequest, base, tuned []float32) (*rpc.RankResult, error) {
	p, err := r.m.Find(ctx, rpc.KindAdapter, req.Adapter)
	if err != nil {
		return nil, err
	}
	return p.Extract(ctx, req, base, tuned)
}
