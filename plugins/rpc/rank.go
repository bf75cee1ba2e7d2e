package rpc

import (
	"context"
	"fmt"
	"io"
	"sort"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/surgeon-ml/surgeon/plugins/proto/pluginv2"
)

// Rank surgery (Resize, Extract) over surgeon.plugin.v2: one bidirectional
// stream per module. The host sends a RankHeader and the module's tensors
// in chunks; the plugin answers with the new tensors in chunks and one
// closing RankStats.

var _ RankSurgeon = (*Client)(nil)

// rankStream is the part of both stream directions the helpers need.
type rankStream interface {
	Recv() (*pb.RankRequest, error)
	Send(*pb.RankResponse) error
	Context() context.Context
}

// receiveRank reads a rank request: header first, then tensor chunks.
func receiveRank(stream rankStream) (RankRequest, map[string]Tensor, error) {
	first, err := stream.Recv()
	if err != nil {
		return RankRequest{}, nil, err
	}
	h := first.GetHeader()
	if h == nil {
		return RankRequest{}, nil, status.Error(codes.InvalidArgument, "rank surgery: first message must be the header")
	}
	req := RankRequest{Adapter: h.Adapter, Layer: layerFromPB(h.Layer), Config: ConfigFromPB(h.Config), Weights: h.Weights}
	for _, p := range h.Parts {
		req.Parts = append(req.Parts, ConfigFromPB(p))
	}
	if sel := h.Select; sel != nil {
		req.Select = RankSelection{Method: sel.Method, Rank: int(sel.Rank), Value: sel.Value}
	}
	asm := newAssembler(maxInitElems)
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return RankRequest{}, nil, err
		}
		c := m.GetTensor()
		if c == nil {
			return RankRequest{}, nil, status.Error(codes.InvalidArgument, "rank surgery: header sent twice")
		}
		if err := asm.add(c); err != nil {
			return RankRequest{}, nil, toStatus(err)
		}
	}
	if err := asm.complete(); err != nil {
		return RankRequest{}, nil, toStatus(err)
	}
	return req, asm.tensors(), nil
}

// sendRank streams a result: tensors sorted by name, then the stats.
func sendRank(stream rankStream, r *RankResult) error {
	if r == nil {
		return status.Error(codes.Internal, "rank surgery: the plugin returned no result")
	}
	for _, n := range sortedNames(r.Tensors) {
		t := r.Tensors[n]
		if size(t.Shape) != len(t.Data) {
			return status.Errorf(codes.Internal, "rank surgery: tensor %q has %d values for shape %v", n, len(t.Data), t.Shape)
		}
		err := sendChunks(n, t.Shape, t.Data, func(c *pb.TensorChunk) error {
			return stream.Send(&pb.RankResponse{Msg: &pb.RankResponse_Tensor{Tensor: c}})
		})
		if err != nil {
			return err
		}
	}
	cfg, err := ConfigToPB(r.Config)
	if err != nil {
		return toStatus(fmt.Errorf("rank surgery: config: %w", err))
	}
	return stream.Send(&pb.RankResponse{Msg: &pb.RankResponse_Stats{Stats: &pb.RankStats{
		OldRank: int64(r.OldRank), NewRank: int64(r.NewRank), Energy: r.Energy,
		SingularValues: r.SingularValues, Config: cfg, Skipped: r.Skipped, Note: r.Note}}})
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (s *server) surgeon() (RankSurgeon, error) {
	rs, ok := s.impl.(RankSurgeon)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this plugin offers no rank surgery")
	}
	return rs, nil
}

func (s *server) Resize(stream pb.Plugin_ResizeServer) error {
	rs, err := s.surgeon()
	if err != nil {
		return err
	}
	req, ts, err := receiveRank(stream)
	if err != nil {
		return err
	}
	r, err := rs.Resize(stream.Context(), req, ts)
	if err != nil {
		return toStatus(err)
	}
	return sendRank(stream, r)
}

func (s *server) Concat(stream pb.Plugin_ConcatServer) error {
	rs, err := s.surgeon()
	if err != nil {
		return err
	}
	req, ts, err := receiveRank(stream)
	if err != nil {
		return err
	}
	if len(req.Parts) == 0 || len(req.Parts) != len(req.Weights) {
		return status.Errorf(codes.InvalidArgument, "concat: %d parts, %d weights", len(req.Parts), len(req.Weights))
	}
	r, err := rs.Concat(stream.Context(), req, ts)
	if err != nil {
		return toStatus(err)
	}
	return sendRank(stream, r)
}

