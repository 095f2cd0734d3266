package abtest

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quiverml/quiver/internal/latency"
	"github.com/quiverml/quiver/internal/metrics"
)

// Tracker accumulates per-variant statistics of one experiment: requests,
// errors and latency (recorded by a Router), exposures, conversions and a
// continuous metric (recorded by the host application from outcomes). It is
// safe for concurrent use; Collector exports it to Prometheus.
//
// Exposures count what the caller records: a Router records one per enrolled
// request; record them yourself, once per unit, for unit-level analysis.
//
// A Tracker counts what happens in this process. Several replicas pool
// their numbers through a state backend (abtest/redisstate) that reads
// Totals and calls SetPooled: from then on Stats, Variant, the Compare
// methods, SRM and a Guardrail report every replica's numbers, while
// Collector keeps exporting this replica's own (Prometheus sums replicas
// itself).
type Tracker struct {
	experiment string
	names      []string
	index      map[string]int
	vs         []*variantCounters
	// pool, when set, turns local counts into pooled ones (SetPooled).
	pool atomic.Pointer[trackerPool]

	totalNamesMu sync.Mutex
	totalNames   []variantTotalNames // built by the first Totals
}

type variantCounters struct {
	requests    atomic.Uint64
	errors      atomic.Uint64
	exposures   atomic.Uint64
	conversions atomic.Uint64
	latency     latency.Histogram

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
// watch time) for variant. value must be finite and within
// [-MaxReward, MaxReward], so that the running mean and variance stay
// finite; otherwise Observe returns ErrReward and records nothing.
func (t *Tracker) Observe(variant string, value float64) error {
	v, err := t.lookup(variant)
	if err != nil {
		return err
	}
	if !finite(value) || math.Abs(value) > MaxReward {
		return fmt.Errorf("%w: metric value %v for variant %q, want a finite number in [-%g, %g]", ErrReward, value, variant, MaxReward, MaxReward)
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
	v.latency.Observe(latency)
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

// Stats returns a snapshot of every variant, in the order given to
// NewTracker: the pooled numbers of every replica when a state backend
// pools them (see SetPooled), this replica's otherwise.
func (t *Tracker) Stats() []VariantStats {
	p := t.pool.Load()
	out := make([]VariantStats, len(t.names))
	for i := range t.names {
		out[i] = t.snapshot(i, p)
	}
	return out
}

// Variant returns the snapshot of one variant, pooled like Stats.
func (t *Tracker) Variant(name string) (VariantStats, error) {
	i, ok := t.index[name]
	if !ok {
		_, err := t.lookup(name)
		return VariantStats{}, err
	}
	return t.snapshot(i, t.pool.Load()), nil
}

func (t *Tracker) snapshot(i int, p *trackerPool) VariantStats {
	v := t.vs[i]
	s := VariantStats{
		Variant:     t.names[i],
		Requests:    v.requests.Load(),
		Errors:      v.errors.Load(),
		Exposures:   v.exposures.Load(),
		Conversions: v.conversions.Load(),
	}
	v.mu.Lock()
	metric := v.metric
	v.mu.Unlock()
	var pv *variantPool
	if p != nil {
		pv = &p.vs[i]
		s.Requests = addOffset(s.Requests, pv.requests)
		s.Errors = addOffset(s.Errors, pv.errors)
		s.Exposures = addOffset(s.Exposures, pv.exposures)
		s.Conversions = addOffset(s.Conversions, pv.conversions)
		metric = poolMoments(pv.metric, pv.metricBase, metric)
	}
	if s.Requests > 0 {
		s.ErrorRate = float64(min(s.Errors, s.Requests)) / float64(s.Requests)
		lat := v.latency.Snapshot()
		if pv != nil {
			pv.apply(&lat)
		}
		s.P50 = lat.Quantile(0.50)
		s.P99 = lat.Quantile(0.99)
	}
	if s.Exposures > 0 {
		s.ConversionRate = float64(s.Conversions) / float64(s.Exposures)
		s.ConversionLow, s.ConversionHigh, _ = WilsonInterval(min(s.Conversions, s.Exposures), s.Exposures)
	}
	s.Metric = metric.sample()
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
	p := t.pool.Load()
	for i, v := range t.vs {
		obs[i] = v.exposures.Load()
		if p != nil {
			obs[i] = addOffset(obs[i], p.vs[i].exposures)
		}
	}
	return SRMCheck(obs, w)
}

// Collector returns a prometheus.Collector exporting the tracker's
// per-variant requests, errors, exposures and conversions under the
// quiver_abtest_ prefix (this replica's own numbers, also when they are
// pooled: summing the series of all replicas gives the pooled totals), and request latency as the histogram
// quiver_abtest_request_seconds, one series per variant (the "variant"
// label). The caller registers it where it wants; the package registers
// nothing.
//
// Every series carries constLabels as constant labels, added to the
// default {"experiment": the tracker's experiment}; a key of constLabels
// overrides the default. Trackers whose labels differ register side by
// side in one registry (a router's shadow tracker is named
// "<experiment>/shadow", so it differs from the router's tracker); two
// with identical labels are refused by the registry as a duplicate. Every
// collector registered in one registry must use the same label names.
func (t *Tracker) Collector(constLabels prometheus.Labels) prometheus.Collector {
	l := metrics.ConstLabels(prometheus.Labels{"experiment": t.experiment}, constLabels)
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("quiver_abtest_"+name, help, []string{"variant"}, l)
	}
	return &trackerCollector{t: t,
		requests:    d("requests_total", "Requests served by an experiment variant."),
		errors:      d("errors_total", "Failed requests of an experiment variant."),
		exposures:   d("exposures_total", "Exposures recorded for an experiment variant."),
		conversions: d("conversions_total", "Conversions recorded for an experiment variant."),
		latency:     d("request_seconds", "Request latency of an experiment variant."),
	}
}

type trackerCollector struct {
	t                                                 *Tracker
	requests, errors, exposures, conversions, latency *prometheus.Desc
}

func (c *trackerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{c.requests, c.errors, c.exposures, c.conversions, c.latency} {
		ch <- x
	}
}

func (c *trackerCollector) Collect(ch chan<- prometheus.Metric) {
	for i, name := range c.t.names {
		v := c.t.vs[i]
		counter := func(d *prometheus.Desc, n uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), name)
		}
		counter(c.requests, v.requests.Load())
		counter(c.errors, v.errors.Load())
		counter(c.exposures, v.exposures.Load())
		counter(c.conversions, v.conversions.Load())
		ch <- v.latency.Snapshot().Metric(c.latency, name)
	}
}
