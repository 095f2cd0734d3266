package oip_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/oip"
	pb "github.com/quiverml/quiver/serving/oip/inferencepb"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/quiverml/quiver/serving/servingtest"
)

// registryServer publishes mlp.onnx twice, points production at 1 and
// canary at 2, and serves them.
func registryServer(t *testing.T) (*registry.Store, *registry.Server) {
	t.Helper()
	ctx := context.Background()
	store, err := registry.Open(t.TempDir(), registry.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	for range 2 {
		_, err := store.Publish(ctx, "mlp", []registry.File{{Name: "model.onnx", Path: servingtest.ModelPath("mlp")}}, registry.Meta{})
		require.NoError(t, err)
	}
	require.NoError(t, store.SetAlias(ctx, "mlp", "production", 1))
	require.NoError(t, store.SetAlias(ctx, "mlp", "canary", 2))
	srv, err := registry.NewServer(store, registry.FileLoader("onnx", onnx.Opener(onnx.Options{})),
		registry.ServerOptions{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	require.NoError(t, srv.Sync(ctx))
	return store, srv
}

func TestRegistryModels(t *testing.T) {
	ctx := context.Background()
	store, srv := registryServer(t)
	ts, _ := serve(t, oip.RegistryModels(srv, "production", "canary"), oip.HandlerOptions{})
	x := serving.NewTensor([]int64{2, 16}, seq(32, 0.2))
	m := load(t, "mlp")
	want, err := m.Predict(ctx, map[string]serving.Tensor{"x": x})
	require.NoError(t, err)
	body := wireRequest{Inputs: []wireTensor{tensorInput("x", x)}}

	infer := func(path string) wireResponse {
		t.Helper()
		res, _ := decodeResponse(t, postJSON(t, ts.URL+path, body))
		require.Len(t, res.Outputs, 1)
		wantJSONData(t, want["y"].Tensor, res.Outputs[0].Data)
		return res
	}
	for path, version := range map[string]string{
		"/v2/models/mlp/infer":                   "1", // the first alias
		"/v2/models/mlp:production/infer":        "1",
		"/v2/models/mlp:canary/infer":            "2",
		"/v2/models/mlp/versions/1/infer":        "1",
		"/v2/models/mlp/versions/2/infer":        "2",
		"/v2/models/mlp:canary/versions/1/infer": "1", // the version decides
	} {
		res := infer(path)
		require.Equal(t, version, res.ModelVersion, path)
	}
	require.Equal(t, "mlp:canary", infer("/v2/models/mlp:canary/infer").ModelName)

	for path, msg := range map[string]string{
		"/v2/models/mlp/versions/3/infer":    "no alias serves version 3 now; the versions served are \"1\", \"2\"",
		"/v2/models/mlp/versions/zero/infer": `version "zero" is not a registry version number`,
		"/v2/models/mlp:staging/infer":       `alias "staging" is not served; the aliases served are "production", "canary"`,
		"/v2/models/other/infer":             `alias "production" of registry model "other" serves no loaded version`,
		"/v2/models/..%2Fx/infer":            "is not a registry model name",
	} {
		r := postJSON(t, ts.URL+path, body)
		require.Equal(t, http.StatusNotFound, r.status, path)
		require.Contains(t, errorOf(t, r), msg, path)
	}

	var md struct {
		Name     string       `json:"name"`
		Versions []string     `json:"versions"`
		Platform string       `json:"platform"`
		Inputs   []wireTensor `json:"inputs"`
	}
	r := get(t, ts.URL+"/v2/models/mlp:canary")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	require.NoError(t, json.Unmarshal(r.body, &md))
	require.Equal(t, "mlp:canary", md.Name)
	require.Equal(t, []string{"1", "2"}, md.Versions)
	require.Equal(t, "onnx_onnxv1", md.Platform)
	require.Equal(t, "FP32", md.Inputs[0].Datatype)
	require.Equal(t, http.StatusOK, get(t, ts.URL+"/v2/models/mlp/versions/2/ready").status)
	require.Equal(t, http.StatusNotFound, get(t, ts.URL+"/v2/models/mlp/versions/7/ready").status)
	r = get(t, ts.URL+"/v2/health/ready")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)

	// gRPC serves the same names and versions.
	client, _ := serveGRPC(t, oip.RegistryModels(srv, "production", "canary"), oip.GRPCOptions{})
	res, err := client.ModelInfer(ctx, &pb.ModelInferRequest{ModelName: "mlp", ModelVersion: "2",
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: x.Shape}},
		RawInputContents: [][]byte{rawBytes(x)}})
	require.NoError(t, err)
	require.Equal(t, "2", res.ModelVersion)
	require.Equal(t, rawBytes(want["y"].Tensor), res.RawOutputContents[0])
	gmd, err := client.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "mlp"})
	require.NoError(t, err)
	require.Equal(t, []string{"1", "2"}, gmd.Versions)

	// production moves to 2: version 1 is no longer behind an alias, so it
	// is no longer served by number, and the bare name answers from 2.
	require.NoError(t, store.SetAlias(ctx, "mlp", "production", 2))
	require.NoError(t, srv.Sync(ctx))
	require.Equal(t, "2", infer("/v2/models/mlp/infer").ModelVersion)
	r = postJSON(t, ts.URL+"/v2/models/mlp/versions/1/infer", body)
	require.Equal(t, http.StatusNotFound, r.status)
	require.Contains(t, errorOf(t, r), `no alias serves version 1 now; the versions served are "2"`)

	// After the registry server closes, its names answer 503.
	require.NoError(t, srv.Close())
	r = postJSON(t, ts.URL+"/v2/models/mlp/infer", body)
	require.Equal(t, http.StatusServiceUnavailable, r.status, "body %s", r.body)
}

