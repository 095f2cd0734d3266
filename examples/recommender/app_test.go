package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/quiverml/quiver/internal/redistest"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/oip/inferencepb"
	"github.com/quiverml/quiver/serving/onnx"
)

func TestMain(m *testing.M) {
	if os.Getenv("ONNXRUNTIME_LIB") == "" {
		// The library `make ort` installs; tests run from the package folder.
		if lib := "../../third_party/onnxruntime/libonnxruntime.so.1.30.0"; fileExists(lib) {
			os.Setenv("ONNXRUNTIME_LIB", lib)
		}
	}
	code := m.Run()
	if shared.app != nil {
		shared.ts.Close()
		if err := shared.app.Close(); err != nil && code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// shared is one App for the tests that only read its state or count by
// differences, so the package does not build a world per test.
var shared struct {
	once sync.Once
	app  *App
	ts   *httptest.Server
	err  error
}

func sharedApp(t *testing.T) (*App, string) {
	t.Helper()
	shared.once.Do(func() {
		cfg := small
		cfg.Logger = slog.New(slog.DiscardHandler)
		shared.app, shared.err = New(context.Background(), cfg)
		if shared.err == nil {
			shared.ts = httptest.NewServer(shared.app.Handler())
		}
	})
	require.NoError(t, shared.err)
	return shared.app, shared.ts.URL
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// small is a world small enough to build in a second under the race
// detector.
var small = Config{Users: 200, Items: 1000}

// newTestApp starts an App and an HTTP server on a loopback port, both
// closed when the test ends (server first, as in main).
func newTestApp(t *testing.T, cfg Config) (*App, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	app, err := New(context.Background(), cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(app.Handler())
	t.Cleanup(func() {
		ts.Close()
		require.NoError(t, app.Close())
	})
	return app, ts.URL
}

type httpAnswer struct {
	status int
	header http.Header
	body   []byte
}

func doHTTP(t *testing.T, method, u string, body []byte) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

func getRec(t *testing.T, base, query string) (recommendation, httpAnswer) {
	t.Helper()
	a := doHTTP(t, http.MethodGet, base+"/recommend?"+query, nil)
	var rec recommendation
	if a.status == http.StatusOK {
		require.NoError(t, json.Unmarshal(a.body, &rec), string(a.body))
	}
	return rec, a
}

func postFB(t *testing.T, base string, fb any) httpAnswer {
	t.Helper()
	b, err := json.Marshal(fb)
	require.NoError(t, err)
	return doHTTP(t, http.MethodPost, base+"/feedback", b)
}

// requireAPIError checks an error answer: its status, its code, a message
// that says what was wanted, and the request id.
func requireAPIError(t *testing.T, a httpAnswer, status int, code, wantInMessage string) {
	t.Helper()
	require.Equal(t, status, a.status, string(a.body))
	require.Equal(t, "application/json", a.header.Get("Content-Type"))
	var eb errorBody
	require.NoError(t, json.Unmarshal(a.body, &eb), string(a.body))
	require.Equal(t, code, eb.Error.Code, string(a.body))
	require.Contains(t, eb.Error.Message, wantInMessage)
	require.NotEmpty(t, eb.RequestID)
	require.Equal(t, a.header.Get("X-Request-Id"), eb.RequestID)
}

// userIn returns a user whose variant is want.
func userIn(t *testing.T, app *App, want string) string {
	t.Helper()
	for _, u := range app.world.users {
		a, err := app.exp.Assign(u.ID, nil)
		require.NoError(t, err)
		if a.Variant == want {
			return u.ID
		}
	}
	t.Fatalf("no user assigned to %s", want)
	return ""
}

func TestRecommendRanksCandidatesWithTheServedVersion(t *testing.T) {
	app, base := sharedApp(t)
	for _, tc := range []struct {
		variant string
		version int64
		file    []byte
	}{
		{aliasProduction, versionV1, rankerV1},
		{aliasCanary, versionBad, rankerBad},
	} {
		t.Run(tc.variant, func(t *testing.T) {
			userID := userIn(t, app, tc.variant)
			rec, a := getRec(t, base, "user="+userID+"&k=7")
			require.Equal(t, http.StatusOK, a.status, string(a.body))
			require.Equal(t, a.header.Get("X-Request-Id"), rec.RequestID)
			require.Equal(t, userID, rec.User)
			require.Equal(t, tc.variant, rec.Variant)
			require.Equal(t, servedModel{Name: modelName, Alias: tc.variant, Version: tc.version}, rec.Model)
			require.Len(t, rec.Items, 7)

			// The same candidates scored by the same model file, run
			// directly on ONNX Runtime: the service's ranking must match.
			c, err := app.candidates(context.Background(), userID, -1)
			require.NoError(t, err)
			m, err := onnx.LoadBytes(context.Background(), tc.file, onnx.Options{})
			require.NoError(t, err)
			defer m.Close()
			want, err := scores(m.Predict(context.Background(), map[string]serving.Tensor{
				"x": serving.NewTensor([]int64{int64(len(c.ids)), rowWidth}, c.rows)}))
			require.NoError(t, err)
			for i, j := range topK(want, 7) {
				require.Equal(t, c.ids[j], rec.Items[i].Item, "rank %d", i)
				require.InDelta(t, want[j], rec.Items[i].Score, 1e-6, "rank %d", i)
			}
		})
	}
}

func TestRecommendPostAndPriceFilter(t *testing.T) {
	app, base := sharedApp(t)
	a := doHTTP(t, http.MethodPost, base+"/recommend", []byte(`{"user": "u3", "k": 20, "max_price": 0.25}`))
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	var rec recommendation
	require.NoError(t, json.Unmarshal(a.body, &rec))
	require.Len(t, rec.Items, 20)
	for _, it := range rec.Items {
		x, ok := app.world.itemByID(it.Item)
		require.True(t, ok)
		require.LessOrEqual(t, x.Price, float32(0.25), it.Item)
	}
	require.True(t, slices.IsSortedFunc(rec.Items, func(a, b scoredItem) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	}), "items best first")

	// A filter that matches nothing answers an empty list, not an error.
	rec, a = getRec(t, base, "user=u3&max_price=0")
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	require.Empty(t, rec.Items)
}

func TestRecommendBadInput(t *testing.T) {
	app, base := sharedApp(t)
	before := app.router.Tracker().Stats()
	for _, tc := range []struct {
		name, query  string
		status       int
		code, inText string
	}{
		{"no user", "k=3", 400, "bad_user", "want an id like u42"},
		{"malformed user", "user=bob", 400, "bad_user", `"bob"`},
		{"leading zero", "user=u007", 400, "bad_user", "want an id like u42"},
		{"unknown user", "user=u99999", 404, "unknown_user", `"u99999" has no row`},
		{"k zero", "user=u1&k=0", 400, "bad_k", "want 1..50"},
		{"k too large", "user=u1&k=51", 400, "bad_k", "want 1..50"},
		{"k not a number", "user=u1&k=ten", 400, "bad_k", "want an integer"},
		{"negative price", "user=u1&max_price=-1", 400, "bad_max_price", "want a finite number >= 0"},
		{"NaN price", "user=u1&max_price=NaN", 400, "bad_max_price", "want a finite number >= 0"},
		{"price not a number", "user=u1&max_price=cheap", 400, "bad_max_price", "want a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, a := getRec(t, base, tc.query)
			requireAPIError(t, a, tc.status, tc.code, tc.inText)
		})
	}
	for _, tc := range []struct{ name, body, inText string }{
		{"unknown field", `{"user": "u1", "kk": 3}`, "unknown field"},
		{"not JSON", `user=u1`, "want a JSON object"},
		{"trailing data", `{"user": "u1"} {}`, "data after the JSON object"},
		{"too large", `{"user": "` + strings.Repeat("u", maxBody) + `"}`, "at most 4096 bytes"},
	} {
		t.Run("POST "+tc.name, func(t *testing.T) {
			a := doHTTP(t, http.MethodPost, base+"/recommend", []byte(tc.body))
			requireAPIError(t, a, 400, "bad_request", tc.inText)
		})
	}
	// Nothing reached the models or the experiment.
	require.Equal(t, before, app.router.Tracker().Stats())
}

func TestFeedbackUpdatesTheExperiment(t *testing.T) {
	app, base := sharedApp(t)
	userID := userIn(t, app, aliasCanary)
	before, err := app.router.Tracker().Variant(aliasCanary)
	require.NoError(t, err)
	outcomesBefore, err := app.clicks.Variant(aliasCanary)
	require.NoError(t, err)
	rec, a := getRec(t, base, "user="+userID+"&k=5")
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	now, err := app.router.Tracker().Variant(aliasCanary)
	require.NoError(t, err)
	require.Equal(t, before.Exposures+1, now.Exposures)
	require.Equal(t, before.Conversions, now.Conversions)

	yes, no := true, false
	a = postFB(t, base, feedbackRequest{User: userID, Item: rec.Items[2].Item, RequestID: rec.RequestID, Clicked: &yes})
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	var res feedbackResult
	require.NoError(t, json.Unmarshal(a.body, &res))
	require.Equal(t, feedbackResult{RequestID: rec.RequestID, Variant: aliasCanary, Version: versionBad, Recorded: "click", Counted: true}, res)
	after, err := app.router.Tracker().Variant(aliasCanary)
	require.NoError(t, err)
	require.Equal(t, before.Conversions+1, after.Conversions)
	outcomes, err := app.clicks.Variant(aliasCanary)
	require.NoError(t, err)
	require.Equal(t, outcomesBefore.Requests+1, outcomes.Requests)
	require.Equal(t, outcomesBefore.Errors, outcomes.Errors, "a click is not a no-click")

	// The second answer to the same recommendation is refused and not
	// counted.
	a = postFB(t, base, feedbackRequest{User: userID, Item: rec.Items[0].Item, RequestID: rec.RequestID, Clicked: &yes})
	requireAPIError(t, a, http.StatusConflict, "duplicate_feedback", rec.RequestID)
	after, _ = app.router.Tracker().Variant(aliasCanary)
	require.Equal(t, before.Conversions+1, after.Conversions)

	// A recommendation without a click counts as a no-click outcome.
	rec2, a := getRec(t, base, "user="+userID+"&k=5")
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	a = postFB(t, base, feedbackRequest{User: userID, RequestID: rec2.RequestID, Clicked: &no})
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	outcomes, _ = app.clicks.Variant(aliasCanary)
	require.Equal(t, outcomesBefore.Requests+2, outcomes.Requests)
	require.Equal(t, outcomesBefore.Errors+1, outcomes.Errors)
	after, _ = app.router.Tracker().Variant(aliasCanary)
	require.Equal(t, before.Exposures+2, after.Exposures)
	require.Equal(t, before.Conversions+1, after.Conversions)

	// /experiment shows the same numbers.
	var snap Snapshot
	a = doHTTP(t, http.MethodGet, base+"/experiment", nil)
	require.Equal(t, http.StatusOK, a.status)
	require.NoError(t, json.Unmarshal(a.body, &snap), string(a.body))
	i := slices.IndexFunc(snap.Variants, func(v VariantSnapshot) bool { return v.Name == aliasCanary })
	require.GreaterOrEqual(t, i, 0)
	require.Equal(t, after.Exposures, snap.Variants[i].Exposures)
	require.Equal(t, after.Conversions, snap.Variants[i].Clicks)
	require.Equal(t, outcomes.ErrorRate, snap.Variants[i].NoClickRate)
	require.Equal(t, map[string]int64{aliasProduction: versionV1, aliasCanary: versionBad, aliasShadow: versionInt8}, snap.Serving)
}

func TestFeedbackBadInput(t *testing.T) {
	app, base := sharedApp(t)
	rec, a := getRec(t, base, "user=u5&k=3")
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	before, _ := app.clicks.Variant(rec.Variant)
	yes := true
	for _, tc := range []struct {
		name         string
		body         any
		status       int
		code, inText string
	}{
		{"unknown request", feedbackRequest{User: "u5", Item: rec.Items[0].Item, RequestID: "nope", Clicked: &yes}, 404, "unknown_request", `"nope"`},
		{"no request id", feedbackRequest{User: "u5", Item: rec.Items[0].Item, Clicked: &yes}, 400, "bad_feedback", "request_id is missing"},
		{"no clicked", feedbackRequest{User: "u5", Item: rec.Items[0].Item, RequestID: rec.RequestID}, 400, "bad_feedback", "want true or false"},
		{"no user", feedbackRequest{Item: rec.Items[0].Item, RequestID: rec.RequestID, Clicked: &yes}, 400, "bad_feedback", "user is missing"},
		{"click without item", feedbackRequest{User: "u5", RequestID: rec.RequestID, Clicked: &yes}, 400, "bad_feedback", "needs the item"},
		{"other user", feedbackRequest{User: "u6", Item: rec.Items[0].Item, RequestID: rec.RequestID, Clicked: &yes}, 400, "bad_feedback", `was for "u5"`},
		{"item not shown", feedbackRequest{User: "u5", Item: "i999999", RequestID: rec.RequestID, Clicked: &yes}, 400, "bad_feedback", "not among the 3 items"},
		{"unknown field", map[string]any{"user": "u5", "request_id": rec.RequestID, "clicked": true, "score": 1}, 400, "bad_request", "unknown field"},
		{"clicked not a bool", map[string]any{"user": "u5", "request_id": rec.RequestID, "clicked": "yes"}, 400, "bad_request", "want a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireAPIError(t, postFB(t, base, tc.body), tc.status, tc.code, tc.inText)
		})
	}
	// None of them counted, and the recommendation can still be answered.
	after, _ := app.clicks.Variant(rec.Variant)
	require.Equal(t, before, after)
	a = postFB(t, base, feedbackRequest{User: "u5", Item: rec.Items[0].Item, RequestID: rec.RequestID, Clicked: &yes})
	require.Equal(t, http.StatusOK, a.status, string(a.body))
}

func TestHealthAndReadiness(t *testing.T) {
	app, err := New(context.Background(), Config{Users: 50, Items: 500, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	h := app.Handler()
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	require.Equal(t, http.StatusOK, get("/healthz").Code)
	w := get("/readyz")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.JSONEq(t, `{"ready": true, "serving": {"production": 1, "canary": 3, "shadow": 4}}`, w.Body.String())

	require.NoError(t, app.Close())
	w = get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.JSONEq(t, `{"ready": false, "missing": ["production", "canary", "shadow"]}`, w.Body.String())
	require.Equal(t, http.StatusOK, get("/healthz").Code, "live until the process ends")

	// Requests after Close are refused as the service shutting down.
	w = get("/recommend?user=u1")
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	var eb errorBody
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &eb))
	require.Equal(t, "shutting_down", eb.Error.Code)
	require.ErrorIs(t, app.MoveAlias(context.Background(), aliasProduction, versionV2), registry.ErrClosed)
	require.NoError(t, app.Close(), "Close is idempotent")
}

func TestMetricsHaveEveryPackage(t *testing.T) {
	_, base := newTestApp(t, small)
	rec, a := getRec(t, base, "user=u1&k=3")
	require.Equal(t, http.StatusOK, a.status)
	no := false
	require.Equal(t, http.StatusOK, postFB(t, base, feedbackRequest{User: "u1", RequestID: rec.RequestID, Clicked: &no}).status)
	require.Equal(t, http.StatusNotFound, doHTTP(t, http.MethodGet, base+"/v2/models/nope", nil).status)

	a = doHTTP(t, http.MethodGet, base+"/metrics", nil)
	require.Equal(t, http.StatusOK, a.status)
	text := string(a.body)
	for _, series := range []string{
		`quiver_serving_requests_total{model="ranker@` + rec.Variant + `"} 1`,
		`quiver_serving_requests_total{model="ranker@shadow"}`,
		`quiver_registry_serving_version{alias="production",model="ranker",registry="models"} 1`,
		`quiver_abtest_router_requests_total{experiment="ranker-canary",variant="` + rec.Variant + `"} 1`,
		`quiver_abtest_exposures_total{experiment="ranker-canary",variant="` + rec.Variant + `"} 1`,
		`quiver_abtest_requests_total{experiment="ranker-canary/clicks",variant="` + rec.Variant + `"} 1`,
		`quiver_abtest_errors_total{experiment="ranker-canary/clicks",variant="` + rec.Variant + `"} 1`,
		`quiver_abtest_shadow_copies_total{experiment="ranker-canary",outcome="enqueued"} 1`,
		`quiver_features_reads_total{result="found",store="online",view="user"}`,
		`quiver_features_rows{store="online",view="item"} 1000`,
		`quiver_vector_items{index="items"} 1000`,
		`quiver_vector_searches_total{index="items"}`,
		`quiver_oip_requests_total{code="404",endpoint="model_metadata",protocol="rest"} 1`,
		`quiver_recommender_http_requests_total{code="200",route="/recommend"} 1`,
		`quiver_recommender_http_requests_total{code="200",route="/feedback"} 1`,
		`go_goroutines`,
	} {
		require.Contains(t, text, series)
	}
}

func TestOpenInferenceProtocol(t *testing.T) {
	app, base := sharedApp(t)
	requireAPIErrorOIP := func(a httpAnswer, status int) {
		t.Helper()
		require.Equal(t, status, a.status, string(a.body))
		var body struct {
			Error string `json:"error"`
		}
		require.NoError(t, json.Unmarshal(a.body, &body), string(a.body))
		require.NotEmpty(t, body.Error)
	}
	requireAPIErrorOIP(doHTTP(t, http.MethodGet, base+"/v2/models/nope", nil), http.StatusNotFound)
	requireAPIErrorOIP(doHTTP(t, http.MethodGet, base+"/v2/models/ranker:nope", nil), http.StatusNotFound)

	a := doHTTP(t, http.MethodGet, base+"/v2/models/ranker", nil)
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	require.Contains(t, string(a.body), `"name":"x"`)

	// One candidate row, scored through the protocol by the canary alias,
	// equals the same row scored by the bad model directly.
	c, err := app.candidates(context.Background(), "u2", -1)
	require.NoError(t, err)
	row := c.rows[:rowWidth]
	body, err := json.Marshal(map[string]any{"inputs": []map[string]any{
		{"name": "x", "datatype": "FP32", "shape": []int{1, rowWidth}, "data": row}}})
	require.NoError(t, err)
	a = doHTTP(t, http.MethodPost, base+"/v2/models/"+url.PathEscape("ranker:canary")+"/infer", body)
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	var out struct {
		ModelVersion string `json:"model_version"`
		Outputs      []struct {
			Name  string    `json:"name"`
			Shape []int64   `json:"shape"`
			Data  []float32 `json:"data"`
		} `json:"outputs"`
	}
	require.NoError(t, json.Unmarshal(a.body, &out), string(a.body))
	require.Equal(t, "3", out.ModelVersion)
	require.Len(t, out.Outputs, 1)
	require.Equal(t, []int64{1, 1}, out.Outputs[0].Shape)
	m, err := onnx.LoadBytes(context.Background(), rankerBad, onnx.Options{})
	require.NoError(t, err)
	defer m.Close()
	want, err := scores(m.Predict(context.Background(), map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, rowWidth}, row)}))
	require.NoError(t, err)
	require.InDelta(t, want[0], out.Outputs[0].Data[0], 1e-6)
}

