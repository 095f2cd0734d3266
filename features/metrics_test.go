package features

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/internal/metrics/metricstest"
)

func TestCollectorsOfTwoStoresCompose(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		stores [2]string
		labels [2]prometheus.Labels
		label  string // the label that tells the two apart
		values [2]string
	}{
		{"default labels", [2]string{"online", "batch"}, [2]prometheus.Labels{nil, nil}, "store", [2]string{"online", "batch"}},
		{"unnamed stores, replica label", [2]string{"", ""},
			[2]prometheus.Labels{{"replica": "a"}, {"replica": "b"}}, "replica", [2]string{"a", "b"}},
		{"store label overridden", [2]string{"x", "x"},
			[2]prometheus.Labels{{"store": "x1"}, {"store": "x2"}}, "store", [2]string{"x1", "x2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cs []prometheus.Collector
			for i := range 2 {
				m, clk := newTestStore(t, Options{Name: tc.stores[i]}, userView())
				require.NoError(t, m.Put(ctx, "user", userRow("a", clk.Now(), 1, 1)))
				_, err := m.GetRow(ctx, "user", "a")
				require.NoError(t, err)
				cs = append(cs, m.Collector(tc.labels[i]))
			}
			mfs := metricstest.Gather(t, cs...)
			metricstest.RequireConventions(t, mfs, "quiver_features_")
			metricstest.RequireInstances(t, mfs, tc.label, tc.values[:]...)
		})
	}
}

func TestCollectorsWithIdenticalLabelsCollide(t *testing.T) {
	a, _ := newTestStore(t, Options{Name: "online"}, userView())
	b, _ := newTestStore(t, Options{Name: "online"}, userView())
	metricstest.RequireDuplicate(t, a.Collector(nil), b.Collector(nil))
	c, _ := newTestStore(t, Options{Name: "batch"}, userView())
	metricstest.RequireDuplicate(t, a.Collector(nil), c.Collector(prometheus.Labels{"store": "online"}))
}
