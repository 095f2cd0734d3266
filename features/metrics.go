package features

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quiverml/quiver/internal/metrics"
)

// Freshness is a histogram of the age (read time minus event time) of
// served rows.
type Freshness struct {
	// Bounds are the buckets' upper bounds; the last bucket is unbounded.
	Bounds []time.Duration
	// Counts has len(Bounds)+1 entries (not cumulative).
	Counts []uint64
	// Count and Sum over all served rows.
	Count uint64
	Sum   time.Duration
}

// Quantile returns the upper bound of the bucket holding the q-quantile
// of served ages (0 when nothing was served).
func (f Freshness) Quantile(q float64) time.Duration {
	if f.Count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(f.Count)))
	var seen uint64
	for i, c := range f.Counts {
		seen += c
		if seen >= rank && c > 0 {
			if i < len(f.Bounds) {
				return f.Bounds[i]
			}
			break
		}
	}
	return f.Bounds[len(f.Bounds)-1]
}

// ViewStats is a snapshot of one view's counters.
type ViewStats struct {
	View     string
	Version  int
	Rows     int
	Capacity int
	// Reads counts entities read; Found + NotFound + Stale == Reads.
	Reads, Found, NotFound uint64
	// Stale counts rows read outside the view's TTL (served as defaults).
	Stale uint64
	// NullValues counts null values served as defaults in found rows.
	NullValues uint64
	// Writes counts rows stored; StaleWrites rows dropped because a newer
	// event was stored; Rejected invalid rows (InvalidValues of them for
	// NaN/Inf under NaNReject).
	Writes, StaleWrites, Rejected, InvalidValues uint64
	// Evictions counts rows dropped for capacity; Expirations rows
	// reclaimed past their TTL.
	Evictions, Expirations uint64
	// Freshness of the rows served.
	Freshness Freshness
}

// Stats is a snapshot of the store's counters.
type Stats struct {
	Views []ViewStats
}

// View returns the stats of the named view and whether it exists.
func (s Stats) View(name string) (ViewStats, bool) {
	for _, v := range s.Views {
		if v.View == name {
			return v, true
		}
	}
	return ViewStats{}, false
}

func ageBounds() []time.Duration {
	b := make([]time.Duration, ageBuckets-1)
	for i := range b {
		b[i] = time.Duration(1<<uint(i)) * time.Millisecond
	}
	return b
}

// Stats returns a snapshot of every view's counters, sorted by view name.
func (m *Memory) Stats() Stats {
	var out Stats
	for _, vs := range m.viewMap() {
		out.Views = append(out.Views, vs.snapshot())
	}
	slices.SortFunc(out.Views, func(a, b ViewStats) int {
		if a.View < b.View {
			return -1
		}
		if a.View > b.View {
			return 1
		}
		return 0
	})
	return out
}

func (vs *viewStore) snapshot() ViewStats {
	s := ViewStats{
		View: vs.s.view.Name, Version: vs.s.view.Version, Rows: vs.rows(), Capacity: vs.capacity,
		Writes: vs.w.writes.Load(), StaleWrites: vs.w.staleWrites.Load(), Rejected: vs.w.rejected.Load(),
		InvalidValues: vs.w.invalidValues.Load(), Evictions: vs.w.evictions.Load(), Expirations: vs.w.expirations.Load(),
	}
	s.Freshness.Bounds = ageBounds()
	s.Freshness.Counts = make([]uint64, ageBuckets)
	var ageMs uint64
	for i := range vs.reads {
		r := &vs.reads[i]
		s.Reads += r.reads.Load()
		s.Found += r.found.Load()
		s.NotFound += r.notFound.Load()
		s.Stale += r.stale.Load()
		s.NullValues += r.nulls.Load()
		ageMs += r.ageSumMs.Load()
		for b := range r.hist {
			c := r.hist[b].Load()
			s.Freshness.Counts[b] += c
			s.Freshness.Count += c
		}
	}
	s.Freshness.Sum = time.Duration(ageMs) * time.Millisecond
	return s
}

// FeatureStats returns the running statistics of every feature of view,
// in view order, over the current window.
func (m *Memory) FeatureStats(view string) ([]FeatureStats, error) {
	vs, err := m.view(view)
	if err != nil {
		return nil, err
	}
	return vs.currentStats(false), nil
}

func (vs *viewStore) currentStats(reset bool) []FeatureStats {
	acc := make([]runStats, len(vs.s.view.Features))
	for i := range vs.stats {
		st := &vs.stats[i]
		st.mu.Lock()
		for f := range acc {
			acc[f].merge(&st.st[f])
		}
		if reset {
			st.st = make([]runStats, len(vs.s.view.Features))
		}
		st.mu.Unlock()
	}
	out := make([]FeatureStats, len(acc))
	for f := range acc {
		out[f] = acc[f].export(vs.s.view.Features[f])
	}
	return out
}