// The protocol's gRPC flavour answers for the same aliases as /v2, with
// the same scores, and its calls are counted on /metrics.
func TestOpenInferenceProtocolOverGRPC(t *testing.T) {
	ctx := context.Background()
	app, base := newTestApp(t, small)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer()
	require.NoError(t, app.RegisterGRPC(gs))
	served := make(chan error, 1)
	go func() { served <- gs.Serve(ln) }()
	defer func() {
		gs.GracefulStop()
		require.NoError(t, <-served)
	}()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := inferencepb.NewGRPCInferenceServiceClient(conn)

	ready, err := client.ServerReady(ctx, &inferencepb.ServerReadyRequest{})
	require.NoError(t, err)
	require.True(t, ready.Ready)
	_, err = client.ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: "nope"})
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)

	c, err := app.candidates(ctx, "u2", -1)
	require.NoError(t, err)
	row := c.rows[:rowWidth]
	res, err := client.ModelInfer(ctx, &inferencepb.ModelInferRequest{ModelName: "ranker:canary",
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, rowWidth},
			Contents: &inferencepb.InferTensorContents{Fp32Contents: row}}}})
	require.NoError(t, err)
	require.Equal(t, "3", res.ModelVersion)
	require.Len(t, res.Outputs, 1)
	require.Equal(t, []int64{1, 1}, res.Outputs[0].Shape)
	got := res.Outputs[0].GetContents().GetFp32Contents()
	require.Len(t, got, 1)

	body, err := json.Marshal(map[string]any{"inputs": []map[string]any{
		{"name": "x", "datatype": "FP32", "shape": []int{1, rowWidth}, "data": row}}})
	require.NoError(t, err)
	a := doHTTP(t, http.MethodPost, base+"/v2/models/"+url.PathEscape("ranker:canary")+"/infer", body)
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	var out struct {
		Outputs []struct {
			Data []float32 `json:"data"`
		} `json:"outputs"`
	}
	require.NoError(t, json.Unmarshal(a.body, &out), string(a.body))
	require.Equal(t, out.Outputs[0].Data, got, "the same score over REST and gRPC")

	a = doHTTP(t, http.MethodGet, base+"/metrics", nil)
	require.Contains(t, string(a.body), `quiver_oip_requests_total{code="OK",endpoint="infer",protocol="grpc"} 1`)
	require.Contains(t, string(a.body), `quiver_oip_requests_total{code="NotFound",endpoint="model_metadata",protocol="grpc"} 1`)
	require.Contains(t, string(a.body), `quiver_oip_requests_total{code="200",endpoint="infer",protocol="rest"} 1`)
}

