package vector

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quiverml/quiver/internal/metrics"
)

type counters struct {
	searches, exactScans, inserts, deletes, compactions, reclaimed, grows atomic.Int64
}

// Stats is a snapshot of an index's counters and memory use.
type Stats struct {
	// Live is the number of searchable items; Deleted the tombstones that
	// Compact has not reclaimed yet; Slots the allocated capacity and
	// FreeSlots the reclaimed slots waiting for reuse.
	Live, Deleted, Slots, FreeSlots int
	// Searches, ExactScans (filtered searches answered by a scan), Inserts,
	// Deletes, Compactions and Reclaimed (slots freed) count since creation.
	Searches, ExactScans, Inserts, Deletes, Compactions, Reclaimed int64
	// Bytes is the estimated memory held by the index; BytesPerVector is
	// Bytes divided by Live.
	Bytes          int64
	BytesPerVector float64
	// Parts splits Bytes by what holds it.
	Parts StatsParts
}

// StatsParts splits an index's memory by what holds it. Every field but
// Mapped is part of Stats.Bytes and they add up to it.
type StatsParts struct {
	// Vectors: the float32 vectors (none under QuantInt8Only).
	Vectors int64
	// Codes: int8 codes, their scales and squared norms.
	Codes int64
	// Links: the graph's link lists, levels and slot flags.
	Links int64
	// Keys: the ids per slot, the id map and the free-slot list.
	Keys int64
	// Metadata: the per-slot metadata references (the maps themselves are
	// the caller's values and not counted).
	Metadata int64
	// Mapped is the size of the memory mapping of Options.VectorsFile: page
	// cache, not heap, and not part of Bytes (see Options.VectorsFile).
	Mapped int64
}

// Stats returns a snapshot of the index's counters.
func (h *HNSW[K]) Stats() Stats {
	h.idMu.RLock()
	h.mu.RLock()
	st := Stats{
		Live:      int(h.live.Load()),
		Deleted:   int(h.deleted.Load()),
		Slots:     h.capacity(),
		FreeSlots: len(h.free),
	}
	var p StatsParts
	p.Vectors = int64(cap(h.vecs)) * 4
	p.Codes = int64(cap(h.codes)) + int64(cap(h.cscale))*4 + int64(cap(h.norm2))*4
	p.Links = int64(cap(h.links0))*4 + int64(cap(h.upper))*24 + int64(cap(h.levels)) + int64(cap(h.flags))*4
	p.Metadata = int64(cap(h.meta)) * 8
	p.Keys = int64(cap(h.free)) * 4
	var zero K
	if _, isStr := any(zero).(string); isStr {
		p.Keys += int64(cap(h.keys)) * 16
	} else {
		p.Keys += int64(cap(h.keys)) * 8
	}
	for s := 0; s < int(h.next); s++ {
		p.Links += int64(cap(h.upper[s])) * 4
		if k, ok := any(h.keys[s]).(string); ok {
			p.Keys += int64(len(k))
		}
	}
	// A Go map entry costs about its key and value plus ~50% overhead.
	p.Keys += int64(len(h.ids)) * (24 + 4) * 3 / 2
	if h.only != nil && h.only.vf != nil {
		p.Mapped = int64(len(h.only.vf.data))
	}
	h.mu.RUnlock()
	h.idMu.RUnlock()
	b := p.Vectors + p.Codes + p.Links + p.Keys + p.Metadata
	st.Bytes = b
	st.Parts = p
	if st.Live > 0 {
		st.BytesPerVector = float64(b) / float64(st.Live)
	}
	st.Searches = h.st.searches.Load()
	st.ExactScans = h.st.exactScans.Load()
	st.Inserts = h.st.inserts.Load()
	st.Deletes = h.st.deletes.Load()
	st.Compactions = h.st.compactions.Load()
	st.Reclaimed = h.st.reclaimed.Load()
	return st
}

