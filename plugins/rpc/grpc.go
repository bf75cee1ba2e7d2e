package rpc

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/surgeon-ml/surgeon/plugins/program"
	pb "github.com/surgeon-ml/surgeon/plugins/proto/pluginv2"
)

// ProtocolVersion is the plugin protocol version this build speaks.
const ProtocolVersion = 2

// PluginName is the name of the single plugin in the plugin set.
const PluginName = "surgeon"

// Handshake is shared by host and plugins. The cookie is a UX check (a
// plugin binary run by hand explains itself), not security.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "SURGEON_PLUGIN",
	MagicCookieValue: "7d1c2b9e-surgeon-plugin",
}

// VersionedPlugins returns the plugin sets per protocol version. impl is nil
// on the host side.
func VersionedPlugins(impl Interface) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &GRPCPlugin{Impl: impl}},
	}
}

// GRPCPlugin is the go-plugin glue for the protocol.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Interface
}

// GRPCServer registers the plugin's implementation.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterPluginServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient returns an Interface talking to the plugin. ctx is cancelled
// when the plugin process exits.
func (p *GRPCPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Client{c: pb.NewPluginClient(c), exited: ctx}, nil
}

// chunkElems is the number of float32 values per streamed chunk (1 MiB).
const chunkElems = 1 << 18

// ---- conversions ----

func programToPB(p *program.Program) *pb.Program {
	if p == nil {
		return nil
	}
	out := &pb.Program{Outputs: map[string]int32{}}
	for _, n := range p.Nodes {
		args := make([]int32, len(n.Args))
		for i, a := range n.Args {
			args[i] = int32(a)
		}
		out.Nodes = append(out.Nodes, &pb.Node{Op: string(n.Op), Args: args, Name: n.Name, Value: n.Value, Value2: n.Value2})
	}
	for k, v := range p.Outputs {
		out.Outputs[k] = int32(v)
	}
	return out
}

func programFromPB(p *pb.Program) *program.Program {
	if p == nil {
		return nil
	}
	out := &program.Program{Outputs: map[string]int{}}
	for _, n := range p.Nodes {
		args := make([]int, len(n.Args))
		for i, a := range n.Args {
			args[i] = int(a)
		}
		out.Nodes = append(out.Nodes, program.Node{Op: program.Op(n.Op), Args: args, Name: n.Name, Value: n.Value, Value2: n.Value2})
	}
	for k, v := range p.Outputs {
		out.Outputs[k] = int(v)
	}
	return out
}

func layerToPB(l Layer) *pb.Layer {
	return &pb.Layer{Path: l.Path, Kind: l.Kind, InFeatures: int64(l.In), OutFeatures: int64(l.Out), HasBias: l.HasBias, Dtype: l.DType}
}

func layerFromPB(l *pb.Layer) Layer {
	if l == nil {
		return Layer{}
	}
	return Layer{Path: l.Path, Kind: l.Kind, In: int(l.InFeatures), Out: int(l.OutFeatures), HasBias: l.HasBias, DType: l.Dtype}
}

func ints64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, v := range s {
		out[i] = int64(v)
	}
	return out
}

func ints(s []int64) []int {
	out := make([]int, len(s))
	for i, v := range s {
		out[i] = int(v)
	}
	return out
}

