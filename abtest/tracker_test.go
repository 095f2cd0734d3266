package abtest

import (
	"math"
	"sort"
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

func TestHistogramQuantiles(t *testing.T) {
	for _, v := range []uint64{0, 1, 15, 16, 17, 31, 32, 1000, 123456789, 1 << 40, math.MaxInt64} {
		i := histIndex(v)
		require.Less(t, i, histBuckets)
		require.GreaterOrEqual(t, histUpper(i), v, "v=%d", v)
		if i > 0 {
			require.Less(t, histUpper(i-1), v, "v=%d lies above the previous bucket", v)
		}
		if v >= 16 {
			require.LessOrEqual(t, float64(histUpper(i)-v), float64(v)/16, "relative error of v=%d", v)
		}
	}
	var h histogram
	require.Zero(t, h.quantile(0.99))
	// 1..1000 µs: p50 = 500µs, p99 = 990µs, within 1/16.
	var vals []time.Duration
	for i := 1; i <= 1000; i++ {
		d := time.Duration(i) * time.Microsecond
		vals = append(vals, d)
		h.observe(d)
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.99} {
		exact := vals[int(math.Ceil(q*1000))-1]
		got := h.quantile(q)
		require.GreaterOrEqual(t, got, exact)
		require.LessOrEqual(t, float64(got-exact), float64(exact)/16, "q=%v", q)
	}
	h.observe(-time.Second) // negative durations count as 0
	require.Equal(t, uint64(1001), h.total())
}
