package registry

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/internal/metrics/metricstest"
)

// newServingServer returns a server over a fresh store whose model m has
// version 1 loaded and serving as "latest".
func newServingServer(t *testing.T, opts ServerOptions) *Server {
	t.Helper()
	s := newStore(t)
	publishN(t, s, "m", 1)
	srv := newServer(t, s, &fakeLoader{}, opts)
	require.NoError(t, srv.Sync(context.Background()))
	h, err := srv.Model("m", "")
	require.NoError(t, err)
	require.Equal(t, int64(1), predictVersion(t, h))
	return srv
}

func TestCollectorsOfTwoServersCompose(t *testing.T) {
	tests := []struct {
		name   string
		names  [2]string
		labels [2]prometheus.Labels
		label  string
		values []string
	}{
		{"default labels", [2]string{"models", "embedders"}, [2]prometheus.Labels{nil, nil}, "registry", []string{"models", "embedders"}},
		{"unnamed, zone label", [2]string{"", ""}, [2]prometheus.Labels{{"zone": "a"}, {"zone": "b"}}, "zone", []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cs []prometheus.Collector
			for i := range 2 {
				cs = append(cs, newServingServer(t, ServerOptions{Name: tc.names[i]}).Collector(tc.labels[i]))
			}
			mfs := metricstest.Gather(t, cs...)
			metricstest.RequireConventions(t, mfs, "quiver_registry_")
			metricstest.RequireInstances(t, mfs, tc.label, tc.values...)
		})
	}
}

func TestCollectorsWithIdenticalLabelsCollide(t *testing.T) {
	a := newServingServer(t, ServerOptions{Name: "models"})
	b := newServingServer(t, ServerOptions{Name: "models"})
	metricstest.RequireDuplicate(t, a.Collector(nil), b.Collector(nil))
	c := newServingServer(t, ServerOptions{})
	metricstest.RequireDuplicate(t, c.Collector(nil), c.Collector(nil))
}