func encodeF32(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// sendChunks streams a tensor in chunks through send.
func sendChunks(name string, shape []int, v []float32, send func(*pb.TensorChunk) error) error {
	if len(v) == 0 {
		return send(&pb.TensorChunk{Name: name, Shape: ints64(shape), Last: true})
	}
	for off := 0; off < len(v); off += chunkElems {
		end := min(off+chunkElems, len(v))
		c := &pb.TensorChunk{Name: name, Data: encodeF32(v[off:end]), Offset: int64(off), Last: end == len(v)}
		if off == 0 {
			c.Shape = ints64(shape)
		}
		if err := send(c); err != nil {
			return err
		}
	}
	return nil
}

// assembler rebuilds tensors from chunks.
type assembler struct {
	vals   map[string][]float32
	shapes map[string][]int
	done   map[string]bool
	limit  int
}

func newAssembler(limit int) *assembler {
	return &assembler{vals: map[string][]float32{}, shapes: map[string][]int{}, done: map[string]bool{}, limit: limit}
}

// tensors returns the assembled tensors with their shapes.
func (a *assembler) tensors() map[string]Tensor {
	out := make(map[string]Tensor, len(a.vals))
	for n, v := range a.vals {
		out[n] = Tensor{Shape: a.shapes[n], Data: v}
	}
	return out
}

func (a *assembler) add(c *pb.TensorChunk) error {
	if a.done[c.Name] {
		return fmt.Errorf("tensor %q: chunk after its last one", c.Name)
	}
	v, ok := a.vals[c.Name]
	if !ok {
		n := 1
		for _, d := range c.Shape {
			if d < 0 || d > int64(a.limit) || (d > 0 && n > a.limit/int(d)) {
				return fmt.Errorf("tensor %q: shape %v too large", c.Name, c.Shape)
			}
			n *= int(d)
		}
		v = make([]float32, n)
		a.vals[c.Name] = v
		a.shapes[c.Name] = ints(c.Shape)
	}
	if len(c.Data)%4 != 0 || c.Offset < 0 || int(c.Offset)+len(c.Data)/4 > len(v) {
		return fmt.Errorf("tensor %q: chunk at %d of %d bytes outside its %d values", c.Name, c.Offset, len(c.Data), len(v))
	}
	for i := 0; i < len(c.Data)/4; i++ {
		v[int(c.Offset)+i] = math.Float32frombits(binary.LittleEndian.Uint32(c.Data[4*i:]))
	}
	if c.Last {
		a.done[c.Name] = true
	}
	return nil
}

func (a *assembler) complete() error {
	for name := range a.vals {
		if !a.done[name] {
			return fmt.Errorf("tensor %q: stream ended before its last chunk", name)
		}
	}
	return nil
}

// ---- server ----

type server struct {
	pb.UnimplementedPluginServer
	impl Interface
}

// toStatus turns a plugin error into a gRPC status, keeping its message.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, err.Error())
	}
	if errors.Is(err, ErrUnsupported) {
		return status.Error(codes.Unimplemented, err.Error())
	}
	return status.Error(codes.InvalidArgument, err.Error())
}

func (s *server) Describe(ctx context.Context, _ *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	d, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.DescribeResponse{Name: d.Name, Version: d.Version}
	for _, c := range d.Components {
		pc := &pb.Component{Name: c.Name, Doc: c.Doc, FromFormats: c.From, ToFormats: c.To, Capabilities: c.Capabilities, PeftTypes: c.PEFTTypes}
		switch c.Kind {
		case KindAdapter:
			pc.Kind = pb.ComponentKind_COMPONENT_KIND_ADAPTER
		case KindConverter:
			pc.Kind = pb.ComponentKind_COMPONENT_KIND_CONVERTER
		}
		for _, k := range c.Config {
			def, err := ValueToPB(k.Default)
			if err != nil {
				return nil, toStatus(fmt.Errorf("component %s key %s: default: %w", c.Name, k.Name, err))
			}
			pc.Config = append(pc.Config, &pb.ConfigKey{Name: k.Name, Type: k.Type, Default: def, Doc: k.Doc})
		}
		out.Components = append(out.Components, pc)
	}
	return out, nil
}

func (s *server) Plan(ctx context.Context, req *pb.PlanRequest) (*pb.PlanResponse, error) {
	p, err := s.impl.Plan(ctx, PlanRequest{Adapter: req.Adapter, Layer: layerFromPB(req.Layer), Config: ConfigFromPB(req.Config)})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.PlanResponse{Forward: programToPB(p.Forward), Merge: programToPB(p.Merge), NeedsInit: p.NeedsInit, ReplacesBase: p.ReplacesBase,
		Summary: &pb.PlanSummary{Rank: int64(p.Summary.Rank), Scale: p.Summary.Scale, Alpha: p.Summary.Alpha, Note: p.Summary.Note}}
	for _, ps := range p.Params {
		out.Params = append(out.Params, &pb.ParamSpec{Name: ps.Name, Shape: ints64(ps.Shape), Trainable: ps.Trainable,
			Init: &pb.InitRule{Rule: ps.Init.Rule, Std: ps.Init.Std, A: ps.Init.A, Value: ps.Init.Value}})
	}
	return out, nil
}

