package registry

import (
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quiverml/quiver/internal/metrics"
)

// Stats is a snapshot of a Server's counters and of what it serves.
type Stats struct {
	Polls        uint64 // registry reads
	PollErrors   uint64 // reads that failed (nothing was unloaded)
	Loads        uint64 // versions loaded and warmed up
	LoadFailures uint64 // versions that failed checksum, load or warm-up
	Swaps        uint64 // alias moves applied
	Unloads      uint64 // versions taken out of the loaded set
	Closed       uint64 // versions closed after draining
	// NotServing counts requests refused because their alias had no
	// loaded version.
	NotServing    uint64
	EventsDropped uint64
	// LastError is the most recent failure, and when it happened.
	LastError   string
	LastErrorAt time.Time
	// Loaded lists the versions in the loaded set.
	Loaded []LoadedStats
	// Serving lists what each alias serves.
	Serving []ServingStats
}

// LoadedStats describes one loaded version.
type LoadedStats struct {
	Model    string
	Version  int64
	LoadedAt time.Time
	// InFlight is the number of requests running on it now.
	InFlight int64
}

// ServingStats says which version an alias serves.
type ServingStats struct {
	Model, Alias string
	Version      int64
	Since        time.Time
}

// Stats returns a snapshot. It never waits for a load in progress.
func (s *Server) Stats() Stats {
	st := Stats{
		Polls: s.polls.Load(), PollErrors: s.pollErrors.Load(), Loads: s.loads.Load(),
		LoadFailures: s.loadFailures.Load(), Swaps: s.swaps.Load(), Unloads: s.unloads.Load(),
		Closed: s.closes.Load(), NotServing: s.notServing.Load(), EventsDropped: s.dropped.Load(),
	}
	if e := s.lastErr.Load(); e != nil {
		st.LastError, st.LastErrorAt = e.err.Error(), e.at
	}
	s.mu.RLock()
	for _, ms := range s.models {
		for _, l := range ms.lives {
			st.Loaded = append(st.Loaded, LoadedStats{
				Model: l.v.Model, Version: l.v.Number, LoadedAt: l.loadedAt,
				InFlight: max(l.refs.Load()-1, 0), // dead lives are not in the set
			})
		}
	}
	for k, t := range s.targets {
		if l := t.cur.Load(); l != nil {
			st.Serving = append(st.Serving, ServingStats{Model: k.model, Alias: k.alias,
				Version: l.v.Number, Since: time.Unix(0, t.since.Load())})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(st.Loaded, func(a, b LoadedStats) int {
		if c := cmpString(a.Model, b.Model); c != 0 {
			return c
		}
		return int(a.Version - b.Version)
	})
	slices.SortFunc(st.Serving, func(a, b ServingStats) int {
		if c := cmpString(a.Model, b.Model); c != 0 {
			return c
		}
		return cmpString(a.Alias, b.Alias)
	})
	return st
}

// Collector returns a prometheus.Collector over Stats, with metric names
// starting with quiver_registry_ and the time taken to load a version as
// the histogram quiver_registry_load_seconds. The caller registers it where
// it likes; the package registers nothing.
//
// Every series carries constLabels as constant labels, added to the
// default {"registry": ServerOptions.Name}; a key of constLabels overrides
// the default. Servers whose labels differ register side by side in one
// registry; two with identical labels are refused by the registry as a
// duplicate. Every collector registered in one registry must use the same
// label names.
func (s *Server) Collector(constLabels prometheus.Labels) prometheus.Collector {
	l := metrics.ConstLabels(prometheus.Labels{"registry": s.opts.Name}, constLabels)
	c := &collector{s: s, counters: make([]*prometheus.Desc, len(counterNames)),
		loaded: prometheus.NewDesc("quiver_registry_loaded_versions",
			"Versions in the loaded set.", nil, l),
		inFlight: prometheus.NewDesc("quiver_registry_version_in_flight",
			"Requests running on a loaded version.", []string{"model", "version"}, l),
		serving: prometheus.NewDesc("quiver_registry_serving_version",
			"Version number an alias serves.", []string{"model", "alias"}, l),
		loadTime: prometheus.NewDesc("quiver_registry_load_seconds",
			"Time to fetch, verify, load and warm up a version that loaded.", nil, l),
	}
	for i, n := range counterNames {
		c.counters[i] = prometheus.NewDesc("quiver_registry_"+n.name, n.help, nil, l)
	}
	return c
}

type collector struct {
	s                                   *Server
	counters                            []*prometheus.Desc // in counterNames order
	loaded, inFlight, serving, loadTime *prometheus.Desc
}

var counterNames = []struct{ name, help string }{
	{"polls_total", "Registry reads."},
	{"poll_errors_total", "Registry reads that failed; nothing was unloaded."},
	{"loads_total", "Versions loaded and warmed up."},
	{"load_failures_total", "Versions that failed checksum, load or warm-up and were not swapped in."},
	{"swaps_total", "Alias moves applied."},
	{"unloads_total", "Versions taken out of the loaded set."},
	{"closed_total", "Versions closed after their last request."},
	{"not_serving_total", "Requests refused because their alias had no loaded version."},
	{"events_dropped_total", "Events dropped because the events channel was full."},
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.counters {
		ch <- d
	}
	ch <- c.loaded
	ch <- c.inFlight
	ch <- c.serving
	ch <- c.loadTime
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	vals := []uint64{st.Polls, st.PollErrors, st.Loads, st.LoadFailures, st.Swaps, st.Unloads,
		st.Closed, st.NotServing, st.EventsDropped}
	for i, d := range c.counters {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(vals[i]))
	}
	ch <- prometheus.MustNewConstMetric(c.loaded, prometheus.GaugeValue, float64(len(st.Loaded)))
	// A republished version number can be loaded twice for a moment; sum.
	type key struct {
		model   string
		version int64
	}
	inflight := map[key]int64{}
	for _, l := range st.Loaded {
		inflight[key{l.Model, l.Version}] += l.InFlight
	}
	for k, n := range inflight {
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(n), k.model, strconv.FormatInt(k.version, 10))
	}
	for _, sv := range st.Serving {
		ch <- prometheus.MustNewConstMetric(c.serving, prometheus.GaugeValue, float64(sv.Version), sv.Model, sv.Alias)
	}
	ch <- c.s.loadTime.Snapshot().Metric(c.loadTime)
}
