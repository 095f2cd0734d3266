// Package metricstest checks that Quiver collectors compose: that many
// instances register in one Prometheus registry, and that their families
// follow the naming rules every package shares.
package metricstest

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// Gather registers cs in one pedantic registry, as a service registers the
// collectors of all its instances, and returns what the registry gathers.
// Both steps must succeed: the pedantic registry also checks every
// collected metric against its descriptor.
func Gather(t testing.TB, cs ...prometheus.Collector) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for i, c := range cs {
		require.NoError(t, reg.Register(c), "collector %d", i)
	}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	require.NotEmpty(t, mfs)
	return mfs
}

// RequireConventions checks every family: its name starts with prefix
// ("quiver_serving_"), counters end in _total, and every family named in
// seconds is a histogram (latencies are histograms, never gauges of
// percentiles).
func RequireConventions(t testing.TB, mfs []*dto.MetricFamily, prefix string) {
	t.Helper()
	for _, mf := range mfs {
		name := mf.GetName()
		require.True(t, strings.HasPrefix(name, prefix), "family %s does not start with %s", name, prefix)
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			require.True(t, strings.HasSuffix(name, "_total"), "counter %s does not end in _total", name)
		case dto.MetricType_GAUGE:
			require.False(t, strings.HasSuffix(name, "_seconds"), "gauge %s is a time: make it a histogram", name)
		}
		if strings.HasSuffix(name, "_seconds") {
			require.Equal(t, dto.MetricType_HISTOGRAM, mf.GetType(), "family %s", name)
		}
	}
}

// RequireInstances checks that every family has series for each of values
// of the constant label that tells instances apart.
func RequireInstances(t testing.TB, mfs []*dto.MetricFamily, label string, values ...string) {
	t.Helper()
	for _, mf := range mfs {
		seen := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					seen[l.GetValue()] = true
				}
			}
		}
		for _, v := range values {
			require.True(t, seen[v], "family %s has no series with %s=%q", mf.GetName(), label, v)
		}
	}
}

// RequireDuplicate registers a, then b, in a fresh registry and checks that
// b is refused as a duplicate of a: collectors whose constant labels are
// identical cannot share a registry.
func RequireDuplicate(t testing.TB, a, b prometheus.Collector) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(a))
	err := reg.Register(b)
	var dup prometheus.AlreadyRegisteredError
	require.ErrorAs(t, err, &dup, "registering a collector with the same labels twice")
	require.Contains(t, err.Error(), "duplicate metrics collector registration attempted")
}