// maxInitElems bounds a streamed base weight (4 GiB of float32).
const maxInitElems = 1 << 30

func (s *server) Init(stream pb.Plugin_InitServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "init: first message must be the header")
	}
	cfg := ConfigFromPB(h.Config)
	asm := newAssembler(maxInitElems)
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		c := m.GetWeight()
		if c == nil {
			return status.Error(codes.InvalidArgument, "init: header sent twice")
		}
		if err := asm.add(c); err != nil {
			return toStatus(err)
		}
	}
	if err := asm.complete(); err != nil {
		return toStatus(err)
	}
	req := InitRequest{PlanRequest: PlanRequest{Adapter: h.Adapter, Layer: layerFromPB(h.Layer), Config: cfg}, Seed: h.Seed}
	vals, err := s.impl.Init(stream.Context(), req, asm.vals["weight"])
	if err != nil {
		return toStatus(err)
	}
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := sendChunks(n, []int{len(vals[n])}, vals[n], stream.Send); err != nil {
			return err
		}
	}
	return nil
}

func (s *server) Convert(req *pb.ConvertRequest, stream pb.Plugin_ConvertServer) error {
	var sendErr error
	err := s.impl.Convert(stream.Context(), ConvertRequest{Converter: req.Converter, Src: req.Src, Dst: req.Dst, To: req.To, Options: ConfigFromPB(req.Options)},
		func(p Progress) {
			if sendErr == nil {
				sendErr = stream.Send(&pb.ConvertProgress{Done: p.Done, Total: p.Total, Message: p.Message})
			}
		})
	if err != nil {
		return toStatus(err)
	}
	return sendErr
}

// ---- client ----

// Client is the host's view of a plugin.
type Client struct {
	c      pb.PluginClient
	exited context.Context
}

var _ Interface = (*Client)(nil)

// ErrPluginExited reports that the plugin process is gone (it crashed, was
// killed or exited).
var ErrPluginExited = errors.New("plugin process exited")

// fromStatus turns a gRPC error into a plain error.
func (c *Client) fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("%w: %s", ErrPluginExited, st.Message())
	case codes.Canceled:
		if c.exited != nil && c.exited.Err() != nil {
			return fmt.Errorf("%w: %s", ErrPluginExited, st.Message())
		}
		return fmt.Errorf("%w: %s", context.Canceled, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s", context.DeadlineExceeded, st.Message())
	case codes.Unimplemented:
		return unsupportedError(st.Message())
	}
	return errors.New(st.Message())
}

// unsupportedError is a plugin's "not implemented" answer; it matches
// ErrUnsupported with errors.Is and keeps the plugin's message.
type unsupportedError string

func (e unsupportedError) Error() string        { return string(e) }
func (e unsupportedError) Is(target error) bool { return target == ErrUnsupported }

// Describe asks what the plugin provides.
func (c *Client) Describe(ctx context.Context) (*Description, error) {
	r, err := c.c.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return nil, c.fromStatus(err)
	}
	d := &Description{Name: r.Name, Version: r.Version}
	for _, pc := range r.Components {
		comp := Component{Name: pc.Name, Doc: pc.Doc, From: pc.FromFormats, To: pc.ToFormats, Capabilities: pc.Capabilities, PEFTTypes: pc.PeftTypes}
		switch pc.Kind {
		case pb.ComponentKind_COMPONENT_KIND_ADAPTER:
			comp.Kind = KindAdapter
		case pb.ComponentKind_COMPONENT_KIND_CONVERTER:
			comp.Kind = KindConverter
		default:
			return nil, fmt.Errorf("component %q: unknown kind %v", pc.Name, pc.Kind)
		}
		for _, k := range pc.Config {
			comp.Config = append(comp.Config, ConfigKey{Name: k.Name, Type: k.Type, Default: ValueFromPB(k.Default), Doc: k.Doc})
		}
		d.Components = append(d.Components, comp)
	}
	return d, nil
}

