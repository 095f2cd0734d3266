package oip_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/internal/metrics/metricstest"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/oip"
	pb "github.com/quiverml/quiver/serving/oip/inferencepb"
)

// The REST and gRPC collectors register side by side, follow the naming
// rules, and count what was answered.
func TestCollectors(t *testing.T) {
	m := load(t, "mlp")
	repo := oip.Models(map[string]serving.Model{"mlp": m})
	ts, h := serve(t, repo, oip.HandlerOptions{})
	client, g := serveGRPC(t, repo, oip.GRPCOptions{})

	x := serving.NewTensor([]int64{1, 16}, seq(16, 1))
	decodeResponse(t, postJSON(t, ts.URL+"/v2/models/mlp/infer", wireRequest{Inputs: []wireTensor{tensorInput("x", x)}}))
	require.Equal(t, 404, get(t, ts.URL+"/v2/models/nope").status)
	require.Equal(t, 200, get(t, ts.URL+"/v2/health/live").status)
	_, err := client.ModelInfer(context.Background(), &pb.ModelInferRequest{ModelName: "mlp",
		Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: x.Shape}}, RawInputContents: [][]byte{rawBytes(x)}})
	require.NoError(t, err)
	_, err = client.ModelMetadata(context.Background(), &pb.ModelMetadataRequest{Name: "nope"})
	require.Error(t, err)

	labels := prometheus.Labels{"service": "test"}
	mfs := metricstest.Gather(t, h.Collector(labels), g.Collector(labels))
	metricstest.RequireConventions(t, mfs, "quiver_oip_")
	metricstest.RequireInstances(t, mfs, "protocol", "rest", "grpc")
	metricstest.RequireDuplicate(t, h.Collector(labels), h.Collector(labels))

	counts := map[string]float64{}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			require.Equal(t, "test", l["service"])
			switch mf.GetName() {
			case "quiver_oip_requests_total":
				counts[l["protocol"]+" "+l["endpoint"]+" "+l["code"]] = s.GetCounter().GetValue()
			case "quiver_oip_infer_seconds":
				require.Equal(t, uint64(1), s.GetHistogram().GetSampleCount(), l["protocol"])
			}
		}
	}
	require.Equal(t, map[string]float64{
		"rest infer 200":               1,
		"rest model_metadata 404":      1,
		"rest health_live 200":         1,
		"grpc infer OK":                1,
		"grpc model_metadata NotFound": 1,
	}, counts)

	st := h.Stats()
	require.Equal(t, uint64(1), st.Infer.Count)
	require.Positive(t, st.Infer.P99)
}