// The endpoints behind instrument keep the server's connection controls:
// the Open Inference Protocol handler bounds the reading of a body with
// SetReadDeadline, which fails with http.ErrNotSupported through a wrapper
// that hides the server's writer.
func TestInstrumentKeepsConnectionControls(t *testing.T) {
	app, _ := sharedApp(t)
	errs := make(chan error, 1)
	ts := httptest.NewServer(app.instrument("/probe", func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		errs <- errors.Join(rc.SetReadDeadline(time.Now().Add(time.Minute)), rc.SetReadDeadline(time.Time{}), rc.Flush())
	}))
	defer ts.Close()
	a := doHTTP(t, http.MethodGet, ts.URL, nil)
	require.Equal(t, http.StatusOK, a.status)
	require.NoError(t, <-errs)
}

func TestTracesJoinTheBatcherSpans(t *testing.T) {
	var buf syncBuffer
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(&spanPrinter{w: &buf}))
	cfg := small
	cfg.TracerProvider = tp
	_, base := newTestApp(t, cfg)
	_, a := getRec(t, base, "user=u1&k=3")
	require.Equal(t, http.StatusOK, a.status)
	require.NoError(t, tp.Shutdown(context.Background()))

	var spans []printedSpan
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	for dec.More() {
		var s printedSpan
		require.NoError(t, dec.Decode(&s))
		spans = append(spans, s)
	}
	i := slices.IndexFunc(spans, func(s printedSpan) bool { return s.Name == "GET /recommend" })
	require.GreaterOrEqual(t, i, 0, "spans: %+v", spans)
	server := spans[i]
	require.Equal(t, a.header.Get("X-Request-Id"), server.Attributes["request.id"])
	require.Equal(t, "200", server.Attributes["http.response.status_code"])
	// The batcher traced the request inside the server span.
	var children int
	for _, s := range spans {
		if s.TraceID == server.TraceID && s.Parent == server.SpanID {
			children++
		}
	}
	require.Positive(t, children, "no span of the request's trace below the server span: %+v", spans)
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func TestLogsCarryRequestIDs(t *testing.T) {
	var buf syncBuffer
	cfg := small
	cfg.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	_, base := newTestApp(t, cfg)
	_, a := getRec(t, base, "user=bob")
	require.Equal(t, http.StatusBadRequest, a.status)
	id := a.header.Get("X-Request-Id")
	require.NotEmpty(t, id)
	var found bool
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(line, &rec), string(line))
		if rec["msg"] == "http request" && rec["request_id"] == id {
			require.Equal(t, float64(400), rec["status"])
			require.Equal(t, "/recommend", rec["route"])
			found = true
		}
	}
	require.True(t, found, "no log line for request %s in:\n%s", id, buf.Bytes())
}

