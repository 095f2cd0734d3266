package vector

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/internal/metrics/metricstest"
)

func TestCollectorsOfTwoIndexesCompose(t *testing.T) {
	ctx := context.Background()
	item := Item[string]{ID: "a", Vector: []float32{1, 2}}
	hnsw := func(name string) *HNSW[string] {
		h := must(NewHNSW[string](Options{Dim: 2, Name: name}))
		t.Cleanup(func() { h.Close() })
		require.NoError(t, h.Add(ctx, item))
		_, err := h.Search(ctx, item.Vector, 1, SearchOptions{})
		require.NoError(t, err)
		return h
	}
	flat := func(name string) *Flat[string] {
		f := must(NewFlat[string](FlatOptions{Dim: 2, Name: name}))
		require.NoError(t, f.Add(ctx, item))
		return f
	}
	tests := []struct {
		name   string
		cs     []prometheus.Collector
		label  string
		values []string
	}{
		{"default labels", []prometheus.Collector{hnsw("docs").Collector(nil), hnsw("faq").Collector(nil)}, "index", []string{"docs", "faq"}},
		{"hnsw beside flat", []prometheus.Collector{hnsw("docs").Collector(nil), flat("docs-exact").Collector(nil)}, "index", []string{"docs", "docs-exact"}},
		{"unnamed, tenant label", []prometheus.Collector{
			hnsw("").Collector(prometheus.Labels{"tenant": "a"}), hnsw("").Collector(prometheus.Labels{"tenant": "b"}),
		}, "tenant", []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mfs := metricstest.Gather(t, tc.cs...)
			metricstest.RequireConventions(t, mfs, "quiver_vector_")
			metricstest.RequireInstances(t, mfs, tc.label, tc.values...)
		})
	}
}

func TestCollectorsWithIdenticalLabelsCollide(t *testing.T) {
	a := must(NewHNSW[string](Options{Dim: 2, Name: "docs"}))
	defer a.Close()
	b := must(NewFlat[uint64](FlatOptions{Dim: 2, Name: "docs"}))
	metricstest.RequireDuplicate(t, a.Collector(nil), b.Collector(nil))
	c := must(NewHNSW[string](Options{Dim: 2}))
	defer c.Close()
	metricstest.RequireDuplicate(t, c.Collector(nil), c.Collector(nil))
}