// Without aliases, the bare name serves the newest version, and any alias
// the server serves is reachable by name.
func TestRegistryModelsAllAliases(t *testing.T) {
	_, srv := registryServer(t)
	repo := oip.RegistryModels(srv)
	names, err := repo.Names(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"mlp", "mlp:canary", "mlp:latest", "mlp:production"}, names)

	ts, _ := serve(t, repo, oip.HandlerOptions{})
	x := serving.NewTensor([]int64{1, 16}, seq(16, 0.5))
	body := wireRequest{Inputs: []wireTensor{tensorInput("x", x)}}
	for path, version := range map[string]string{
		"/v2/models/mlp/infer":            "2",
		"/v2/models/mlp:production/infer": "1",
		"/v2/models/mlp:latest/infer":     "2",
	} {
		res, _ := decodeResponse(t, postJSON(t, ts.URL+path, body))
		require.Equal(t, version, res.ModelVersion, path)
	}
}

// A Batcher in front of an alias, served by Models, reports the registry
// version that answered.
func TestBatcherOverAlias(t *testing.T) {
	_, srv := registryServer(t)
	h, err := srv.Model("mlp", "canary")
	require.NoError(t, err)
	b, err := serving.NewBatcher(h, serving.BatcherOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	ts, _ := serve(t, oip.Models(map[string]serving.Model{"ranker": b}), oip.HandlerOptions{})
	x := serving.NewTensor([]int64{1, 16}, seq(16, 0.5))
	res, _ := decodeResponse(t, postJSON(t, ts.URL+"/v2/models/ranker/infer", wireRequest{Inputs: []wireTensor{tensorInput("x", x)}}))
	require.Equal(t, "2", res.ModelVersion)
	require.Equal(t, "ranker", res.ModelName)
}

// While an alias moves back and forth, a request for a version is answered
// by that version or refused with 404, never answered by another version.
func TestRegistryVersionWhileAliasMoves(t *testing.T) {
	ctx := context.Background()
	store, srv := registryServer(t)
	ts, _ := serve(t, oip.RegistryModels(srv, "canary"), oip.HandlerOptions{})
	x := serving.NewTensor([]int64{1, 16}, seq(16, 0.5))
	body, err := json.Marshal(wireRequest{Inputs: []wireTensor{tensorInput("x", x)}})
	require.NoError(t, err)

	const clients = 4
	stop := make(chan struct{})
	type tally struct {
		ok, notFound int
		err          error
	}
	results := make(chan tally, clients)
	for range clients {
		go func() {
			var tl tally
			defer func() { results <- tl }()
			for {
				// The request made after stop is made after the last
				// move, which leaves canary at 2: it must succeed.
				last := false
				select {
				case <-stop:
					last = true
				default:
				}
				resp, err := http.Post(ts.URL+"/v2/models/mlp/versions/2/infer", "application/json", bytes.NewReader(body))
				if err != nil {
					tl.err = err
					return
				}
				var res wireResponse
				err = json.NewDecoder(resp.Body).Decode(&res)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusNotFound && last:
					tl.err = fmt.Errorf("version 2 refused after canary settled on it")
					return
				case resp.StatusCode == http.StatusNotFound:
					tl.notFound++
				case resp.StatusCode != http.StatusOK || err != nil:
					tl.err = fmt.Errorf("status %d, %v", resp.StatusCode, err)
					return
				case res.ModelVersion != "2":
					tl.err = fmt.Errorf("asked for version 2, answered by %q", res.ModelVersion)
					return
				default:
					tl.ok++
				}
				if last {
					return
				}
			}
		}()
	}
	for i := range 20 {
		require.NoError(t, store.SetAlias(ctx, "mlp", "canary", int64(1+i%2)))
		require.NoError(t, srv.Sync(ctx))
	}
	close(stop)
	var total tally
	for range clients {
		tl := <-results
		require.NoError(t, tl.err)
		total.ok += tl.ok
		total.notFound += tl.notFound
	}
	require.Positive(t, total.ok, "some requests found version 2 served")
	t.Logf("%d answered by version 2, %d refused while canary pointed at 1", total.ok, total.notFound)
}
