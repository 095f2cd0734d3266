package serving

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStatsPercentiles(t *testing.T) {
	var h latencyHist
	for i := 1; i <= 100; i++ {
		h.observe(time.Duration(i) * time.Millisecond)
	}
	s := h.summary()
	require.Equal(t, uint64(100), s.Count)
	within := func(want, got time.Duration) {
		t.Helper()
		require.InEpsilon(t, float64(want), float64(got), 0.125)
	}
	within(50*time.Millisecond, s.P50)
	within(95*time.Millisecond, s.P95)
	within(99*time.Millisecond, s.P99)
	within(100*time.Millisecond, s.Max)
	require.Equal(t, 50500*time.Microsecond, s.Mean)
}
