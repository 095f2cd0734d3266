package oip

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiverml/quiver/serving"
	pb "github.com/quiverml/quiver/serving/oip/inferencepb"
)

// GRPCOptions configure NewGRPCServer. The zero value gives the defaults
// documented on each field. The largest message accepted is the gRPC
// server's own setting (grpc.MaxRecvMsgSize, 4 MiB by default); a larger
// one is refused by gRPC with ResourceExhausted.
type GRPCOptions struct {
	// Timeout bounds each inference request, within the client's deadline;
	// a request that runs out of time fails with DeadlineExceeded. Default
	// DefaultTimeout (30s); negative: only the client's deadline.
	Timeout time.Duration
	// Logger receives failed requests: server-side failures (Internal) at
	// error level, the rest at debug level. Default slog.Default().
	Logger *slog.Logger
	// ServerName and ServerVersion are what ServerMetadata reports; see
	// HandlerOptions.
	ServerName    string
	ServerVersion string
	// Ready, when set, answers ServerReady; see HandlerOptions.Ready.
	Ready func(ctx context.Context) bool
}

// GRPCServer implements the gRPC service of the Open Inference Protocol,
// inference.GRPCInferenceService, over a Repository. It is safe for
// concurrent use and keeps no resources.
type GRPCServer struct {
	pb.UnimplementedGRPCInferenceServiceServer
	core  *core
	stats *counters
}

var _ pb.GRPCInferenceServiceServer = (*GRPCServer)(nil)

// NewGRPCServer returns the service over repo; register it with
// inferencepb.RegisterGRPCInferenceServiceServer, or use RegisterGRPC.
func NewGRPCServer(repo Repository, opts GRPCOptions) *GRPCServer {
	return &GRPCServer{
		core:  newCore(repo, opts.Timeout, opts.Logger, opts.ServerName, opts.ServerVersion, opts.Ready),
		stats: newGRPCCounters(),
	}
}

// RegisterGRPC registers the service over repo on s and returns it (for its
// Stats and Collector). Authentication and other cross-cutting concerns go
// in s's interceptors (grpc.UnaryInterceptor).
func RegisterGRPC(s grpc.ServiceRegistrar, repo Repository, opts GRPCOptions) *GRPCServer {
	g := NewGRPCServer(repo, opts)
	pb.RegisterGRPCInferenceServiceServer(s, g)
	return g
}

// Stats returns a snapshot of the server's counters.
func (g *GRPCServer) Stats() Stats { return g.stats.stats() }

// Collector returns a prometheus.Collector exporting the server's counters,
// as Handler.Collector does, with code the gRPC code name and the default
// constant label {"protocol": "grpc"}.
func (g *GRPCServer) Collector(constLabels prometheus.Labels) prometheus.Collector {
	return g.stats.collector(constLabels)
}

// done counts a call and turns err into a gRPC status error.
func (g *GRPCServer) done(ctx context.Context, ep endpoint, err error) error {
	if err == nil {
		g.stats.add(ep, int(codes.OK))
		return nil
	}
	code := grpcCode(err)
	g.stats.add(ep, int(code))
	level := slog.LevelDebug
	if code == codes.Internal {
		level = slog.LevelError
	}
	g.core.log.Log(ctx, level, "oip: gRPC request failed", "endpoint", endpointNames[ep], "code", code.String(), "error", err)
	return status.Error(code, err.Error())
}

// ServerLive reports that the server answers.
func (g *GRPCServer) ServerLive(ctx context.Context, _ *pb.ServerLiveRequest) (*pb.ServerLiveResponse, error) {
	g.stats.add(epLive, int(codes.OK))
	return &pb.ServerLiveResponse{Live: true}, nil
}

// ServerReady reports whether the server is ready for inference; see
// GRPCOptions.Ready.
func (g *GRPCServer) ServerReady(ctx context.Context, _ *pb.ServerReadyRequest) (*pb.ServerReadyResponse, error) {
	g.stats.add(epReady, int(codes.OK))
	return &pb.ServerReadyResponse{Ready: g.core.ready(ctx)}, nil
}

