package s3

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/internal/metrics/metricstest"
)

func TestCollectorsCompose(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a := e.open(t, func(o *Options) { o.Name = "models" })
	b := e.open(t, func(o *Options) { o.Name = "embedders" })
	publishMLP(t, a, "m", "x")
	_, _, err := b.Fetch(ctx, "m", 1)
	require.NoError(t, err)
	mfs := metricstest.Gather(t, a.Collector(nil), b.Collector(nil))
	metricstest.RequireConventions(t, mfs, "quiver_registry_s3_")
	metricstest.RequireInstances(t, mfs, "store", "models", "embedders")
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "quiver_registry_s3_downloads_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "store" && l.GetValue() == "embedders" {
						require.Equal(t, 1.0, m.GetCounter().GetValue())
						found = true
					}
				}
			}
		}
	}
	require.True(t, found, "the download is counted for the store that made it")
	metricstest.RequireDuplicate(t, a.Collector(nil), a.Collector(nil))
	metricstest.RequireInstances(t, metricstest.Gather(t, a.Collector(prometheus.Labels{"zone": "x"}), a.Collector(prometheus.Labels{"zone": "y"})), "zone", "x", "y")
}