func TestRedisTier(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	cfg := small
	cfg.Redis = rs.Addr
	app, base := newTestApp(t, cfg)
	rec, a := getRec(t, base, "user=u9&k=4")
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	require.Len(t, rec.Items, 4)
	// Every row went through Redis too.
	keys, err := app.rdb.Keys(context.Background(), "quiver:recommender:features:*").Result()
	require.NoError(t, err)
	require.Len(t, keys, small.Users+small.Items)

	metrics := func() string {
		a := doHTTP(t, http.MethodGet, base+"/metrics", nil)
		require.Equal(t, http.StatusOK, a.status)
		return string(a.body)
	}
	require.Contains(t, metrics(), fmt.Sprintf(`quiver_features_redis_writes_total{store="online"} %d`, small.Users+small.Items))
	require.Contains(t, metrics(), `quiver_features_redis_errors_total{kind="failed",store="online"} 0`)

	// A Redis that is gone leaves the rows this replica holds serving.
	rs.Kill()
	rec, a = getRec(t, base, "user=u9&k=4")
	require.Equal(t, http.StatusOK, a.status, string(a.body))
	require.Len(t, rec.Items, 4)
	// A read that misses the local rows goes to Redis, fails, and is
	// counted; the request still answers, without the row.
	_, _ = app.feats.GetRow(context.Background(), userView.Name, "nobody")
	require.NotContains(t, metrics(), `quiver_features_redis_errors_total{kind="failed",store="online"} 0`)
}

