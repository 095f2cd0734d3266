package gorgonia

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quiverml/quiver/internal/metrics"
)

// Stats is a snapshot of a model's counters.
type Stats struct {
	// Runs counts Predict calls that reached a compiled graph.
	Runs uint64
	// Errors counts runs that failed (serving.RunError).
	Errors uint64
	// Compiles counts graphs built: one per new input shape, and one per
	// run that found every machine of its shape busy.
	Compiles uint64
	// Evictions counts shapes dropped from the cache (Options.MaxShapes).
	Evictions uint64
	// Shapes is the number of input shapes cached now, and Idle the idle
	// machines across them.
	Shapes, Idle int
}

// Stats returns a snapshot of the model's counters.
func (m *Model) Stats() Stats {
	s := Stats{
		Runs:      m.stats.runs.Load(),
		Errors:    m.stats.errors.Load(),
		Compiles:  m.stats.compiles.Load(),
		Evictions: m.stats.evictions.Load(),
	}
	s.Shapes, s.Idle = m.cache.counts()
	return s
}

// Collector returns a prometheus.Collector exposing Stats as
// quiver_gorgonia_{runs,run_errors,compiles,evictions}_total and the gauges
// quiver_gorgonia_cached_shapes and quiver_gorgonia_idle_machines. Every
// series carries the labels {"model": name} extended (or overridden) by
// constLabels. Register it where the application wants it.
func (m *Model) Collector(constLabels prometheus.Labels) prometheus.Collector {
	l := metrics.ConstLabels(prometheus.Labels{"model": m.info.Name}, constLabels)
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("quiver_gorgonia_"+name, help, nil, l)
	}
	return &collector{m: m,
		runs:      d("runs_total", "Predict calls that ran a compiled graph."),
		errors:    d("run_errors_total", "Runs that failed."),
		compiles:  d("compiles_total", "Graphs compiled for an input shape."),
		evictions: d("evictions_total", "Input shapes dropped from the graph cache."),
		shapes:    d("cached_shapes", "Input shapes with compiled graphs cached."),
		idle:      d("idle_machines", "Compiled graphs idle in the cache."),
	}
}

type collector struct {
	m                                 *Model
	runs, errors, compiles, evictions *prometheus.Desc
	shapes, idle                      *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.runs, c.errors, c.compiles, c.evictions, c.shapes, c.idle} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.runs, s.Runs)
	counter(c.errors, s.Errors)
	counter(c.compiles, s.Compiles)
	counter(c.evictions, s.Evictions)
	ch <- prometheus.MustNewConstMetric(c.shapes, prometheus.GaugeValue, float64(s.Shapes))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.Idle))
}
