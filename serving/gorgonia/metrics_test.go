package gorgonia

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/quiverml/quiver/internal/metrics/metricstest"
	"github.com/quiverml/quiver/serving"
	"github.com/stretchr/testify/require"
)

func TestStatsAndCollector(t *testing.T) {
	m := load(t, "mlp", Options{Name: "tabular", MaxShapes: 1})
	for _, rows := range []int64{1, 1, 2} {
		predict(t, m, map[string]serving.Tensor{"x": f32(sh(rows, 16), make([]float32, rows*16)...)})
	}
	_, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": f32(sh(1, 3), 1, 2, 3)})
	require.ErrorIs(t, err, serving.ErrShape)
	require.Equal(t, Stats{Runs: 3, Compiles: 2, Evictions: 1, Shapes: 1, Idle: 1}, m.Stats())

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(m.Collector(prometheus.Labels{"replica": "a"})))
	expected := `
# HELP quiver_gorgonia_compiles_total Graphs compiled for an input shape.
# TYPE quiver_gorgonia_compiles_total counter
quiver_gorgonia_compiles_total{model="tabular",replica="a"} 2
# HELP quiver_gorgonia_evictions_total Input shapes dropped from the graph cache.
# TYPE quiver_gorgonia_evictions_total counter
quiver_gorgonia_evictions_total{model="tabular",replica="a"} 1
# HELP quiver_gorgonia_runs_total Predict calls that ran a compiled graph.
# TYPE quiver_gorgonia_runs_total counter
quiver_gorgonia_runs_total{model="tabular",replica="a"} 3
# HELP quiver_gorgonia_cached_shapes Input shapes with compiled graphs cached.
# TYPE quiver_gorgonia_cached_shapes gauge
quiver_gorgonia_cached_shapes{model="tabular",replica="a"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"quiver_gorgonia_compiles_total", "quiver_gorgonia_evictions_total", "quiver_gorgonia_runs_total", "quiver_gorgonia_cached_shapes"))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, mfs, 6)
	metricstest.RequireConventions(t, mfs, "quiver_gorgonia_")
}

func TestCollectorsOfTwoModelsCompose(t *testing.T) {
	a := load(t, "mlp", Options{Name: "ranker"})
	b := load(t, "mlp", Options{Name: "scorer"})
	mfs := metricstest.Gather(t, a.Collector(nil), b.Collector(nil))
	metricstest.RequireInstances(t, mfs, "model", "ranker", "scorer")
	metricstest.RequireDuplicate(t, a.Collector(nil), b.Collector(prometheus.Labels{"model": "ranker"}))
}