// Two replicas on one Redis pool their experiment: each one's /experiment
// counts the other's recommendations and clicks once both have flushed,
// and a canary stopped on one is stopped on the other.
func TestRedisSharesTheExperiment(t *testing.T) {
	ctx := context.Background()
	rs := redistest.Start(t, redistest.Options{})
	cfg := small
	cfg.Redis = rs.Addr
	a, baseA := newTestApp(t, cfg) // each Run flushes every 250ms too; the explicit flushes bound the wait
	b, baseB := newTestApp(t, cfg)
	variant := func(base, name string) VariantSnapshot {
		var snap Snapshot
		r := doHTTP(t, http.MethodGet, base+"/experiment", nil)
		require.Equal(t, http.StatusOK, r.status)
		require.NoError(t, json.Unmarshal(r.body, &snap), string(r.body))
		i := slices.IndexFunc(snap.Variants, func(v VariantSnapshot) bool { return v.Name == name })
		require.GreaterOrEqual(t, i, 0)
		return snap.Variants[i]
	}
	yes := true
	for _, base := range []string{baseA, baseA, baseB} {
		rec, r := getRec(t, base, "user="+userIn(t, a, aliasCanary)+"&k=3")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, aliasCanary, rec.Variant)
		require.Equal(t, http.StatusOK, postFB(t, base, feedbackRequest{User: rec.User, Item: rec.Items[0].Item, RequestID: rec.RequestID, Clicked: &yes}).status)
	}
	for range 2 { // the second round reads what the other sent in the first
		require.NoError(t, a.share.Flush(ctx))
		require.NoError(t, b.share.Flush(ctx))
	}
	for _, base := range []string{baseA, baseB} {
		v := variant(base, aliasCanary)
		require.Equal(t, uint64(3), v.Exposures, "pooled")
		require.Equal(t, uint64(3), v.Clicks)
		require.Equal(t, uint64(3), v.Outcomes)
	}

	// A stop on one replica reaches the other at its next flush.
	require.NoError(t, a.exp.Stop(aliasCanary))
	require.NoError(t, a.share.Flush(ctx))
	require.NoError(t, b.share.Flush(ctx))
	require.True(t, b.exp.Stopped(aliasCanary))
	require.True(t, variant(baseB, aliasCanary).Stopped)
}

