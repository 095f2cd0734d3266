package redisstate

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quiverml/quiver/internal/metrics"
)

// Collector returns a prometheus.Collector exporting the Sync's counters:
//
//   - quiver_abtest_sync_flushes_total, quiver_abtest_sync_failures_total:
//     flushes that succeeded and failed;
//   - quiver_abtest_sync_resyncs_total: full resends after Redis lost or
//     rebuilt shared state;
//   - quiver_abtest_sync_corrupt_total: data found in Redis that this
//     package did not write;
//   - quiver_abtest_sync_decisions_total: stops and resumes, by direction
//     (published: taken here; applied: taken on another replica);
//   - quiver_abtest_sync_flush_seconds: histogram, the duration of each
//     flush (one round trip, two after a resync);
//   - quiver_abtest_sync_staleness_seconds: histogram, the age the pooled
//     numbers had reached when each successful flush renewed them (the
//     time since the previous successful flush: about FlushInterval, and
//     an outage's length after one); the current age is Stats.Staleness;
//   - quiver_abtest_sync_up: gauge, 1 when the last flush succeeded.
//
// Every series carries constLabels, added to the default {"replica": the
// replica id}; a key of constLabels overrides the default. The caller
// registers it; the package registers nothing.
func (s *Sync) Collector(constLabels prometheus.Labels) prometheus.Collector {
	l := metrics.ConstLabels(prometheus.Labels{"replica": s.opts.ReplicaID}, constLabels)
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("quiver_abtest_sync_"+name, help, labels, l)
	}
	return &collector{s: s,
		flushes:   d("flushes_total", "Flushes of experiment state to Redis that succeeded."),
		failures:  d("failures_total", "Flushes of experiment state to Redis that failed."),
		resyncs:   d("resyncs_total", "Full resends of a replica's totals after Redis lost or rebuilt shared state."),
		corrupt:   d("corrupt_total", "Shared experiment state found in Redis that was not written by Quiver."),
		decisions: d("decisions_total", "Variant stops and resumes shared through Redis.", "direction"),
		duration:  d("flush_seconds", "Duration of a flush of experiment state to Redis."),
		staleness: d("staleness_seconds", "Age of the pooled experiment statistics when a flush renewed them."),
		up:        d("up", "1 when the last flush to Redis succeeded, else 0."),
	}
}

type collector struct {
	s                                                                       *Sync
	flushes, failures, resyncs, corrupt, decisions, duration, staleness, up *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.flushes, c.failures, c.resyncs, c.corrupt, c.decisions, c.duration, c.staleness, c.up} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	counter := func(d *prometheus.Desc, n uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), labels...)
	}
	counter(c.flushes, st.Flushes)
	counter(c.failures, st.Failures)
	counter(c.resyncs, st.Resyncs)
	counter(c.corrupt, st.Corrupt)
	counter(c.decisions, st.Published, "published")
	counter(c.decisions, st.Applied, "applied")
	ch <- c.s.flushTime.Snapshot().Metric(c.duration)
	ch <- c.s.staleTime.Snapshot().Metric(c.staleness)
	up := 0.0
	if st.Err == nil && st.Flushes > 0 {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
}