// ModelReady reports whether a model is ready; an unknown model or version
// fails with NotFound.
func (g *GRPCServer) ModelReady(ctx context.Context, req *pb.ModelReadyRequest) (*pb.ModelReadyResponse, error) {
	md, err := g.core.repo.Metadata(ctx, req.GetName(), req.GetVersion())
	if err != nil {
		return nil, g.done(ctx, epModelReady, err)
	}
	g.done(ctx, epModelReady, nil)
	return &pb.ModelReadyResponse{Ready: md.Ready}, nil
}

// ServerMetadata reports the server's name, version and extensions.
func (g *GRPCServer) ServerMetadata(ctx context.Context, _ *pb.ServerMetadataRequest) (*pb.ServerMetadataResponse, error) {
	g.stats.add(epServerMetadata, int(codes.OK))
	return &pb.ServerMetadataResponse{Name: g.core.name, Version: g.core.version, Extensions: extensions}, nil
}

// ModelMetadata describes a model: its versions, platform, inputs and
// tensor outputs.
func (g *GRPCServer) ModelMetadata(ctx context.Context, req *pb.ModelMetadataRequest) (*pb.ModelMetadataResponse, error) {
	md, err := g.core.metadata(ctx, req.GetName(), req.GetVersion())
	if err != nil {
		return nil, g.done(ctx, epModelMetadata, err)
	}
	tensors := func(ios []serving.IOInfo) []*pb.ModelMetadataResponse_TensorMetadata {
		out := make([]*pb.ModelMetadataResponse_TensorMetadata, len(ios))
		for i, io := range ios {
			out[i] = &pb.ModelMetadataResponse_TensorMetadata{Name: io.Name, Datatype: metadataDatatype(io.ElementType), Shape: io.Shape}
		}
		return out
	}
	g.done(ctx, epModelMetadata, nil)
	return &pb.ModelMetadataResponse{Name: md.name, Versions: md.md.Versions, Platform: md.md.Platform,
		Inputs: tensors(md.inputs), Outputs: tensors(md.outputs)}, nil
}

// ModelInfer runs an inference request. Inputs come as typed contents or,
// for every input at once, as raw_input_contents (FP16 and BF16 only so);
// the answer uses raw_output_contents when the request used raw inputs or
// an output is FP16 or BF16, typed contents otherwise.
func (g *GRPCServer) ModelInfer(ctx context.Context, req *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	start := time.Now()
	ir, raw, err := decodeGRPCRequest(req)
	if err != nil {
		return nil, g.done(ctx, epInfer, g.core.badRequest(ctx, req.GetModelName(), req.GetModelVersion(), err))
	}
	res, err := g.core.infer(ctx, req.GetModelName(), req.GetModelVersion(), ir)
	if err != nil {
		return nil, g.done(ctx, epInfer, err)
	}
	out := &pb.ModelInferResponse{ModelName: res.model, ModelVersion: res.version, Id: res.id,
		Outputs: make([]*pb.ModelInferResponse_InferOutputTensor, len(res.outputs))}
	for _, o := range res.outputs {
		if t := o.tensor.ElementType(); t == serving.Float16 || t == serving.BFloat16 {
			raw = true
		}
	}
	if raw {
		out.RawOutputContents = make([][]byte, len(res.outputs))
	}
	for i, o := range res.outputs {
		out.Outputs[i] = &pb.ModelInferResponse_InferOutputTensor{Name: o.name,
			Datatype: Datatype(o.tensor.ElementType()), Shape: o.tensor.Shape}
		if raw {
			out.RawOutputContents[i] = appendRaw(make([]byte, 0, rawLen(o.tensor)), o.tensor)
		} else {
			out.Outputs[i].Contents = encodeContents(o.tensor)
		}
	}
	g.stats.observe(start)
	g.done(ctx, epInfer, nil)
	return out, nil
}

