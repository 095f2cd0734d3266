package serving_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/internal/metrics/metricstest"
	. "github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/servingtest"
)

// newFakeBatcher returns a batcher over a fake model named name.
func newFakeBatcher(t *testing.T, name string) *Batcher {
	t.Helper()
	b, err := NewBatcher(&servingtest.Doubler{ModelName: name}, BatcherOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func TestCollectorExposesStats(t *testing.T) {
	b := newFakeBatcher(t, "tabular")
	for range 3 {
		_, err := b.Predict(context.Background(), map[string]Tensor{"x": f32([]int64{2, 16}, seq(32, 1)...)})
		require.NoError(t, err)
	}
	_, err := b.Predict(context.Background(), map[string]Tensor{"x": f32([]int64{30}, seq(30, 1)...)})
	require.ErrorIs(t, err, ErrShape)

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(b.Collector(nil)))
	expected := `
# HELP quiver_serving_rows_total Rows run, padding excluded.
# TYPE quiver_serving_rows_total counter
quiver_serving_rows_total{model="tabular"} 6
# HELP quiver_serving_errors_total Failed requests by kind.
# TYPE quiver_serving_errors_total counter
quiver_serving_errors_total{kind="canceled",model="tabular"} 0
quiver_serving_errors_total{kind="closed",model="tabular"} 0
quiver_serving_errors_total{kind="deadline",model="tabular"} 0
quiver_serving_errors_total{kind="input",model="tabular"} 1
quiver_serving_errors_total{kind="not_ready",model="tabular"} 0
quiver_serving_errors_total{kind="overloaded",model="tabular"} 0
quiver_serving_errors_total{kind="run",model="tabular"} 0
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"quiver_serving_rows_total", "quiver_serving_errors_total"))
	n, err := testutil.GatherAndCount(reg, "quiver_serving_run_seconds", "quiver_serving_batch_size_rows")
	require.NoError(t, err)
	require.Equal(t, 2, n)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	metricstest.RequireConventions(t, mfs, "quiver_serving_")

	st := b.Stats()
	require.Equal(t, uint64(3), st.Batches)
	require.Equal(t, map[int]uint64{2: 3}, st.BatchSizes)
	require.Equal(t, uint64(3), st.Run.Count)
	require.Equal(t, uint64(3), st.Latency.Count)
	require.Contains(t, st.String(), "batches by rows: 2-3:3")
}

func TestCollectorsOfTwoBatchersCompose(t *testing.T) {
	tests := []struct {
		name   string
		models [2]string
		labels [2]prometheus.Labels
		label  string // the label that tells the two apart
		values []string
	}{
		{"default labels, different models", [2]string{"ranker", "scorer"}, [2]prometheus.Labels{nil, nil}, "model", []string{"ranker", "scorer"}},
		{"same model, replica label", [2]string{"ranker", "ranker"},
			[2]prometheus.Labels{{"replica": "a"}, {"replica": "b"}}, "replica", []string{"a", "b"}},
		{"model label overridden", [2]string{"ranker", "ranker"},
			[2]prometheus.Labels{{"model": "ranker-a"}, {"model": "ranker-b"}}, "model", []string{"ranker-a", "ranker-b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cs []prometheus.Collector
			for i := range 2 {
				b := newFakeBatcher(t, tc.models[i])
				_, err := b.Predict(context.Background(), servingtest.Row(1, 4))
				require.NoError(t, err)
				cs = append(cs, b.Collector(tc.labels[i]))
			}
			mfs := metricstest.Gather(t, cs...)
			metricstest.RequireConventions(t, mfs, "quiver_serving_")
			metricstest.RequireInstances(t, mfs, tc.label, tc.values...)
			for _, mf := range mfs {
				if mf.GetName() == "quiver_serving_request_seconds" {
					for _, m := range mf.GetMetric() {
						require.Equal(t, uint64(1), m.GetHistogram().GetSampleCount())
					}
				}
			}
		})
	}
}

func TestCollectorsWithIdenticalLabelsCollide(t *testing.T) {
	a, b := newFakeBatcher(t, "ranker"), newFakeBatcher(t, "ranker")
	metricstest.RequireDuplicate(t, a.Collector(nil), b.Collector(nil))
	c := newFakeBatcher(t, "scorer")
	metricstest.RequireDuplicate(t, a.Collector(nil), c.Collector(prometheus.Labels{"model": "ranker"}))
}

func TestCollectorExposesAdaptiveSizes(t *testing.T) {
	clk := &servingtest.Clock{}
	f := &servingtest.Doubler{ModelName: "tabular", Cost: servingtest.PowerCost(time.Millisecond, 2), Clock: clk}
	b, err := NewBatcherWithClock(f, BatcherOptions{MaxInFlight: 1}, clk.Now) // one slot: the virtual clock times one run at a time
	require.NoError(t, err)
	// One caller: two batches of one row at the lowest cap, a warm-up and
	// one measured at 1 row per virtual millisecond.
	for range 2 {
		_, err := b.Predict(context.Background(), map[string]Tensor{"x": f32([]int64{1, 16}, seq(16, 1)...)})
		require.NoError(t, err)
	}
	require.NoError(t, b.Close())

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(b.Collector(nil)))
	expected := `
# HELP quiver_serving_adaptive_batch_size Most rows per batch that adaptive batching chose for a shape group.
# TYPE quiver_serving_adaptive_batch_size gauge
quiver_serving_adaptive_batch_size{model="tabular",shape="x[16]"} 1
# HELP quiver_serving_adaptive_rows_per_second Rows per second of worker time measured for a shape group's batches under a size cap.
# TYPE quiver_serving_adaptive_rows_per_second gauge
quiver_serving_adaptive_rows_per_second{model="tabular",shape="x[16]",size="1"} 1000
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"quiver_serving_adaptive_batch_size", "quiver_serving_adaptive_rows_per_second"))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	metricstest.RequireConventions(t, mfs, "quiver_serving_")
	require.Contains(t, b.Stats().String(), "adaptive x[16]: size 1, rows/s by size: 1:1000")
}
