package train_test

import (
	"context"
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/internal/metrics/metricstest"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
)

func TestStats(t *testing.T) {
	tr := newTrainer(t, train.LogisticRegression{Features: 2}, train.Options{})
	ctx := context.Background()
	st := tr.Stats()
	require.True(t, math.IsNaN(st.Loss), "no loss before the first step")
	in := map[string]serving.Tensor{"x": f32([]int64{3, 2}, 1, 2, 3, 4, 5, 6)}
	us, err := tr.Update(ctx, in, f32([]int64{3}, 0, 1, 1))
	require.NoError(t, err)
	_, err = tr.Update(ctx, in, f32([]int64{3}, 0, 1, 2)) // bad target
	require.Error(t, err)
	_, err = tr.Predict(ctx, in)
	require.NoError(t, err)
	_, err = tr.Predict(ctx, map[string]serving.Tensor{})
	require.Error(t, err)

	st = tr.Stats()
	require.Equal(t, int64(1), st.Step)
	require.Equal(t, int64(3), st.Rows)
	require.Equal(t, us.Loss, st.Loss)
	require.Equal(t, int64(1), st.Updates)
	require.Equal(t, int64(3), st.UpdateRows)
	require.Equal(t, int64(1), st.InputErrors)
	require.Equal(t, int64(1), st.Predictions)
	require.Equal(t, int64(3), st.PredictRows)
	require.Equal(t, int64(1), st.PredictErrors)
	require.Equal(t, uint64(1), st.UpdateLatency.Count)
	require.Equal(t, uint64(1), st.PredictLatency.Count)
	require.Greater(t, st.UpdateLatency.Max, st.UpdateLatency.P50/2)
}

// Collectors of several trainers register in one registry, follow the
// naming rules, and export the Stats.
func TestCollector(t *testing.T) {
	a := newTrainer(t, train.LogisticRegression{Features: 2}, train.Options{Name: "a"})
	b := newTrainer(t, train.LogisticRegression{Features: 2}, train.Options{Name: "b"})
	_, err := a.Update(context.Background(), map[string]serving.Tensor{"x": f32([]int64{1, 2}, 1, 2)}, f32([]int64{1}, 1))
	require.NoError(t, err)
	mfs := metricstest.Gather(t, a.Collector(prometheus.Labels{"replica": "0"}), b.Collector(prometheus.Labels{"replica": "1"}),
		a.Collector(prometheus.Labels{"replica": "1"}))
	metricstest.RequireConventions(t, mfs, "quiver_train_")
	metricstest.RequireInstances(t, mfs, "model", "a", "b")
	metricstest.RequireInstances(t, mfs, "replica", "0", "1")
	metricstest.RequireDuplicate(t, a.Collector(nil), a.Collector(nil))

	get := func(name, model string) *dto.Metric {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "model" && l.GetValue() == model {
						return m
					}
				}
			}
		}
		t.Fatalf("no %s for model %s", name, model)
		return nil
	}
	require.Equal(t, 1.0, get("quiver_train_steps", "a").GetGauge().GetValue())
	require.Equal(t, a.Stats().Loss, get("quiver_train_loss", "a").GetGauge().GetValue())
	require.True(t, math.IsNaN(get("quiver_train_loss", "b").GetGauge().GetValue()))
	require.Equal(t, 1.0, get("quiver_train_updates_total", "a").GetCounter().GetValue())
	require.Equal(t, uint64(1), get("quiver_train_update_seconds", "a").GetHistogram().GetSampleCount())
}