// decodeGRPCRequest turns a ModelInferRequest into an inferRequest; raw
// reports whether its inputs came as raw_input_contents.
func decodeGRPCRequest(req *pb.ModelInferRequest) (*inferRequest, bool, error) {
	if err := checkGRPCParameters("the request", req.GetParameters()); err != nil {
		return nil, false, err
	}
	ins := req.GetInputs()
	if len(ins) == 0 {
		return nil, false, fmt.Errorf("%w: no inputs", ErrInvalidRequest)
	}
	raws := req.GetRawInputContents()
	raw := len(raws) > 0
	if raw && len(raws) != len(ins) {
		return nil, false, fmt.Errorf("%w: %d raw_input_contents for %d inputs; want one per input, in input order", ErrInvalidRequest, len(raws), len(ins))
	}
	ir := &inferRequest{id: req.GetId(), inputs: make(map[string]serving.Tensor, len(ins))}
	for i, in := range ins {
		name := in.GetName()
		if name == "" {
			return nil, false, fmt.Errorf("%w: input %d has no name", ErrInvalidRequest, i)
		}
		if _, dup := ir.inputs[name]; dup {
			return nil, false, fmt.Errorf("%w: input %q appears twice", ErrInvalidRequest, name)
		}
		t, err := parseDatatype("input", name, in.GetDatatype())
		if err != nil {
			return nil, false, err
		}
		if err := checkGRPCParameters(fmt.Sprintf("input %q", name), in.GetParameters()); err != nil {
			return nil, false, err
		}
		var tensor serving.Tensor
		if raw {
			if in.GetContents() != nil {
				return nil, false, fmt.Errorf("%w: input %q has contents, but the request uses raw_input_contents; want one or the other for every input", ErrInvalidRequest, name)
			}
			tensor, err = decodeRaw(name, t, in.GetShape(), raws[i])
		} else {
			tensor, err = decodeContents(name, t, in.GetShape(), in.GetContents())
		}
		if err != nil {
			return nil, false, err
		}
		ir.inputs[name] = tensor
	}
	if outs := req.GetOutputs(); len(outs) > 0 {
		ir.outputs = make([]outputRequest, 0, len(outs))
		for i, o := range outs {
			if o.GetName() == "" {
				return nil, false, fmt.Errorf("%w: requested output %d has no name", ErrInvalidRequest, i)
			}
			if err := checkGRPCParameters(fmt.Sprintf("output %q", o.GetName()), o.GetParameters()); err != nil {
				return nil, false, err
			}
			ir.outputs = append(ir.outputs, outputRequest{name: o.GetName()})
		}
		if err := checkOutputNames(ir.outputs); err != nil {
			return nil, false, err
		}
	}
	return ir, raw, nil
}

func checkGRPCParameters(where string, p map[string]*pb.InferParameter) error {
	if _, ok := p["classification"]; ok {
		return fmt.Errorf("%w: %s asks for classification, which this server does not implement; request the raw outputs", ErrUnsupported, where)
	}
	if _, ok := p["shared_memory_region"]; ok {
		return fmt.Errorf("%w: %s uses shared memory, which this server does not implement; send the data in the request", ErrUnsupported, where)
	}
	return nil
}

// contentsField names the InferTensorContents field of each datatype.
func contentsField(t serving.ElementType) string {
	switch t {
	case serving.Bool:
		return "bool_contents"
	case serving.Int8, serving.Int16, serving.Int32:
		return "int_contents"
	case serving.Int64:
		return "int64_contents"
	case serving.Uint8, serving.Uint16, serving.Uint32:
		return "uint_contents"
	case serving.Uint64:
		return "uint64_contents"
	case serving.Float32:
		return "fp32_contents"
	case serving.Float64:
		return "fp64_contents"
	case serving.String:
		return "bytes_contents"
	}
	return ""
}