// Collector returns a prometheus.Collector exporting the index's Stats
// under the quiver_vector_ prefix. The caller registers it where it wants;
// the package registers nothing.
//
// Every series carries constLabels as constant labels, added to the
// default {"index": Options.Name}; a key of constLabels overrides the
// default. Indexes whose labels differ register side by side in one
// registry; two with identical labels are refused by the registry as a
// duplicate. Every collector registered in one registry must use the same
// label names.
func (h *HNSW[K]) Collector(constLabels prometheus.Labels) prometheus.Collector {
	return newCollector(h.opts.Name, constLabels, h.Stats)
}

// Collector returns a prometheus.Collector exporting the index's Stats,
// as HNSW.Collector does, with the default label {"index": FlatOptions.Name}.
func (f *Flat[K]) Collector(constLabels prometheus.Labels) prometheus.Collector {
	return newCollector(f.name, constLabels, f.Stats)
}

func newCollector(name string, constLabels prometheus.Labels, stats func() Stats) prometheus.Collector {
	l := metrics.ConstLabels(prometheus.Labels{"index": name}, constLabels)
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("quiver_vector_"+name, help, nil, l)
	}
	return &collector{stats: stats,
		live:    d("items", "Live items in the index."),
		deleted: d("tombstones", "Deleted items not yet compacted."),
		slots:   d("slots", "Allocated slots."),
		bytes:   d("memory_bytes", "Estimated memory held by the index."),
		part: prometheus.NewDesc("quiver_vector_memory_part_bytes",
			"Estimated memory held by the index, by part (vectors, codes, links, keys, metadata); the parts add up to quiver_vector_memory_bytes.",
			[]string{"part"}, l),
		mapped:    d("mapped_bytes", "Size of the memory mapping of the index's vectors file (page cache, not heap)."),
		searches:  d("searches_total", "Searches served."),
		exact:     d("exact_scans_total", "Filtered searches answered by an exact scan."),
		inserts:   d("inserts_total", "Items inserted."),
		deletes:   d("deletes_total", "Items deleted."),
		compacts:  d("compactions_total", "Compactions run."),
		reclaimed: d("reclaimed_slots_total", "Slots freed by compaction."),
	}
}

type collector struct {
	stats                                                                               func() Stats
	live, deleted, slots, bytes, searches, exact, inserts, deletes, compacts, reclaimed *prometheus.Desc
	part, mapped                                                                        *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.live, c.deleted, c.slots, c.bytes, c.searches, c.exact, c.inserts, c.deletes, c.compacts, c.reclaimed, c.part, c.mapped} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	g := prometheus.GaugeValue
	ct := prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(c.live, g, float64(s.Live))
	ch <- prometheus.MustNewConstMetric(c.deleted, g, float64(s.Deleted))
	ch <- prometheus.MustNewConstMetric(c.slots, g, float64(s.Slots))
	ch <- prometheus.MustNewConstMetric(c.bytes, g, float64(s.Bytes))
	ch <- prometheus.MustNewConstMetric(c.searches, ct, float64(s.Searches))
	ch <- prometheus.MustNewConstMetric(c.exact, ct, float64(s.ExactScans))
	ch <- prometheus.MustNewConstMetric(c.inserts, ct, float64(s.Inserts))
	ch <- prometheus.MustNewConstMetric(c.deletes, ct, float64(s.Deletes))
	ch <- prometheus.MustNewConstMetric(c.compacts, ct, float64(s.Compactions))
	ch <- prometheus.MustNewConstMetric(c.reclaimed, ct, float64(s.Reclaimed))
	for _, p := range []struct {
		name string
		v    int64
	}{{"vectors", s.Parts.Vectors}, {"codes", s.Parts.Codes}, {"links", s.Parts.Links}, {"keys", s.Parts.Keys}, {"metadata", s.Parts.Metadata}} {
		ch <- prometheus.MustNewConstMetric(c.part, g, float64(p.v), p.name)
	}
	ch <- prometheus.MustNewConstMetric(c.mapped, g, float64(s.Parts.Mapped))
}
