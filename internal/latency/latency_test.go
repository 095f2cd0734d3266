package latency

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

func TestBucketBounds(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 15, 16, 17, 31, 32, 1000, 1023, 1024, time.Millisecond, 3 * time.Second, time.Hour, math.MaxInt64} {
		i := Bucket(d)
		require.Less(t, i, NumBuckets, "duration %v", d)
		require.LessOrEqual(t, d, UpperBound(i), "duration %v", d)
		if i > 0 {
			require.Greater(t, d, UpperBound(i-1), "duration %v", d)
		}
		// A bucket is at most 1/16 as wide as the values it holds.
		if d >= 16 {
			width := UpperBound(i) - UpperBound(i-1)
			require.LessOrEqual(t, width, d/16+1, "duration %v", d)
		}
	}
	require.Equal(t, 0, Bucket(-time.Second))
	require.Equal(t, time.Duration(math.MaxInt64), UpperBound(NumBuckets-1))
}

func TestEveryBucketIsContiguous(t *testing.T) {
	prev := time.Duration(-1)
	for i := range NumBuckets {
		ub := UpperBound(i)
		require.Greater(t, ub, prev, "bucket %d", i)
		require.Equal(t, i, Bucket(ub), "upper bound of bucket %d falls in it", i)
		require.Equal(t, i, Bucket(prev+1), "lower bound of bucket %d falls in it", i)
		if ub > 16 {
			require.LessOrEqual(t, float64(ub-prev)/float64(ub), 1.0/16, "bucket %d is narrow", i)
		}
		prev = ub
	}
	require.Equal(t, time.Duration(math.MaxInt64), prev, "the last bucket ends at the largest duration")
}

func TestSnapshotQuantiles(t *testing.T) {
	var h Histogram
	require.Equal(t, Snapshot{Counts: make([]uint64, NumBuckets)}, h.Snapshot())
	require.Zero(t, h.Snapshot().Quantile(0.99))
	require.Zero(t, h.Snapshot().Max())
	require.Zero(t, h.Snapshot().Mean())
	for i := 1; i <= 1000; i++ {
		h.Observe(time.Duration(i) * time.Microsecond)
	}
	h.Observe(-time.Second) // counted as zero
	s := h.Snapshot()
	require.Equal(t, uint64(1001), s.Count)
	require.Equal(t, 500500*time.Microsecond, s.Sum)
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}}
	for _, tc := range tests {
		got := s.Quantile(tc.q)
		require.GreaterOrEqual(t, got, tc.want, "q=%v", tc.q)
		require.LessOrEqual(t, float64(got), float64(tc.want)*1.0625, "q=%v", tc.q)
	}
	require.Equal(t, s.Quantile(1), s.Max())
	require.Equal(t, s.Sum/1001, s.Mean())
}

func TestObserveConcurrent(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Observe(time.Duration(g*1000+i) * time.Nanosecond)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, uint64(8000), h.Snapshot().Count)
}

func TestMetricIsSecondsHistogram(t *testing.T) {
	var h Histogram
	h.Observe(500 * time.Nanosecond) // below the first Prometheus bucket
	h.Observe(3 * time.Millisecond)
	h.Observe(time.Hour) // above the last: only in +Inf
	desc := prometheus.NewDesc("quiver_test_seconds", "Test.", []string{"kind"}, prometheus.Labels{"model": "m"})
	var m dto.Metric
	require.NoError(t, h.Snapshot().Metric(desc, "x").Write(&m))
	hist := m.GetHistogram()
	require.Equal(t, uint64(3), hist.GetSampleCount())
	require.InDelta(t, 3600.003_000_5, hist.GetSampleSum(), 1e-9)
	b := hist.GetBucket()
	require.Len(t, b, promHighExp-promLowExp+1)
	require.InDelta(t, 1023e-9, b[0].GetUpperBound(), 1e-15)
	require.Equal(t, uint64(1), b[0].GetCumulativeCount())
	for i := 1; i < len(b); i++ {
		require.Greater(t, b[i].GetUpperBound(), b[i-1].GetUpperBound())
		require.GreaterOrEqual(t, b[i].GetCumulativeCount(), b[i-1].GetCumulativeCount())
	}
	require.Equal(t, uint64(2), b[len(b)-1].GetCumulativeCount())
	require.Len(t, m.GetLabel(), 2)
}

func BenchmarkObserve(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(0)
		for pb.Next() {
			d += 977
			h.Observe(d & (1<<24 - 1))
		}
	})
}
