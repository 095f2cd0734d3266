package oip_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/oip"
	pb "github.com/quiverml/quiver/serving/oip/inferencepb"
	"github.com/quiverml/quiver/serving/servingtest"
)

// serveGRPC starts the gRPC service over repo on a loopback port and returns
// a client connected to it.
func serveGRPC(t testing.TB, repo oip.Repository, opts oip.GRPCOptions, sopts ...grpc.ServerOption) (pb.GRPCInferenceServiceClient, *oip.GRPCServer) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := grpc.NewServer(sopts...)
	g := oip.RegisterGRPC(s, repo, opts)
	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		require.NoError(t, <-served)
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return pb.NewGRPCInferenceServiceClient(conn), g
}

func requireCode(t testing.TB, err error, code codes.Code, msg string) {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok, "not a status error: %v", err)
	require.Equal(t, code, st.Code(), st.Message())
	require.Contains(t, st.Message(), msg)
}

// typedContents renders a tensor as the typed contents a client sends.
func typedContents(t serving.Tensor) *pb.InferTensorContents {
	c := &pb.InferTensorContents{}
	switch d := t.Data.(type) {
	case []bool:
		c.BoolContents = d
	case []int8:
		for _, v := range d {
			c.IntContents = append(c.IntContents, int32(v))
		}
	case []int16:
		for _, v := range d {
			c.IntContents = append(c.IntContents, int32(v))
		}
	case []int32:
		c.IntContents = d
	case []int64:
		c.Int64Contents = d
	case []uint8:
		for _, v := range d {
			c.UintContents = append(c.UintContents, uint32(v))
		}
	case []uint16:
		for _, v := range d {
			c.UintContents = append(c.UintContents, uint32(v))
		}
	case []uint32:
		c.UintContents = d
	case []uint64:
		c.Uint64Contents = d
	case []float32:
		c.Fp32Contents = d
	case []float64:
		c.Fp64Contents = d
	case []string:
		for _, v := range d {
			c.BytesContents = append(c.BytesContents, []byte(v))
		}
	default:
		return nil
	}
	return c
}

func TestGRPCHealthAndMetadata(t *testing.T) {
	m := load(t, "mlp")
	client, _ := serveGRPC(t, oip.Models(map[string]serving.Model{"mlp": m}), oip.GRPCOptions{ServerName: "g", ServerVersion: "9"})
	ctx := context.Background()

	live, err := client.ServerLive(ctx, &pb.ServerLiveRequest{})
	require.NoError(t, err)
	require.True(t, live.Live)
	ready, err := client.ServerReady(ctx, &pb.ServerReadyRequest{})
	require.NoError(t, err)
	require.True(t, ready.Ready)
	smd, err := client.ServerMetadata(ctx, &pb.ServerMetadataRequest{})
	require.NoError(t, err)
	require.Equal(t, "g", smd.Name)
	require.Equal(t, "9", smd.Version)
	require.Equal(t, []string{"binary_tensor_data"}, smd.Extensions)

	md, err := client.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "mlp"})
	require.NoError(t, err)
	require.Equal(t, "mlp", md.Name)
	require.Len(t, md.Inputs, 1)
	require.Equal(t, "x", md.Inputs[0].Name)
	require.Equal(t, "FP32", md.Inputs[0].Datatype)
	require.Equal(t, []int64{-1, 16}, md.Inputs[0].Shape)
	require.Equal(t, "y", md.Outputs[0].Name)
	require.Equal(t, []int64{-1, 4}, md.Outputs[0].Shape)

	mr, err := client.ModelReady(ctx, &pb.ModelReadyRequest{Name: "mlp"})
	require.NoError(t, err)
	require.True(t, mr.Ready)
	_, err = client.ModelReady(ctx, &pb.ModelReadyRequest{Name: "nope"})
	requireCode(t, err, codes.NotFound, `"nope" is not served`)
	_, err = client.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "mlp", Version: "2"})
	requireCode(t, err, codes.NotFound, "not versioned")
	// An unknown model is NotFound whatever the request holds; a known
	// one with a request that does not decode is InvalidArgument.
	_, err = client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "nope"})
	requireCode(t, err, codes.NotFound, `"nope" is not served`)
	_, err = client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "mlp"})
	requireCode(t, err, codes.InvalidArgument, `model "mlp"`)
}