// Plan asks an adapter for a layer's plan.
func (c *Client) Plan(ctx context.Context, req PlanRequest) (*Plan, error) {
	cfg, err := ConfigToPB(req.Config)
	if err != nil {
		return nil, err
	}
	r, err := c.c.Plan(ctx, &pb.PlanRequest{Adapter: req.Adapter, Layer: layerToPB(req.Layer), Config: cfg})
	if err != nil {
		return nil, c.fromStatus(err)
	}
	p := &Plan{Forward: programFromPB(r.Forward), Merge: programFromPB(r.Merge), NeedsInit: r.NeedsInit, ReplacesBase: r.ReplacesBase}
	if sm := r.Summary; sm != nil {
		p.Summary = Summary{Rank: int(sm.Rank), Scale: sm.Scale, Alpha: sm.Alpha, Note: sm.Note}
	}
	for _, ps := range r.Params {
		rule := InitRule{}
		if ps.Init != nil {
			rule = InitRule{Rule: ps.Init.Rule, Std: ps.Init.Std, A: ps.Init.A, Value: ps.Init.Value}
		}
		p.Params = append(p.Params, ParamSpec{Name: ps.Name, Shape: ints(ps.Shape), Trainable: ps.Trainable, Init: rule})
	}
	return p, nil
}

// Init streams the base weight to the plugin and returns computed values.
func (c *Client) Init(ctx context.Context, req InitRequest, base []float32) (map[string][]float32, error) {
	cfg, err := ConfigToPB(req.Config)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.c.Init(ctx)
	if err != nil {
		return nil, c.fromStatus(err)
	}
	hdr := &pb.InitMessage{Msg: &pb.InitMessage_Header{Header: &pb.InitHeader{Adapter: req.Adapter, Layer: layerToPB(req.Layer), Config: cfg, Seed: req.Seed}}}
	if err := stream.Send(hdr); err != nil {
		return nil, c.fromStatus(recvErr(stream, err))
	}
	err = sendChunks("weight", []int{req.Layer.Out, req.Layer.In}, base, func(tc *pb.TensorChunk) error {
		return stream.Send(&pb.InitMessage{Msg: &pb.InitMessage_Weight{Weight: tc}})
	})
	if err != nil {
		return nil, c.fromStatus(recvErr(stream, err))
	}
	if err := stream.CloseSend(); err != nil {
		return nil, c.fromStatus(err)
	}
	asm := newAssembler(maxInitElems)
	for {
		tc, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, c.fromStatus(err)
		}
		if err := asm.add(tc); err != nil {
			return nil, err
		}
	}
	if err := asm.complete(); err != nil {
		return nil, err
	}
	return asm.vals, nil
}

// recvErr returns the stream's real error after a failed Send (Send
// reports io.EOF when the server has already failed).
func recvErr(stream pb.Plugin_InitClient, err error) error {
	if err == io.EOF {
		if _, rerr := stream.Recv(); rerr != nil && rerr != io.EOF {
			return rerr
		}
	}
	return err
}

// Convert runs a converter, calling progress for each report.
func (c *Client) Convert(ctx context.Context, req ConvertRequest, progress func(Progress)) error {
	opts, err := ConfigToPB(req.Options)
	if err != nil {
		return fmt.Errorf("options: %w", err)
	}
	stream, err := c.c.Convert(ctx, &pb.ConvertRequest{Converter: req.Converter, Src: req.Src, Dst: req.Dst, To: req.To, Options: opts})
	if err != nil {
		return c.fromStatus(err)
	}
	for {
		p, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return c.fromStatus(err)
		}
		if progress != nil {
			progress(Progress{Done: p.Done, Total: p.Total, Message: p.Message})
		}
	}
}