func (s *server) Extract(stream pb.Plugin_ExtractServer) error {
	rs, err := s.surgeon()
	if err != nil {
		return err
	}
	req, ts, err := receiveRank(stream)
	if err != nil {
		return err
	}
	base, tuned := ts[ExtractBase], ts[ExtractTuned]
	if len(ts) != 2 || base.Data == nil || tuned.Data == nil {
		return status.Errorf(codes.InvalidArgument, "extract: want the tensors %q and %q, got %v", ExtractBase, ExtractTuned, sortedNames(ts))
	}
	r, err := rs.Extract(stream.Context(), req, base.Data, tuned.Data)
	if err != nil {
		return toStatus(err)
	}
	return sendRank(stream, r)
}

// clientRankStream is the client side of a rank-surgery stream.
type clientRankStream interface {
	Send(*pb.RankRequest) error
	Recv() (*pb.RankResponse, error)
	CloseSend() error
}

// rank runs one rank-surgery call: open, send header and tensors, collect
// the reply.
func (c *Client) rank(ctx context.Context, open func(context.Context) (clientRankStream, error), req RankRequest, tensors map[string]Tensor) (*RankResult, error) {
	cfg, err := ConfigToPB(req.Config)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := open(ctx)
	if err != nil {
		return nil, c.fromStatus(err)
	}
	var parts []*pb.Config
	for i, p := range req.Parts {
		pc, err := ConfigToPB(p)
		if err != nil {
			return nil, fmt.Errorf("part %d: %w", i, err)
		}
		parts = append(parts, pc)
	}
	hdr := &pb.RankRequest{Msg: &pb.RankRequest_Header{Header: &pb.RankHeader{
		Adapter: req.Adapter, Layer: layerToPB(req.Layer), Config: cfg, Parts: parts, Weights: req.Weights,
		Select: &pb.RankSelection{Method: req.Select.Method, Rank: int64(req.Select.Rank), Value: req.Select.Value}}}}
	if err := stream.Send(hdr); err != nil {
		return nil, c.fromStatus(recvRankErr(stream, err))
	}
	for _, n := range sortedNames(tensors) {
		t := tensors[n]
		if size(t.Shape) != len(t.Data) {
			return nil, fmt.Errorf("tensor %q: %d values for shape %v", n, len(t.Data), t.Shape)
		}
		err := sendChunks(n, t.Shape, t.Data, func(tc *pb.TensorChunk) error {
			return stream.Send(&pb.RankRequest{Msg: &pb.RankRequest_Tensor{Tensor: tc}})
		})
		if err != nil {
			return nil, c.fromStatus(recvRankErr(stream, err))
		}
	}
	if err := stream.CloseSend(); err != nil {
		return nil, c.fromStatus(err)
	}
	asm := newAssembler(maxInitElems)
	var stats *pb.RankStats
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, c.fromStatus(err)
		}
		if stats != nil {
			return nil, fmt.Errorf("rank surgery: message after the closing stats")
		}
		if tc := m.GetTensor(); tc != nil {
			if err := asm.add(tc); err != nil {
				return nil, err
			}
			continue
		}
		stats = m.GetStats()
	}
	if err := asm.complete(); err != nil {
		return nil, err
	}
	if stats == nil {
		return nil, fmt.Errorf("rank surgery: the reply ended without its stats")
	}
	rcfg := ConfigFromPB(stats.Config)
	return &RankResult{Tensors: asm.tensors(), Config: rcfg, OldRank: int(stats.OldRank), NewRank: int(stats.NewRank),
		Energy: stats.Energy, SingularValues: stats.SingularValues, Skipped: stats.Skipped, Note: stats.Note}, nil
}

// recvRankErr returns the stream's real error after a failed Send.
func recvRankErr(stream clientRankStream, err error) error {
	if err == io.EOF {
		if _, rerr := stream.Recv(); rerr != nil && rerr != io.EOF {
			return rerr
		}
	}
	return err
}

// Resize sends one module's parameters to the plugin and returns the
// resized module.
func (c *Client) Resize(ctx context.Context, req RankRequest, params map[string]Tensor) (*RankResult, error) {
	return c.rank(ctx, func(ctx context.Context) (clientRankStream, error) { return c.c.Resize(ctx) }, req, params)
}

// Concat sends one module's parameters from several adapters to the
// plugin and returns the combined module.
func (c *Client) Concat(ctx context.Context, req RankRequest, params map[string]Tensor) (*RankResult, error) {
	return c.rank(ctx, func(ctx context.Context) (clientRankStream, error) { return c.c.Concat(ctx) }, req, params)
}

// Extract sends one module's base and fine-tuned weights [out, in] to the
// plugin and returns the extracted adapter module.
func (c *Client) Extract(ctx context.Context, req RankRequest, base, tuned []float32) (*RankResult, error) {
	shape := []int{req.Layer.Out, req.Layer.In}
	ts := map[string]Tensor{ExtractBase: {Shape: shape, Data: base}, ExtractTuned: {Shape: shape, Data: tuned}}
	return c.rank(ctx, func(ctx context.Context) (clientRankStream, error) { return c.c.Extract(ctx) }, req, ts)
}