// Every datatype crosses the gRPC service both ways, as typed contents
// and as raw contents, and comes back as the model answers it.
func TestGRPCEveryDatatype(t *testing.T) {
	m := load(t, "types")
	client, _ := serveGRPC(t, oip.Models(map[string]serving.Model{"types": m}), oip.GRPCOptions{})
	in := typesInputs()
	want, err := m.Predict(context.Background(), in)
	require.NoError(t, err)

	t.Run("raw", func(t *testing.T) {
		req := &pb.ModelInferRequest{ModelName: "types", Id: "r1"}
		for _, n := range typesOrder {
			req.Inputs = append(req.Inputs, &pb.ModelInferRequest_InferInputTensor{Name: n, Datatype: oip.Datatype(in[n].ElementType()), Shape: in[n].Shape})
			req.RawInputContents = append(req.RawInputContents, rawBytes(in[n]))
		}
		res, err := client.ModelInfer(context.Background(), req)
		require.NoError(t, err)
		require.Equal(t, "types", res.ModelName)
		require.Equal(t, "r1", res.Id)
		require.Len(t, res.Outputs, len(want))
		require.Len(t, res.RawOutputContents, len(want))
		for i, o := range res.Outputs {
			w := want[o.Name].Tensor
			require.Equal(t, oip.Datatype(w.ElementType()), o.Datatype, o.Name)
			require.Equal(t, w.Shape, o.Shape, o.Name)
			require.Nil(t, o.Contents)
			require.Equal(t, rawBytes(w), res.RawOutputContents[i], o.Name)
		}
	})
}

// Typed inputs and outputs round-trip through a model whose types all
// have typed contents.
func TestGRPCTyped(t *testing.T) {
	m := load(t, "multi_io")
	client, _ := serveGRPC(t, oip.Models(map[string]serving.Model{"multi": m}), oip.GRPCOptions{})
	in := map[string]serving.Tensor{
		"a":   serving.NewTensor([]int64{2, 4}, []float32{1, -2, 3, -4, 0.5, 0, -0.5, 7}),
		"b":   serving.NewTensor([]int64{2, 4}, []float32{4, 3, 2, 1, -1, -2, -3, -4}),
		"ids": serving.NewTensor([]int64{2, 3}, []int64{1, 2, 3, -1, 1 << 40, 0}),
	}
	want, err := m.Predict(context.Background(), in)
	require.NoError(t, err)
	req := &pb.ModelInferRequest{ModelName: "multi", Outputs: []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: "positive"}, {Name: "ids_next"}}}
	for _, n := range []string{"a", "b", "ids"} {
		req.Inputs = append(req.Inputs, &pb.ModelInferRequest_InferInputTensor{Name: n, Datatype: oip.Datatype(in[n].ElementType()), Shape: in[n].Shape, Contents: typedContents(in[n])})
	}
	res, err := client.ModelInfer(context.Background(), req)
	require.NoError(t, err)
	require.Empty(t, res.RawOutputContents)
	require.Len(t, res.Outputs, 2)
	require.Equal(t, "positive", res.Outputs[0].Name)
	require.Equal(t, "BOOL", res.Outputs[0].Datatype)
	require.Equal(t, want["positive"].Tensor.Data, res.Outputs[0].Contents.BoolContents)
	require.Equal(t, "ids_next", res.Outputs[1].Name)
	require.Equal(t, want["ids_next"].Tensor.Data, res.Outputs[1].Contents.Int64Contents)
	require.Equal(t, []int64{2, 3}, res.Outputs[1].Shape)

	// FP16 has no typed contents.
	tm := load(t, "types")
	client, _ = serveGRPC(t, oip.Models(map[string]serving.Model{"types": tm}), oip.GRPCOptions{})
	tin := typesInputs()
	treq := &pb.ModelInferRequest{ModelName: "types"}
	for _, n := range typesOrder {
		treq.Inputs = append(treq.Inputs, &pb.ModelInferRequest_InferInputTensor{Name: n, Datatype: oip.Datatype(tin[n].ElementType()),
			Shape: tin[n].Shape, Contents: typedContents(tin[n])})
	}
	_, err = client.ModelInfer(context.Background(), treq)
	requireCode(t, err, codes.InvalidArgument, `input "half": FP16 data has no typed contents; send it in raw_input_contents`)
}