func infosToPB(ts []TensorInfo) []*pb.TensorInfo {
	out := make([]*pb.TensorInfo, len(ts))
	for i, t := range ts {
		out[i] = &pb.TensorInfo{Name: t.Name, Shape: ints64(t.Shape)}
	}
	return out
}

func infosFromPB(ts []*pb.TensorInfo) []TensorInfo {
	out := make([]TensorInfo, len(ts))
	for i, t := range ts {
		out[i] = TensorInfo{Name: t.Name, Shape: ints(t.Shape)}
	}
	return out
}

func (s *server) SaveAdapter(ctx context.Context, req *pb.SaveRequest) (*pb.SaveResponse, error) {
	sr := SaveRequest{Adapter: req.Adapter}
	for _, m := range req.Modules {
		sr.Modules = append(sr.Modules, SavedModule{Path: m.Path, Layer: layerFromPB(m.Layer), Config: ConfigFromPB(m.Config), Params: infosFromPB(m.Params)})
	}
	cfg, err := s.impl.SaveAdapter(ctx, sr)
	if err != nil {
		return nil, toStatus(err)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, toStatus(fmt.Errorf("adapter %s: adapter_config.json: %w", req.Adapter, err))
	}
	return &pb.SaveResponse{ConfigJson: string(raw)}, nil
}

func (s *server) LoadAdapter(ctx context.Context, req *pb.LoadRequest) (*pb.LoadResponse, error) {
	var cfg map[string]any
	if err := json.Unmarshal([]byte(req.ConfigJson), &cfg); err != nil {
		return nil, toStatus(fmt.Errorf("adapter_config.json is not a JSON object: %w", err))
	}
	mods, err := s.impl.LoadAdapter(ctx, LoadRequest{Adapter: req.Adapter, Config: cfg, Tensors: infosFromPB(req.Tensors)})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.LoadResponse{}
	for _, m := range mods {
		c, err := ConfigToPB(m.Config)
		if err != nil {
			return nil, toStatus(fmt.Errorf("module %s: %w", m.Path, err))
		}
		out.Modules = append(out.Modules, &pb.LoadedModule{Path: m.Path, Adapter: m.Adapter, Config: c, Params: m.Params})
	}
	return out, nil
}

// SaveAdapter asks an adapter how the modules of one run are saved.
func (c *Client) SaveAdapter(ctx context.Context, req SaveRequest) (map[string]any, error) {
	pr := &pb.SaveRequest{Adapter: req.Adapter}
	for _, m := range req.Modules {
		cfg, err := ConfigToPB(m.Config)
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", m.Path, err)
		}
		pr.Modules = append(pr.Modules, &pb.SavedModule{Path: m.Path, Layer: layerToPB(m.Layer), Config: cfg, Params: infosToPB(m.Params)})
	}
	r, err := c.c.SaveAdapter(ctx, pr)
	if err != nil {
		return nil, c.fromStatus(err)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(r.ConfigJson), &out); err != nil || out == nil {
		return nil, fmt.Errorf("adapter %s returned an adapter_config.json that is not a JSON object", req.Adapter)
	}
	return out, nil
}

// LoadAdapter asks an adapter to read a saved PEFT folder back.
func (c *Client) LoadAdapter(ctx context.Context, req LoadRequest) ([]LoadedModule, error) {
	raw, err := json.Marshal(req.Config)
	if err != nil {
		return nil, fmt.Errorf("adapter_config.json: %w", err)
	}
	r, err := c.c.LoadAdapter(ctx, &pb.LoadRequest{Adapter: req.Adapter, ConfigJson: string(raw), Tensors: infosToPB(req.Tensors)})
	if err != nil {
		return nil, c.fromStatus(err)
	}
	out := make([]LoadedModule, 0, len(r.Modules))
	for _, m := range r.Modules {
		out = append(out, LoadedModule{Path: m.Path, Adapter: m.Adapter, Config: ConfigFromPB(m.Config), Params: m.Params})
	}
	return out, nil
}
