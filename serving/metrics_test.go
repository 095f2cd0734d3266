package serving

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestCollectorExposesStats(t *testing.T) {
	m := load(t, "mlp", Options{Name: "tabular"})
	b, err := NewBatcher(m, BatcherOptions{KeepModelOpen: true})
	require.NoError(t, err)
	defer b.Close()
	for i := 0; i < 3; i++ {
		_, err := b.Predict(context.Background(), map[string]Tensor{"x": f32([]int64{2, 16}, seq(32, 1)...)})
		require.NoError(t, err)
	}
	_, err = b.Predict(context.Background(), map[string]Tensor{"x": f32([]int64{2, 15}, seq(30, 1)...)})
	require.ErrorIs(t, err, ErrShape)

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(b.Collector()))
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
quiver_serving_errors_total{kind="overloaded",model="tabular"} 0
quiver_serving_errors_total{kind="run",model="tabular"} 0
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"quiver_serving_rows_total", "quiver_serving_errors_total"))
	n, err := testutil.GatherAndCount(reg, "quiver_serving_run_seconds", "quiver_serving_batch_size_rows")
	require.NoError(t, err)
	require.Equal(t, 2, n)

	st := b.Stats()
	require.Equal(t, uint64(3), st.Batches)
	require.Equal(t, map[int]uint64{2: 3}, st.BatchSizes)
	require.Equal(t, uint64(3), st.Run.Count)
	require.Contains(t, st.String(), "batches by rows: 2-3:3")
}

func TestStatsStringGroupsBatchSizes(t *testing.T) {
	s := Stats{Requests: 10, Rows: 10, Batches: 4, BatchSizes: map[int]uint64{1: 2, 5: 1, 7: 3, 64: 4}}
	require.Contains(t, s.String(), "batches by rows: 1:2 4-7:4 64-127:4")
}
