// Package latency is the latency histogram every Quiver package records
// into: lock-free, log-linear over nanoseconds, cheap enough for a request
// path, and exported to Prometheus as a histogram in seconds.
//
// Values below 16ns have a bucket each; above, every power of two is split
// into 16 equal buckets, so a bucket is at most 1/16 as wide as the values
// it holds and a quantile read at a bucket's upper edge is within 6.25% of
// the true value. Observing costs a bit scan and two atomic adds.
package latency

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// subBits is log2 of the buckets per power of two.
const subBits = 4

// NumBuckets is the number of buckets: enough for any non-negative
// time.Duration (the largest, 2^63-1ns, falls in the last one).
const NumBuckets = (64 - subBits) << subBits

// Histogram is a lock-free histogram of durations. The zero value is empty
// and ready to use; it must not be copied after first use. It is safe for
// concurrent use.
type Histogram struct {
	counts [NumBuckets]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

// Bucket returns the index of the bucket d falls in; negative durations
// count as zero.
func Bucket(d time.Duration) int {
	if d < 0 {
		d = 0
	}
	ns := uint64(d)
	if ns < 1<<subBits {
		return int(ns)
	}
	e := bits.Len64(ns) - 1
	sub := (ns >> (e - subBits)) & (1<<subBits - 1)
	return (e-subBits+1)<<subBits + int(sub)
}

// UpperBound returns the largest duration that falls in bucket i.
func UpperBound(i int) time.Duration {
	if i < 1<<subBits {
		return time.Duration(i)
	}
	e := i>>subBits + subBits - 1
	sub := uint64(i & (1<<subBits - 1))
	return time.Duration(uint64(1)<<e + (sub+1)<<(e-subBits) - 1)
}

// Observe records one duration; negative durations count as zero (a clock
// that stepped back must not corrupt the histogram).
func (h *Histogram) Observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[Bucket(d)].Add(1)
	h.sum.Add(int64(d))
}

// Snapshot is a copy of a Histogram at one moment.
type Snapshot struct {
	// Count is the number of observations.
	Count uint64
	// Sum is their total. Observations racing with Snapshot may be in Sum
	// but not in Counts, or the reverse; each is exact on its own.
	Sum time.Duration
	// Counts has NumBuckets entries, not cumulative; UpperBound(i) is the
	// largest duration of bucket i.
	Counts []uint64
}

// Snapshot copies the histogram. Count is the sum of the copied buckets,
// so quantiles computed from the snapshot are consistent with it.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Counts: make([]uint64, NumBuckets)}
	for i := range h.counts {
		c := h.counts[i].Load()
		s.Counts[i] = c
		s.Count += c
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// Quantile returns the upper bound of the bucket holding the q-quantile
// (0 < q <= 1), or 0 when the snapshot is empty.
func (s Snapshot) Quantile(q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.Count)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range s.Counts {
		seen += c
		if seen >= rank {
			return UpperBound(i)
		}
	}
	return UpperBound(len(s.Counts) - 1)
}

// Mean returns Sum/Count, or 0 when the snapshot is empty.
func (s Snapshot) Mean() time.Duration {
	if s.Count == 0 {
		return 0
	}
	return s.Sum / time.Duration(s.Count)
}

// Max returns the upper bound of the highest non-empty bucket, or 0 when
// the snapshot is empty.
func (s Snapshot) Max() time.Duration {
	for i := len(s.Counts) - 1; i >= 0; i-- {
		if s.Counts[i] > 0 {
			return UpperBound(i)
		}
	}
	return 0
}

// Prometheus buckets are the upper edges of the powers of two from
// 2^10ns (about 1µs) to 2^37ns (about 137s): 28 buckets cover every latency
// a service cares about, where the 900-odd internal buckets would make each
// series too heavy to scrape. Edges sit exactly on internal bucket
// boundaries, so every cumulative count is exact.
const (
	promLowExp  = 10
	promHighExp = 37
)

// Metric returns the snapshot as a Prometheus histogram in seconds, for
// desc (whose variable labels take labelValues). It panics, as
// prometheus.MustNewConstHistogram does, when labelValues do not match
// desc; collectors build both from the same table.
func (s Snapshot) Metric(desc *prometheus.Desc, labelValues ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, promHighExp-promLowExp+1)
	var cum uint64
	next := promLowExp
	for i, c := range s.Counts {
		cum += c
		// The last bucket of power e holds values up to 2^(e+1)-1.
		if ub := UpperBound(i); ub == time.Duration(uint64(1)<<next-1) {
			buckets[ub.Seconds()] = cum
			if next++; next > promHighExp {
				break
			}
		}
	}
	return prometheus.MustNewConstHistogram(desc, s.Count, s.Sum.Seconds(), buckets, labelValues...)
}
