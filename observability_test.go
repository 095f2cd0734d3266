package quiver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/internal/metrics/metricstest"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/servingtest"
	"github.com/quiverml/quiver/vector"
)

// fakeLoader loads every version as a fake model, so the registry needs no
// inference engine.
func fakeLoader(_ context.Context, v registry.Version, _ string) (serving.Model, error) {
	return &servingtest.Doubler{ModelName: v.Model}, nil
}

// newRegistryServer publishes model in a fresh store, points its
// "production" alias at it and returns a server that serves it.
func newRegistryServer(t *testing.T, name, model string) *registry.Server {
	t.Helper()
	ctx := context.Background()
	store, err := registry.Open(t.TempDir(), registry.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	v, err := store.Publish(ctx, model, []registry.File{{Name: "model.bin", Data: []byte(model)}}, registry.Meta{})
	require.NoError(t, err)
	require.NoError(t, store.SetAlias(ctx, model, "production", v.Number))
	srv, err := registry.NewServer(store, fakeLoader, registry.ServerOptions{Name: name, PollInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	require.NoError(t, srv.Sync(ctx))
	return srv
}

// service is one host application that runs two instances of every part.
type service struct {
	servers    [2]*registry.Server
	batchers   [2]*serving.Batcher
	routers    [2]*abtest.ModelRouter
	stores     [2]*features.Memory
	indexes    [2]*vector.HNSW[string]
	collectors []prometheus.Collector
}

// newService wires the parts as a service does (registry alias, then
// batcher, then router) and collects every collector they offer, each
// with its default labels.
func newService(t *testing.T) *service {
	t.Helper()
	s := &service{}
	for i, p := range []struct{ registry, model string }{{"models", "ranker"}, {"embedders", "scorer"}} {
		s.servers[i] = newRegistryServer(t, p.registry, p.model)
		h, err := s.servers[i].Model(p.model, "production")
		require.NoError(t, err)
		b, err := serving.NewBatcher(h, serving.BatcherOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		s.batchers[i] = b
		s.collectors = append(s.collectors, s.servers[i].Collector(nil), b.Collector(nil))
	}
	for i, name := range []string{"checkout", "search"} {
		e, err := abtest.NewExperiment(abtest.Config{Name: name, Variants: []abtest.Variant{{Name: "a", Weight: 1}, {Name: "b", Weight: 1}}})
		require.NoError(t, err)
		r, err := abtest.NewRouter(e, map[string]serving.Model{"a": s.batchers[0], "b": s.batchers[1]},
			abtest.RouterOptions{Shadows: map[string]serving.Model{"next": &servingtest.Doubler{ModelName: "next"}}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = r.Close() })
		s.routers[i] = r
		s.collectors = append(s.collectors, r.Collector(nil), r.Tracker().Collector(nil), r.ShadowTracker().Collector(nil))
	}
	for i, name := range []string{"online", "batch"} {
		m := features.New(features.Options{Name: name})
		t.Cleanup(func() { _ = m.Close() })
		require.NoError(t, m.Register(features.View{Name: "user", Entity: "user_id",
			Features: []features.Feature{{Name: "age", Kind: features.KindFloat32}}}))
		s.stores[i] = m
		s.collectors = append(s.collectors, m.Collector(nil))
	}
	for i, name := range []string{"docs", "faq"} {
		idx, err := vector.NewHNSW[string](vector.Options{Dim: 4, Name: name})
		require.NoError(t, err)
		t.Cleanup(func() { _ = idx.Close() })
		s.indexes[i] = idx
		s.collectors = append(s.collectors, idx.Collector(nil))
	}
	return s
}

// traffic drives a few requests through every instance.
func (s *service) traffic(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for i := range 2 {
		for u := range 10 {
			_, err := s.routers[i].Predict(ctx, abtest.Request{Unit: "u" + string(rune('a'+u)), Inputs: servingtest.Row(float32(u), 4)})
			require.NoError(t, err)
		}
		require.NoError(t, s.routers[i].Close()) // waits for the shadow copies
		require.NoError(t, s.stores[i].Put(ctx, "user", features.Row{Entity: "u1", EventTime: time.Now(),
			Values: map[string]features.Value{"age": features.Float32(31)}}))
		_, err := s.stores[i].GetRow(ctx, "user", "u1")
		require.NoError(t, err)
		require.NoError(t, s.indexes[i].Add(ctx, vector.Item[string]{ID: "d1", Vector: []float32{1, 0, 0, 0}}))
		_, err = s.indexes[i].Search(ctx, []float32{1, 0, 0, 0}, 1, vector.SearchOptions{})
		require.NoError(t, err)
	}
}

func TestTwoOfEveryPartShareOneRegistry(t *testing.T) {
	s := newService(t)
	s.traffic(t)
	mfs := metricstest.Gather(t, s.collectors...)
	metricstest.RequireConventions(t, mfs, "quiver_")

	// Each package's families, and the label that tells its two instances
	// apart by default.
	parts := []struct {
		prefix, label string
		values        []string
	}{
		{"quiver_serving_", "model", []string{"ranker@production", "scorer@production"}},
		{"quiver_registry_", "registry", []string{"models", "embedders"}},
		{"quiver_abtest_", "experiment", []string{"checkout", "search"}},
		{"quiver_features_", "store", []string{"online", "batch"}},
		{"quiver_vector_", "index", []string{"docs", "faq"}},
	}
	var latencies []string
	for _, p := range parts {
		var mine []*dto.MetricFamily
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), p.prefix) {
				mine = append(mine, mf)
			}
		}
		require.NotEmpty(t, mine, "no %s families", p.prefix)
		metricstest.RequireInstances(t, mine, p.label, p.values...)
		for _, mf := range mine {
			if mf.GetType() == dto.MetricType_HISTOGRAM && strings.HasSuffix(mf.GetName(), "_seconds") {
				latencies = append(latencies, mf.GetName())
			}
		}
	}
	require.Subset(t, latencies, []string{
		"quiver_serving_request_seconds", "quiver_serving_queue_wait_seconds", "quiver_serving_run_seconds",
		"quiver_abtest_request_seconds", "quiver_registry_load_seconds", "quiver_features_served_age_seconds",
	})
	for _, mf := range mfs {
		if mf.GetName() != "quiver_serving_request_seconds" {
			continue
		}
		var n uint64
		for _, m := range mf.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
		}
		require.Equal(t, uint64(2*10), n, "every routed request went through one of the batchers")
	}
}

