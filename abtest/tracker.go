package abtest

import (
	"fmt"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Tracker accumulates per-variant statistics of one experiment: requests,
// errors and latency (recorded by a Router), exposures, conversions and a
// continuous metric (recorded by the host application from outcomes). It is
// safe for concurrent use and implements prometheus.Collector.
//
// Exposures count what the caller records: a Router records one per enrolled
// request; record them yourself, once per unit, for unit-level analysis.
type Tracker struct {
	experiment string
	names      []string
	index      map[string]int
	vs         []*variantCounters

	descs trackerDescs
}

type variantCounters struct {
	requests    atomic.Uint64
	errors      atomic.Uint64
	exposures   atomic.Uint64
	conversions atomic.Uint64
	latency     histogram

	mu     sync.Mutex
	metric welford
}

// NewTracker returns a tracker for the named variants of experiment.
func NewTracker(experiment string, variants []string) (*Tracker, error) {
	if len(variants) == 0 {
		return nil, fmt.Errorf("%w: tracker for %q has no variants, want at least one", ErrConfig, experiment)
	}
	t := &Tracker{experiment: experiment, index: make(map[string]int, len(variants))}
	for _, v := range variants {
		if v == "" {
			return nil, fmt.Errorf("%w: tracker for %q: empty variant name", ErrConfig, experiment)
		}
		if _, dup := t.index[v]; dup {
			return nil, fmt.Errorf("%w: tracker for %q: %q appears twice", ErrDuplicateVariant, experiment, v)
		}
		t.index[v] = len(t.names)
		t.names = append(t.names, v)
		t.vs = append(t.vs, &variantCounters{})
	}
	t.descs = newTrackerDescs()
	return t, nil
}

// Experiment returns the experiment name the tracker was created for.
func (t *Tracker) Experiment() string { return t.experiment }

// Variants returns the tracked variant names.
func (t *Tracker) Variants() []string { return append([]string(nil), t.names...) }

func (t *Tracker) lookup(variant string) (*variantCounters, error) {
	i, ok := t.index[variant]
	if !ok {
		return nil, fmt.Errorf("%w: experiment %q has no variant %q, want one of %s", ErrUnknownVariant, t.experiment, variant, quoteList(t.names))
	}
	return t.vs[i], nil
}

// Expose records one exposure of variant.
func (t *Tracker) Expose(variant string) error {
	v, err := t.lookup(variant)
	if err != nil {
		return err
	}
	v.exposures.Add(1)
	return nil
}

// Convert records one conversion of variant (a binary outcome: click,
// purchase). Conversion rates are conversions / exposures.
func (t *Tracker) Convert(variant string) error {
	v, err := t.lookup(variant)
	if err != nil {
		return err
	}
	v.conversions.Add(1)
	return nil
}

// Observe records one value of the experiment's continuous metric (revenue,
// watch time) for variant. value must be finite.
func (t *Tracker) Observe(variant string, value float64) error {
	v, err := t.lookup(variant)
	if err != nil {
		return err
	}
	if !finite(value) {
		return fmt.Errorf("%w: metric value %v for variant %q, want a finite number", ErrReward, value, variant)
	}
	v.mu.Lock()
	v.metric.add(value)
	v.mu.Unlock()
	return nil
}

// ObserveRequest records one served request of variant: its latency and
// whether it failed. A Router calls it for every enrolled request.
func (t *Tracker) ObserveRequest(variant string, latency time.Duration, failed bool) error {
	v, err := t.lookup(variant)
	if err != nil {
		return err
	}
	v.observeRequest(latency, failed)
	return nil
}

func (v *variantCounters) observeRequest(latency time.Duration, failed bool) {
	v.requests.Add(1)
	if failed {
		v.errors.Add(1)
	}
	v.latency.observe(latency)
}

// VariantStats is a snapshot of one variant's statistics. Intervals are 95%;
// they are zero when there is too little data to compute them.
type VariantStats struct {
	Variant   string
	Requests  uint64
	Errors    uint64
	ErrorRate float64
	// P50 and P99 are request latency quantiles, accurate to 1/16 of the
	// value (log-linear histogram, reported at the bucket's upper edge).
	P50, P99 time.Duration

	Exposures      uint64
	Conversions    uint64
	ConversionRate float64
	// ConversionLow and ConversionHigh bound the Wilson score interval.
	ConversionLow, ConversionHigh float64

	// Metric summarises the values given to Observe; MetricLow and
	// MetricHigh bound the Student's t interval of its mean.
	Metric                Sample
	MetricLow, MetricHigh float64
}

// Stats returns a snapshot of every variant, in the order given to NewTracker.
func (t *Tracker) Stats() []VariantStats {
	out := make([]VariantStats, len(t.names))
	for i, name := range t.names {
		out[i] = t.vs[i].snapshot(name)
	}
	return out
}

// Variant returns the snapshot of one variant.
func (t *Tracker) Variant(name string) (VariantStats, error) {
	v, err := t.lookup(name)
	if err != nil {
		return VariantStats{}, err
	}
	return v.snapshot(name), nil
}

func (v *variantCounters) snapshot(name string) VariantStats {
	s := VariantStats{
		Variant:     name,
		Requests:    v.requests.Load(),
		Errors:      v.errors.Load(),
		Exposures:   v.exposures.Load(),
		Conversions: v.conversions.Load(),
	}
	if s.Requests > 0 {
		s.ErrorRate = float64(s.Errors) / float64(s.Requests)
		s.P50 = v.latency.quantile(0.50)
		s.P99 = v.latency.quantile(0.99)
	}
	if s.Exposures > 0 {
		s.ConversionRate = float64(s.Conversions) / float64(s.Exposures)
		s.ConversionLow, s.ConversionHigh, _ = WilsonInterval(min(s.Conversions, s.Exposures), s.Exposures)
	}
	v.mu.Lock()
	s.Metric = v.metric.sample()
	v.mu.Unlock()
	s.MetricLow, s.MetricHigh, _ = MeanInterval(s.Metric)
	return s
}

// CompareConversions runs TwoProportionZTest of treatment's conversion rate
// against control's.
func (t *Tracker) CompareConversions(control, treatment string) (ProportionTest, error) {
	c, err := t.Variant(control)
	if err != nil {
		return ProportionTest{}, err
	}
	x, err := t.Variant(treatment)
	if err != nil {
		return ProportionTest{}, err
	}
	return TwoProportionZTest(c.Conversions, c.Exposures, x.Conversions, x.Exposures)
}

// CompareMeans runs WelchTTest of treatment's metric against control's.
func (t *Tracker) CompareMeans(control, treatment string) (TTest, error) {
	c, err := t.Variant(control)
	if err != nil {
		return TTest{}, err
	}
	x, err := t.Variant(treatment)
	if err != nil {
		return TTest{}, err
	}
	return WelchTTest(c.Metric, x.Metric)
}

// SRM checks the exposures of each variant against weights (as returned by
// Experiment.Weights; variants not listed count as weight 0). It is only
// meaningful while the weights have not changed since counting began.
func (t *Tracker) SRM(weights []Variant) (SRMResult, error) {
	w := make([]float64, len(t.names))
	for _, v := range weights {
		i, ok := t.index[v.Name]
		if !ok {
			return SRMResult{}, fmt.Errorf("%w: SRM weights name %q, want one of %s", ErrUnknownVariant, v.Name, quoteList(t.names))
		}
		w[i] = v.Weight
	}
	obs := make([]uint64, len(t.names))
	for i, v := range t.vs {
		obs[i] = v.exposures.Load()
	}
	return SRMCheck(obs, w)
}

// histogram is a lock-free log-linear latency histogram over nanoseconds:
// values below 16 have their own bucket; above, each power of two is split
// into 16 equal buckets, so a bucket's width is at most 1/16 of its values.
type histogram struct {
	counts [histBuckets]atomic.Uint64
}

const histSub = 4 // log2 of the buckets per power of two
const histBuckets = (64-histSub+1)<<histSub + 1

func histIndex(v uint64) int {
	if v < 1<<histSub {
		return int(v)
	}
	e := bits.Len64(v) - 1
	sub := (v >> uint(e-histSub)) & (1<<histSub - 1)
	return (e-histSub+1)<<histSub + int(sub)
}

// histUpper returns the largest value that falls in bucket i.
func histUpper(i int) uint64 {
	if i < 1<<histSub {
		return uint64(i)
	}
	e := i>>histSub + histSub - 1
	sub := uint64(i & (1<<histSub - 1))
	lo := (1<<histSub + sub) << uint(e-histSub)
	return lo + (1 << uint(e-histSub)) - 1
}

func (h *histogram) observe(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[histIndex(v)].Add(1)
}

// total sums the buckets; observe keeps no separate total so that a
// request costs one atomic add here, not two.
func (h *histogram) total() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

func (h *histogram) quantile(q float64) time.Duration {
	n := h.total()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			u := histUpper(i)
			if u > math.MaxInt64 {
				u = math.MaxInt64
			}
			return time.Duration(u)
		}
	}
	return time.Duration(math.MaxInt64)
}

