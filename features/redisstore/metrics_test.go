package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/internal/metrics/metricstest"
)

// TestTierCollector registers two tiers' collectors, and their local
// stores' collectors, in one registry, and reads the Redis counters back.
func TestTierCollector(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	var cs []prometheus.Collector
	var tiers []*Tier
	for _, name := range []string{"a", "b"} {
		m := features.New(features.Options{Name: name})
		t.Cleanup(func() { _ = m.Close() })
		tier := New(m, srv.client(t), Options{})
		require.NoError(t, tier.Register(testView()))
		tiers = append(tiers, tier)
		cs = append(cs, tier.Collector(nil), m.Collector(nil))
	}
	require.NoError(t, tiers[0].Put(ctx, "user", testRow("u1", time.Now(), 1), testRow("u2", time.Now(), 2)))
	sel, err := tiers[1].Select("user", "age")
	require.NoError(t, err)
	ids := []string{"u1", "u2", "nobody"}
	require.NoError(t, tiers[1].GetMany(ctx, sel, ids, make([]float32, 3), make([]features.Status, 3)))

	mfs := metricstest.Gather(t, cs...)
	metricstest.RequireConventions(t, mfs, "quiver_features_")
	metricstest.RequireInstances(t, mfs, "store", "a", "b")

	want := `
# HELP quiver_features_redis_reads_total Entities read from Redis, by result (found, not_found).
# TYPE quiver_features_redis_reads_total counter
quiver_features_redis_reads_total{result="found",store="b"} 2
quiver_features_redis_reads_total{result="not_found",store="b"} 1
`
	require.NoError(t, testutil.CollectAndCompare(tiers[1].Collector(nil), strings.NewReader(want), "quiver_features_redis_reads_total"))
	want = `
# HELP quiver_features_redis_writes_total Rows written to Redis.
# TYPE quiver_features_redis_writes_total counter
quiver_features_redis_writes_total{store="a"} 2
# HELP quiver_features_redis_breaker_open 1 while the circuit breaker fails Redis calls at once, else 0.
# TYPE quiver_features_redis_breaker_open gauge
quiver_features_redis_breaker_open{store="a"} 0
`
	require.NoError(t, testutil.CollectAndCompare(tiers[0].Collector(nil), strings.NewReader(want),
		"quiver_features_redis_writes_total", "quiver_features_redis_breaker_open"))
	metricstest.RequireDuplicate(t, tiers[0].Collector(nil), tiers[1].Collector(prometheus.Labels{"store": "a"}))
}