// logRecords captures what the default logger writes while fn runs: the
// rule under test is that a nil Logger means slog.Default().
func logRecords(t *testing.T, fn func()) []map[string]any {
	t.Helper()
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	defer slog.SetDefault(old)
	fn()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec map[string]any
		require.NoError(t, json.Unmarshal(line, &rec))
		out = append(out, rec)
	}
	return out
}

// findRecord returns the first record whose message starts with msg.
func findRecord(t *testing.T, recs []map[string]any, msg string) map[string]any {
	t.Helper()
	for _, r := range recs {
		if m, _ := r["msg"].(string); strings.HasPrefix(m, msg) {
			return r
		}
	}
	require.Failf(t, "no log record", "want one starting with %q in %v", msg, recs)
	return nil
}

func TestNilLoggerLogsToDefault(t *testing.T) {
	ctx := context.Background()
	recs := logRecords(t, func() {
		// A version that fails to load.
		store, err := registry.Open(t.TempDir(), registry.Options{Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		_, err = store.Publish(ctx, "ranker", []registry.File{{Name: "model.bin", Data: []byte("x")}}, registry.Meta{})
		require.NoError(t, err)
		failing := func(context.Context, registry.Version, string) (serving.Model, error) {
			return nil, errors.New("corrupt weights")
		}
		srv, err := registry.NewServer(store, failing, registry.ServerOptions{Name: "models", PollInterval: time.Hour})
		require.NoError(t, err)
		defer srv.Close()
		require.Error(t, srv.Sync(ctx))

		// A guardrail stopping a canary whose error rate is far above control's.
		e, err := abtest.NewExperiment(abtest.Config{Name: "checkout",
			Variants: []abtest.Variant{{Name: "control", Weight: 9}, {Name: "canary", Weight: 1}}})
		require.NoError(t, err)
		tr, err := abtest.NewTracker("checkout", e.Variants())
		require.NoError(t, err)
		for i := range 400 {
			require.NoError(t, tr.ObserveRequest("control", time.Millisecond, false))
			require.NoError(t, tr.ObserveRequest("canary", time.Millisecond, i%2 == 0))
		}
		g, err := abtest.NewGuardrail(e, tr, abtest.GuardrailOptions{})
		require.NoError(t, err)
		require.Len(t, g.Check(), 1)

		// Rows a feature ingestion rejects.
		m := features.New(features.Options{Name: "online"})
		defer m.Close()
		require.NoError(t, m.Register(features.View{Name: "user", Entity: "user_id",
			Features: []features.Feature{{Name: "age", Kind: features.KindFloat32}}}))
		rows := func(yield func(features.Row, error) bool) {
			yield(features.Row{Entity: "", EventTime: time.Now()}, nil) // no entity: rejected
		}
		_, err = features.IngestSeq(ctx, m, "user", rows, features.IngestOptions{})
		require.NoError(t, err)
	})

	load := findRecord(t, recs, "registry: version not loaded")
	require.Equal(t, "ERROR", load["level"])
	require.Equal(t, "models", load["registry"])
	require.Equal(t, "ranker", load["model"])
	require.EqualValues(t, 1, load["version"])
	require.Contains(t, load["error"], "corrupt weights")

	stop := findRecord(t, recs, "abtest: guardrail stopped variant")
	require.Equal(t, "WARN", stop["level"])
	require.Equal(t, "checkout", stop["experiment"])
	require.Equal(t, "canary", stop["variant"])

	rejected := findRecord(t, recs, "features: rows rejected")
	require.Equal(t, "WARN", rejected["level"])
	require.Equal(t, "user", rejected["view"])
	require.NotEmpty(t, rejected["error"])
}