// ResetStats starts a new statistics window for view.
func (m *Memory) ResetStats(view string) error {
	vs, err := m.view(view)
	if err != nil {
		return err
	}
	vs.currentStats(true)
	return nil
}

// CaptureReference makes the current statistics window of view the
// reference that Drift compares against, and starts a new window.
func (m *Memory) CaptureReference(view string) error {
	vs, err := m.view(view)
	if err != nil {
		return err
	}
	ref := vs.currentStats(true)
	vs.refMu.Lock()
	vs.ref = ref
	vs.refMu.Unlock()
	return nil
}

// SetReference installs reference statistics for view, for example ones
// computed offline from training data with the same Sketch type. The
// slice is in view feature order.
func (m *Memory) SetReference(view string, ref []FeatureStats) error {
	vs, err := m.view(view)
	if err != nil {
		return err
	}
	if len(ref) != len(vs.s.view.Features) {
		return fmt.Errorf("%w: view %q: reference has %d features, want %d", ErrInvalidView, view, len(ref), len(vs.s.view.Features))
	}
	vs.refMu.Lock()
	vs.ref = slices.Clone(ref)
	vs.refMu.Unlock()
	return nil
}

// Drift compares the current statistics window of view against its
// reference (CaptureReference or SetReference). Without a reference every
// feature is reported unscored.
func (m *Memory) Drift(view string, th DriftThresholds) (DriftReport, error) {
	vs, err := m.view(view)
	if err != nil {
		return DriftReport{}, err
	}
	vs.refMu.Lock()
	ref := vs.ref
	vs.refMu.Unlock()
	return driftReport(vs.s, ref, vs.currentStats(false), th, m.now()), nil
}

// Collector returns a prometheus.Collector exporting the store's counters
// and freshness histograms under the quiver_features_ prefix, one series
// per view (the "view" label). The caller registers it where it wants; the
// package registers nothing.
//
// Every series carries constLabels as constant labels, added to the
// default {"store": Options.Name}; a key of constLabels overrides the
// default. Stores whose labels differ register side by side in one
// registry; two with identical labels are refused by the registry as a
// duplicate. Every collector registered in one registry must use the same
// label names.
func (m *Memory) Collector(constLabels prometheus.Labels) prometheus.Collector {
	l := metrics.ConstLabels(prometheus.Labels{"store": m.opts.Name}, constLabels)
	d := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc("quiver_features_"+name, help, append([]string{"view"}, variable...), l)
	}
	return &collector{m: m,
		reads:  d("reads_total", "Entities read, by view and result (found, not_found, outside_max_age).", "result"),
		nulls:  d("null_values_total", "Null values served as defaults in found rows."),
		writes: d("writes_total", "Rows written, by view and result (stored, stale, rejected).", "result"),
		evict:  d("evictions_total", "Rows removed, by view and reason (capacity, ttl).", "reason"),
		rows:   d("rows", "Rows held, by view."),
		cap:    d("capacity_rows", "Row capacity, by view."),
		age:    d("served_age_seconds", "Age (read time minus event time) of served rows, by view."),
	}
}

type collector struct {
	m                                           *Memory
	reads, nulls, writes, evict, rows, cap, age *prometheus.Desc
}

// Describe sends the descriptors of every metric the collector exports.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.reads, c.nulls, c.writes, c.evict, c.rows, c.cap, c.age} {
		ch <- d
	}
}

// Collect sends the current value of every metric, one series per view.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.m.Stats().Views {
		v := s.View
		ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(s.Found), v, "found")
		ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(s.NotFound), v, "not_found")
		ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(s.Stale), v, "outside_max_age")
		ch <- prometheus.MustNewConstMetric(c.nulls, prometheus.CounterValue, float64(s.NullValues), v)
		ch <- prometheus.MustNewConstMetric(c.writes, prometheus.CounterValue, float64(s.Writes), v, "stored")
		ch <- prometheus.MustNewConstMetric(c.writes, prometheus.CounterValue, float64(s.StaleWrites), v, "stale")
		ch <- prometheus.MustNewConstMetric(c.writes, prometheus.CounterValue, float64(s.Rejected), v, "rejected")
		ch <- prometheus.MustNewConstMetric(c.evict, prometheus.CounterValue, float64(s.Evictions), v, "capacity")
		ch <- prometheus.MustNewConstMetric(c.evict, prometheus.CounterValue, float64(s.Expirations), v, "ttl")
		ch <- prometheus.MustNewConstMetric(c.rows, prometheus.GaugeValue, float64(s.Rows), v)
		ch <- prometheus.MustNewConstMetric(c.cap, prometheus.GaugeValue, float64(s.Capacity), v)
		buckets := make(map[float64]uint64, len(s.Freshness.Bounds))
		var cum uint64
		for i, b := range s.Freshness.Bounds {
			cum += s.Freshness.Counts[i]
			buckets[b.Seconds()] = cum
		}
		ch <- prometheus.MustNewConstHistogram(c.age, s.Freshness.Count, s.Freshness.Sum.Seconds(), buckets, v)
	}
}
