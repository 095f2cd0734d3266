package s3

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quiverml/quiver/internal/metrics"
)

// Stats is a snapshot of a Store's counters.
type Stats struct {
	// Requests is how many requests were sent to the object store.
	Requests uint64
	// RequestErrors counts requests refused for another reason than
	// unavailability (access denied, a missing bucket).
	RequestErrors uint64
	// Unavailable counts operations that failed with ErrUnavailable.
	Unavailable uint64
	// Lists counts listings (the costly requests that cached Scans avoid).
	Lists uint64
	// NotModified counts conditional reads answered "not modified".
	NotModified uint64
	// Conflicts counts conditional writes that lost a race (and were
	// retried where that is safe).
	Conflicts uint64
	// Scans counts Scan calls; CachedScans those that reused the cached
	// listing because the model's change marker had not changed.
	Scans, CachedScans uint64
	// OfflineScans and OfflineFetches count reads answered from the cache
	// while the object store was unreachable.
	OfflineScans, OfflineFetches uint64
	// Fetches counts Fetch calls; CacheHits those answered by a verified
	// cache entry; Downloads the versions downloaded.
	Fetches, CacheHits, Downloads uint64
	// CorruptCache counts cache entries found damaged and fetched again.
	CorruptCache uint64
	// ChecksumFailures counts downloads (and Verify calls) whose bytes did
	// not match their manifest.
	ChecksumFailures uint64
	// DownloadedBytes and UploadedBytes count object bytes moved.
	DownloadedBytes, UploadedBytes uint64
	// Offline is true while the last request found the store unreachable.
	Offline bool
	// LastError is the most recent failure, and when it happened.
	LastError   string
	LastErrorAt time.Time
}

type counters struct {
	requests, requestErrors, unavailable, lists, notModified, conflicts atomic.Uint64
	scans, cachedScans, offlineScans, offlineFetches                    atomic.Uint64
	fetches, cacheHits, downloads, corruptCache, checksumFailures       atomic.Uint64
	downloaded, uploaded                                                atomic.Uint64
	lastErr                                                             atomic.Pointer[errorAt]
}

type errorAt struct {
	msg string
	at  time.Time
}

func (c *counters) setLastError(err error, now time.Time) {
	c.lastErr.Store(&errorAt{msg: err.Error(), at: now})
}

// Stats returns a snapshot of the counters.
func (s *Store) Stats() Stats {
	c := &s.st
	st := Stats{
		Requests: c.requests.Load(), RequestErrors: c.requestErrors.Load(), Unavailable: c.unavailable.Load(),
		Lists: c.lists.Load(), NotModified: c.notModified.Load(), Conflicts: c.conflicts.Load(),
		Scans: c.scans.Load(), CachedScans: c.cachedScans.Load(),
		OfflineScans: c.offlineScans.Load(), OfflineFetches: c.offlineFetches.Load(),
		Fetches: c.fetches.Load(), CacheHits: c.cacheHits.Load(), Downloads: c.downloads.Load(),
		CorruptCache: c.corruptCache.Load(), ChecksumFailures: c.checksumFailures.Load(),
		DownloadedBytes: c.downloaded.Load(), UploadedBytes: c.uploaded.Load(),
		Offline: s.offline.Load(),
	}
	if e := c.lastErr.Load(); e != nil {
		st.LastError, st.LastErrorAt = e.msg, e.at
	}
	return st
}

var counterNames = []struct{ name, help string }{
	{"requests_total", "Requests sent to the object store."},
	{"request_errors_total", "Requests refused for another reason than unavailability."},
	{"unavailable_total", "Operations that failed because the object store could not be reached."},
	{"lists_total", "Listings sent to the object store."},
	{"not_modified_total", "Conditional reads answered not modified."},
	{"conflicts_total", "Conditional writes that lost a race."},
	{"scans_total", "Scans of a model."},
	{"cached_scans_total", "Scans that reused the cached listing."},
	{"offline_scans_total", "Scans answered from the cache while the store was unreachable."},
	{"offline_fetches_total", "Fetches answered from the cache while the store was unreachable."},
	{"fetches_total", "Fetches of a version."},
	{"cache_hits_total", "Fetches answered by a verified cache entry."},
	{"downloads_total", "Versions downloaded into the cache."},
	{"corrupt_cache_total", "Cache entries found damaged and fetched again."},
	{"checksum_failures_total", "Downloads whose bytes did not match their manifest."},
	{"downloaded_bytes_total", "Object bytes downloaded."},
	{"uploaded_bytes_total", "Object bytes uploaded."},
}

func (st Stats) counterValues() []uint64 {
	return []uint64{st.Requests, st.RequestErrors, st.Unavailable, st.Lists, st.NotModified, st.Conflicts,
		st.Scans, st.CachedScans, st.OfflineScans, st.OfflineFetches, st.Fetches, st.CacheHits, st.Downloads,
		st.CorruptCache, st.ChecksumFailures, st.DownloadedBytes, st.UploadedBytes}
}

// Collector returns a prometheus.Collector over Stats, with metric names
// starting with quiver_registry_s3_: one counter per Stats counter and the
// gauge quiver_registry_s3_offline (1 while the store is unreachable). The
// caller registers it where it likes; the package registers nothing.
//
// Every series carries constLabels as constant labels, added to the
// default {"store": Options.Name}; a key of constLabels overrides the
// default.
func (s *Store) Collector(constLabels prometheus.Labels) prometheus.Collector {
	l := metrics.ConstLabels(prometheus.Labels{"store": s.opts.Name}, constLabels)
	c := &collector{s: s, counters: make([]*prometheus.Desc, len(counterNames)),
		offline: prometheus.NewDesc("quiver_registry_s3_offline", "1 while the object store is unreachable.", nil, l)}
	for i, n := range counterNames {
		c.counters[i] = prometheus.NewDesc("quiver_registry_s3_"+n.name, n.help, nil, l)
	}
	return c
}

type collector struct {
	s        *Store
	counters []*prometheus.Desc
	offline  *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.counters {
		ch <- d
	}
	ch <- c.offline
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	for i, v := range st.counterValues() {
		ch <- prometheus.MustNewConstMetric(c.counters[i], prometheus.CounterValue, float64(v))
	}
	off := 0.0
	if st.Offline {
		off = 1
	}
	ch <- prometheus.MustNewConstMetric(c.offline, prometheus.GaugeValue, off)
}
