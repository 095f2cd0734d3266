package abtest

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustTracker(t *testing.T, exp string, variants ...string) *Tracker {
	t.Helper()
	tr, err := NewTracker(exp, variants)
	require.NoError(t, err)
	return tr
}

func TestTrackerErrors(t *testing.T) {
	_, err := NewTracker("x", nil)
	require.ErrorIs(t, err, ErrConfig)
	_, err = NewTracker("x", []string{"a", "a"})
	require.ErrorIs(t, err, ErrDuplicateVariant)
	_, err = NewTracker("x", []string{""})
	require.ErrorIs(t, err, ErrConfig)

	tr := mustTracker(t, "x", "a", "b")
	for _, err := range []error{
		tr.Expose("c"), tr.Convert("c"), tr.Observe("c", 1), tr.ObserveRequest("c", time.Millisecond, false),
	} {
		require.ErrorIs(t, err, ErrUnknownVariant)
		require.Contains(t, err.Error(), `no variant "c"`)
	}
	require.ErrorIs(t, tr.Observe("a", math.NaN()), ErrReward)
	_, err = tr.Variant("c")
	require.ErrorIs(t, err, ErrUnknownVariant)
	_, err = tr.CompareConversions("a", "c")
	require.ErrorIs(t, err, ErrUnknownVariant)
	_, err = tr.CompareMeans("c", "a")
	require.ErrorIs(t, err, ErrUnknownVariant)
	_, err = tr.SRM([]Variant{{"c", 1}})
	require.ErrorIs(t, err, ErrUnknownVariant)
	// State is intact after the errors.
	for _, s := range tr.Stats() {
		require.Zero(t, s.Exposures+s.Conversions+s.Requests+s.Metric.N)
	}
}

func TestTrackerStatistics(t *testing.T) {
	tr := mustTracker(t, "exp", "control", "treat")
	for i := range 1000 {
		require.NoError(t, tr.Expose("control"))
		require.NoError(t, tr.Expose("treat"))
		if i < 200 {
			require.NoError(t, tr.Convert("control"))
		}
		if i < 250 {
			require.NoError(t, tr.Convert("treat"))
		}
	}
	for _, x := range []float64{1, 2, 3, 4, 5} {
		require.NoError(t, tr.Observe("control", x))
		require.NoError(t, tr.Observe("treat", x+2))
	}
	c, err := tr.Variant("control")
	require.NoError(t, err)
	require.Equal(t, uint64(1000), c.Exposures)
	require.InDelta(t, 0.2, c.ConversionRate, 1e-12)
	require.Less(t, c.ConversionLow, 0.2)
	require.Greater(t, c.ConversionHigh, 0.2)
	require.InDelta(t, 3, c.Metric.Mean, 1e-12)
	require.InDelta(t, 2.5, c.Metric.Variance, 1e-12)
	require.Less(t, c.MetricLow, 3.0)

	// Same numbers as the textbook cases in stats_test.go.
	z, err := tr.CompareConversions("control", "treat")
	require.NoError(t, err)
	require.InDelta(t, 2.677398, z.Z, 1e-6)
	w, err := tr.CompareMeans("control", "treat")
	require.NoError(t, err)
	require.InDelta(t, 2, w.T, 1e-12)

	srm, err := tr.SRM([]Variant{{"control", 1}, {"treat", 1}})
	require.NoError(t, err)
	require.False(t, srm.Mismatch)
	require.Equal(t, 0.0, srm.ChiSquare)
}

// TestTrackerExtremeValuesKeepStatsFinite alternates values far beyond
// MaxReward with values at it: the former are refused and leave the
// variant untouched, and the metric's mean, variance and interval stay
// finite.
func TestTrackerExtremeValuesKeepStatsFinite(t *testing.T) {
	tr := mustTracker(t, "exp", "a", "b")
	for i := range 1000 {
		sign := 1.0
		if i%2 == 1 {
			sign = -1
		}
		require.ErrorIs(t, tr.Observe("a", sign*1e308), ErrReward)
		require.NoError(t, tr.Observe("b", sign*MaxReward))
	}
	st := tr.Stats()
	require.Zero(t, st[0].Metric.N, "refused values are not recorded")
	require.Equal(t, uint64(1000), st[1].Metric.N)
	for _, v := range []float64{st[1].Metric.Mean, st[1].Metric.Variance, st[1].MetricLow, st[1].MetricHigh} {
		require.False(t, math.IsNaN(v) || math.IsInf(v, 0), "%v", v)
	}
}