func TestGRPCErrors(t *testing.T) {
	m := load(t, "mlp")
	gate := make(chan struct{})
	entered := make(chan struct{}, 4)
	slow, err := serving.NewBatcher(&servingtest.Doubler{Gate: gate, Entered: entered}, serving.BatcherOptions{MaxBatchSize: 1, MaxInFlight: 1, MaxQueueDelay: -1})
	require.NoError(t, err)
	closed, err := serving.NewBatcher(&servingtest.Doubler{}, serving.BatcherOptions{})
	require.NoError(t, err)
	require.NoError(t, closed.Close())
	repo := oip.Models(map[string]serving.Model{"mlp": m, "slow": slow, "closed": closed})
	client, g := serveGRPC(t, repo, oip.GRPCOptions{Timeout: 200 * time.Millisecond}, grpc.MaxRecvMsgSize(1<<16))
	patient, pg := serveGRPC(t, repo, oip.GRPCOptions{})
	ctx := context.Background()
	x := func(shape []int64, data []float32) *pb.ModelInferRequest_InferInputTensor {
		return &pb.ModelInferRequest_InferInputTensor{Name: "x", Datatype: "FP32", Shape: shape, Contents: &pb.InferTensorContents{Fp32Contents: data}}
	}

	_, err = client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "nope", Inputs: []*pb.ModelInferRequest_InferInputTensor{x([]int64{1, 16}, seq(16, 1))}})
	requireCode(t, err, codes.NotFound, `"nope" is not served`)
	_, err = client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "mlp", Inputs: []*pb.ModelInferRequest_InferInputTensor{x([]int64{2, 16}, seq(16, 1))}})
	requireCode(t, err, codes.InvalidArgument, "fp32_contents holds 16 elements, shape [2 16] needs 32")
	_, err = client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "mlp", Inputs: []*pb.ModelInferRequest_InferInputTensor{x([]int64{1, 8}, seq(8, 1))}})
	requireCode(t, err, codes.InvalidArgument, "[1 8]")
	_, err = client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "mlp", Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Contents: &pb.InferTensorContents{Fp64Contents: []float64{1, 2}}}}})
	requireCode(t, err, codes.InvalidArgument, "FP32 data in fp64_contents; want fp32_contents")
	_, err = client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "mlp", Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "x", Datatype: "INT8", Shape: []int64{1}, Contents: &pb.InferTensorContents{IntContents: []int32{200}}}}})
	requireCode(t, err, codes.InvalidArgument, "element 0 is 200, out of range for INT8")
	_, err = client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "mlp", Inputs: []*pb.ModelInferRequest_InferInputTensor{x([]int64{1, 16}, seq(16, 1))},
		RawInputContents: [][]byte{make([]byte, 64)}})
	requireCode(t, err, codes.InvalidArgument, "has contents, but the request uses raw_input_contents")
	_, err = client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "mlp", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 16}}},
		RawInputContents: [][]byte{make([]byte, 60)}})
	requireCode(t, err, codes.InvalidArgument, "FP32 shape [1 16] needs 64 bytes, got 60")
	_, err = client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "mlp", Inputs: []*pb.ModelInferRequest_InferInputTensor{x([]int64{1, 16}, seq(16, 1))},
		Outputs: []*pb.ModelInferRequest_InferRequestedOutputTensor{{Name: "z"}}})
	requireCode(t, err, codes.InvalidArgument, `requested output "z" does not exist`)
	_, err = client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "mlp", Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "x", Datatype: "FP32", Shape: []int64{1 << 14, 16}}}, RawInputContents: [][]byte{make([]byte, 1<<16)}})
	requireCode(t, err, codes.ResourceExhausted, "")
	_, err = client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "closed", Inputs: []*pb.ModelInferRequest_InferInputTensor{x([]int64{1, 2}, []float32{1, 2})}})
	requireCode(t, err, codes.Unavailable, "closed")

	// One request holds the model; the next one waits in the queue until
	// the server's timeout.
	first := make(chan error, 1)
	go func() {
		_, err := patient.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "slow", Inputs: []*pb.ModelInferRequest_InferInputTensor{x([]int64{1, 2}, []float32{1, 2})}})
		first <- err
	}()
	<-entered
	_, err = client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "slow", Inputs: []*pb.ModelInferRequest_InferInputTensor{x([]int64{1, 2}, []float32{1, 2})}})
	requireCode(t, err, codes.DeadlineExceeded, "no answer before the deadline")
	close(gate)
	require.NoError(t, <-first)
	require.NoError(t, slow.Close())

	st := g.Stats()
	require.Equal(t, uint64(1), st.Requests[oip.RequestKey{Endpoint: oip.EndpointInfer, Code: "NotFound"}])
	require.Equal(t, uint64(1), st.Requests[oip.RequestKey{Endpoint: oip.EndpointInfer, Code: "DeadlineExceeded"}])
	require.Zero(t, st.Requests[oip.RequestKey{Endpoint: oip.EndpointInfer, Code: "OK"}])
	require.Equal(t, uint64(1), pg.Stats().Requests[oip.RequestKey{Endpoint: oip.EndpointInfer, Code: "OK"}])
	require.Equal(t, uint64(1), pg.Stats().Infer.Count)
}