// decodeContents decodes an input's typed contents.
func decodeContents(name string, t serving.ElementType, shape []int64, c *pb.InferTensorContents) (serving.Tensor, error) {
	field := contentsField(t)
	if field == "" {
		return serving.Tensor{}, fmt.Errorf("%w: input %q: %s data has no typed contents; send it in raw_input_contents", ErrInvalidRequest, name, Datatype(t))
	}
	lens := map[string]int{
		"bool_contents": len(c.GetBoolContents()), "int_contents": len(c.GetIntContents()),
		"int64_contents": len(c.GetInt64Contents()), "uint_contents": len(c.GetUintContents()),
		"uint64_contents": len(c.GetUint64Contents()), "fp32_contents": len(c.GetFp32Contents()),
		"fp64_contents": len(c.GetFp64Contents()), "bytes_contents": len(c.GetBytesContents()),
	}
	for f, n := range lens {
		if f != field && n > 0 {
			return serving.Tensor{}, fmt.Errorf("%w: input %q: %s data in %s; want %s", ErrInvalidRequest, name, Datatype(t), f, field)
		}
	}
	count := lens[field]
	if n, err := checkShape(name, shape, count); err != nil || n != count {
		if err := checkDims(name, shape); err != nil {
			return serving.Tensor{}, err
		}
		return serving.Tensor{}, fmt.Errorf("%w: input %q: %s holds %d elements, shape %v needs %s", ErrInvalidRequest, name, field, count, shape, countString(shape))
	}
	rangeErr := func(i int, v any) error {
		return fmt.Errorf("%w: input %q: element %d is %v, out of range for %s", ErrInvalidRequest, name, i, v, Datatype(t))
	}
	var data any
	switch t {
	case serving.Bool:
		data = c.GetBoolContents()
	case serving.Int8, serving.Int16, serving.Int32:
		lo, hi := int32(math.MinInt32), int32(math.MaxInt32)
		switch t {
		case serving.Int8:
			lo, hi = math.MinInt8, math.MaxInt8
		case serving.Int16:
			lo, hi = math.MinInt16, math.MaxInt16
		}
		src := c.GetIntContents()
		for i, v := range src {
			if v < lo || v > hi {
				return serving.Tensor{}, rangeErr(i, v)
			}
		}
		switch t {
		case serving.Int8:
			data = convert[int8](src)
		case serving.Int16:
			data = convert[int16](src)
		default:
			data = src
		}
	case serving.Uint8, serving.Uint16, serving.Uint32:
		hi := uint32(math.MaxUint32)
		switch t {
		case serving.Uint8:
			hi = math.MaxUint8
		case serving.Uint16:
			hi = math.MaxUint16
		}
		src := c.GetUintContents()
		for i, v := range src {
			if v > hi {
				return serving.Tensor{}, rangeErr(i, v)
			}
		}
		switch t {
		case serving.Uint8:
			data = convert[uint8](src)
		case serving.Uint16:
			data = convert[uint16](src)
		default:
			data = src
		}
	case serving.Int64:
		data = c.GetInt64Contents()
	case serving.Uint64:
		data = c.GetUint64Contents()
	case serving.Float32:
		data = c.GetFp32Contents()
	case serving.Float64:
		data = c.GetFp64Contents()
	case serving.String:
		src := c.GetBytesContents()
		d := make([]string, len(src))
		for i, b := range src {
			d[i] = string(b)
		}
		data = d
	}
	if data == nil || shapeCount(shape) == 0 {
		// A typed nil slice for an empty tensor: the element type must
		// survive.
		return serving.ZeroTensor(t, shape), nil
	}
	return serving.Tensor{Shape: shape, Data: data}, nil
}

func convert[T, S int8 | int16 | int32 | uint8 | uint16 | uint32](src []S) []T {
	d := make([]T, len(src))
	for i, v := range src {
		d[i] = T(v)
	}
	return d
}

// encodeContents encodes an output as typed contents. FP16 and BF16 have
// none; callers answer those raw.
func encodeContents(t serving.Tensor) *pb.InferTensorContents {
	c := &pb.InferTensorContents{}
	switch d := t.Data.(type) {
	case []bool:
		c.BoolContents = d
	case []int8:
		c.IntContents = convert[int32](d)
	case []int16:
		c.IntContents = convert[int32](d)
	case []int32:
		c.IntContents = d
	case []int64:
		c.Int64Contents = d
	case []uint8:
		c.UintContents = convert[uint32](d)
	case []uint16:
		c.UintContents = convert[uint32](d)
	case []uint32:
		c.UintContents = d
	case []uint64:
		c.Uint64Contents = d
	case []float32:
		c.Fp32Contents = d
	case []float64:
		c.Fp64Contents = d
	case []string:
		c.BytesContents = make([][]byte, len(d))
		for i, s := range d {
			c.BytesContents[i] = []byte(s)
		}
	}
	return c
}
