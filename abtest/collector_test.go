package abtest

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/internal/metrics/metricstest"
	"github.com/quiverml/quiver/serving"
)

// newShadowedRouter returns a router over experiment name with variants a
// and b and one shadow, after it served a few requests and its shadow
// answered them.
func newShadowedRouter(t *testing.T, name string) *ModelRouter {
	t.Helper()
	e := mustExperiment(t, Config{Name: name, Variants: []Variant{{"a", 1}, {"b", 1}}})
	r, err := NewRouter(e, map[string]serving.Model{"a": newFake("a"), "b": newFake("b")},
		RouterOptions{Shadows: map[string]serving.Model{"next": newFake("next")}})
	require.NoError(t, err)
	for i := range 20 {
		_, err := r.Predict(context.Background(), Request{Unit: unitID(i), Inputs: testInputs})
		require.NoError(t, err)
	}
	require.NoError(t, r.Close()) // waits for the shadow copies
	return r
}

func TestCollectorsOfTwoRoutersCompose(t *testing.T) {
	var cs []prometheus.Collector
	for _, name := range []string{"checkout", "search"} {
		r := newShadowedRouter(t, name)
		cs = append(cs, r.Collector(nil), r.Tracker().Collector(nil), r.ShadowTracker().Collector(nil))
	}
	mfs := metricstest.Gather(t, cs...)
	metricstest.RequireConventions(t, mfs, "quiver_abtest_")
	metricstest.RequireInstances(t, mfs, "experiment", "checkout", "search")
	var latency bool
	for _, mf := range mfs {
		if mf.GetName() != "quiver_abtest_request_seconds" {
			continue
		}
		latency = true
		var n uint64
		for _, m := range mf.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
		}
		require.Equal(t, uint64(2*20+2*20), n, "every request and every shadow copy is timed")
	}
	require.True(t, latency, "request latency is exported")

	// The same experiment name twice, told apart by a label of the caller's.
	r1, r2 := newShadowedRouter(t, "ranker"), newShadowedRouter(t, "ranker")
	mfs = metricstest.Gather(t,
		r1.Collector(prometheus.Labels{"region": "eu"}), r1.Tracker().Collector(prometheus.Labels{"region": "eu"}),
		r2.Collector(prometheus.Labels{"region": "us"}), r2.Tracker().Collector(prometheus.Labels{"region": "us"}))
	metricstest.RequireInstances(t, mfs, "region", "eu", "us")
}

func TestCollectorsWithIdenticalLabelsCollide(t *testing.T) {
	r1, r2 := newShadowedRouter(t, "ranker"), newShadowedRouter(t, "ranker")
	metricstest.RequireDuplicate(t, r1.Collector(nil), r2.Collector(nil))
	metricstest.RequireDuplicate(t, r1.Tracker().Collector(nil), r2.Tracker().Collector(nil))
	other, err := NewTracker("other", []string{"a", "b"})
	require.NoError(t, err)
	metricstest.RequireDuplicate(t, r1.Tracker().Collector(nil), other.Collector(prometheus.Labels{"experiment": "ranker"}))
}