func TestRestartReusesTheRegistry(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Users: 50, Items: 500, DataDir: dir, Logger: slog.New(slog.DiscardHandler)}
	app, err := New(context.Background(), cfg)
	require.NoError(t, err)
	require.NoError(t, app.MoveAlias(context.Background(), aliasProduction, versionV2))
	require.NoError(t, app.Close())

	// A second start finds its versions and keeps the operator's move.
	app, err = New(context.Background(), cfg)
	require.NoError(t, err)
	defer app.Close()
	require.Equal(t, versionV2, app.servedVersions()[aliasProduction])
	vs, err := app.store.Versions(context.Background(), modelName)
	require.NoError(t, err)
	require.Len(t, vs, 4)
	require.Equal(t, versionV1, vs[1].Lineage.Parent)
}

func TestDemoRunsAndShutsDown(t *testing.T) {
	var out, logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, options{demo: 2 * time.Second, clients: 8, moves: 2, users: 200, items: 1000, grpc: "127.0.0.1:0"}, &out, &logs)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", out.Bytes(), logs.Bytes())
	text := string(out.Bytes())
	for _, want := range []string{"results after", "failed: 0 and 0", "2 moves of production", "first answer from v2", "shut down cleanly"} {
		require.Contains(t, text, want)
	}
}

func TestConfigOutOfRange(t *testing.T) {
	for _, cfg := range []Config{
		{Users: -1}, {Items: -5}, {Candidates: -1}, {CanaryPercent: 101}, {CanaryPercent: math.NaN()},
		{MaxNoClickIncrease: -0.1}, {MaxNoClickIncrease: 1}, {MaxP99Ratio: math.NaN()}, {PollInterval: -time.Second},
	} {
		sessions := onnx.LiveSessions()
		_, err := New(context.Background(), cfg)
		require.ErrorIs(t, err, ErrConfig, "%+v", cfg)
		require.Equal(t, sessions, onnx.LiveSessions(), "nothing was opened")
	}
}
