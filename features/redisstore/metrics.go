package redisstore

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quiverml/quiver/internal/metrics"
)

// TierStats counts a tier's traffic with Redis since it was created. The
// local store's own counters are in Local().Stats().
type TierStats struct {
	// Fetched is the number of entities read from Redis (local misses and
	// local copies older than Options.MaxStaleness); Found is how many of
	// them Redis held.
	Fetched, Found uint64
	// Written is the number of rows sent to Redis.
	Written uint64
	// Failures counts Redis calls that failed, not counting calls ended by
	// the caller's own context. Refused counts calls the open circuit
	// breaker failed at once with ErrUnavailable.
	Failures, Refused uint64
	// Undecodable counts values found in Redis that could not be decoded
	// for their view (and were not served).
	Undecodable uint64
	// BreakerOpen reports whether the circuit breaker is open now: calls
	// that need Redis fail at once until a probe finds it back.
	BreakerOpen bool
}

// Stats returns the tier's Redis counters.
func (t *Tier) Stats() TierStats {
	found := t.stats.found.Load() // before fetched, which it never exceeds
	return TierStats{
		Fetched:     t.stats.fetched.Load(),
		Found:       found,
		Written:     t.stats.written.Load(),
		Failures:    t.stats.failures.Load(),
		Refused:     t.stats.refused.Load(),
		Undecodable: t.stats.undecodable.Load(),
		BreakerOpen: t.breaker.open(),
	}
}

// Collector returns a prometheus.Collector exporting the tier's Redis
// counters under the quiver_features_redis_ prefix. It does not include
// the local store's metrics: register Local().Collector beside it with the
// same labels.
//
// Every series carries constLabels as constant labels, added to the
// default {"store": the local store's name}; a key of constLabels
// overrides the default, as for features.Memory.Collector.
func (t *Tier) Collector(constLabels prometheus.Labels) prometheus.Collector {
	l := metrics.ConstLabels(prometheus.Labels{"store": t.local.Name()}, constLabels)
	d := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc("quiver_features_redis_"+name, help, variable, l)
	}
	return &tierCollector{t: t,
		reads:   d("reads_total", "Entities read from Redis, by result (found, not_found).", "result"),
		writes:  d("writes_total", "Rows written to Redis."),
		errors:  d("errors_total", "Redis calls that failed (failed), calls refused by the open circuit breaker (refused), values that could not be decoded (undecodable).", "kind"),
		breaker: d("breaker_open", "1 while the circuit breaker fails Redis calls at once, else 0."),
	}
}

type tierCollector struct {
	t                              *Tier
	reads, writes, errors, breaker *prometheus.Desc
}

// Describe sends the descriptors of every metric the collector exports.
func (c *tierCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.reads, c.writes, c.errors, c.breaker} {
		ch <- d
	}
}

// Collect sends the current value of every metric.
func (c *tierCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.t.Stats()
	open := 0.0
	if s.BreakerOpen {
		open = 1
	}
	ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(s.Found), "found")
	ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(s.Fetched-s.Found), "not_found")
	ch <- prometheus.MustNewConstMetric(c.writes, prometheus.CounterValue, float64(s.Written))
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(s.Failures), "failed")
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(s.Refused), "refused")
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(s.Undecodable), "undecodable")
	ch <- prometheus.MustNewConstMetric(c.breaker, prometheus.GaugeValue, open)
}