type trackerDescs struct {
	requests, errors, exposures, conversions, p99 *prometheus.Desc
}

func newTrackerDescs() trackerDescs {
	l := []string{"experiment", "variant"}
	return trackerDescs{
		requests:    prometheus.NewDesc("abtest_requests_total", "Requests served by an experiment variant.", l, nil),
		errors:      prometheus.NewDesc("abtest_errors_total", "Failed requests of an experiment variant.", l, nil),
		exposures:   prometheus.NewDesc("abtest_exposures_total", "Exposures recorded for an experiment variant.", l, nil),
		conversions: prometheus.NewDesc("abtest_conversions_total", "Conversions recorded for an experiment variant.", l, nil),
		p99:         prometheus.NewDesc("abtest_latency_p99_seconds", "99th percentile request latency of an experiment variant.", l, nil),
	}
}

// Describe implements prometheus.Collector.
func (t *Tracker) Describe(ch chan<- *prometheus.Desc) {
	d := t.descs
	for _, x := range []*prometheus.Desc{d.requests, d.errors, d.exposures, d.conversions, d.p99} {
		ch <- x
	}
}

// Collect implements prometheus.Collector.
func (t *Tracker) Collect(ch chan<- prometheus.Metric) {
	d := t.descs
	for _, s := range t.Stats() {
		ch <- prometheus.MustNewConstMetric(d.requests, prometheus.CounterValue, float64(s.Requests), t.experiment, s.Variant)
		ch <- prometheus.MustNewConstMetric(d.errors, prometheus.CounterValue, float64(s.Errors), t.experiment, s.Variant)
		ch <- prometheus.MustNewConstMetric(d.exposures, prometheus.CounterValue, float64(s.Exposures), t.experiment, s.Variant)
		ch <- prometheus.MustNewConstMetric(d.conversions, prometheus.CounterValue, float64(s.Conversions), t.experiment, s.Variant)
		ch <- prometheus.MustNewConstMetric(d.p99, prometheus.GaugeValue, s.P99.Seconds(), t.experiment, s.Variant)
	}
}
