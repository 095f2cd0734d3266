package serving

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiverml/quiver/internal/latency"
)

// latencyHist is the package's handle on the shared latency histogram: the
// Batcher records with observe, Stats reads percentiles through summary and
// the collector exports snapshots in seconds.
type latencyHist struct{ h latency.Histogram }

func (h *latencyHist) observe(d time.Duration) { h.h.Observe(d) }

func (h *latencyHist) snapshot() latency.Snapshot { return h.h.Snapshot() }

// Latency summarises a latency distribution. Percentiles are read at the
// upper edge of a log-linear histogram bucket, within 6.25% of the true
// value.
type Latency struct {
	Count uint64
	Mean  time.Duration
	P50   time.Duration
	P95   time.Duration
	P99   time.Duration
	Max   time.Duration // upper bound of the highest non-empty bucket
}

func (h *latencyHist) summary() Latency {
	s := h.snapshot()
	return Latency{Count: s.Count, Mean: s.Mean(), P50: s.Quantile(0.50), P95: s.Quantile(0.95), P99: s.Quantile(0.99), Max: s.Max()}
}

// Error kinds counted by Stats.Errors.
const (
	ErrKindOverloaded = "overloaded"
	ErrKindCanceled   = "canceled"
	ErrKindDeadline   = "deadline"
	ErrKindClosed     = "closed"
	ErrKindInput      = "input"
	ErrKindRun        = "run"
	ErrKindNotReady   = "not_ready"
)

var errKinds = []string{ErrKindOverloaded, ErrKindCanceled, ErrKindDeadline, ErrKindClosed, ErrKindInput, ErrKindRun, ErrKindNotReady}

// Stats is a snapshot of a Batcher's counters.
type Stats struct {
	Requests uint64 // requests accepted into the queue
	Rows     uint64 // rows run, padding excluded
	Batches  uint64 // model runs
	Padding  uint64 // rows added to reach an allowed batch size
	// BatchSizes counts runs by their number of rows (padding excluded).
	BatchSizes map[int]uint64
	// QueueWait is the time from enqueue to the start of the run.
	QueueWait Latency
	// Run is the time the model took per batch.
	Run Latency
	// Latency is the time from a successful request's arrival in Predict
	// until its answer was ready.
	Latency Latency
	// Errors counts failed requests by kind (the ErrKind constants).
	Errors map[string]uint64
	// QueueLength and InFlight are the current queue length and batches running.
	QueueLength int
	InFlight    int
	// Adaptive lists the shape groups of the model served now, by Shape,
	// with the batch size each has chosen and what each size measured;
	// empty when adaptive batching is off (BatcherOptions.Adaptive). A
	// worker reports a batch when it comes back for its next one (or
	// stops at Close), so the batches just answered may not show yet.
	Adaptive []AdaptiveGroup
}

type recorder struct {
	rows, batches, padding  atomic.Uint64
	queueWait, run, latency latencyHist
	errors                  map[string]*atomic.Uint64

	mu         sync.Mutex
	batchSizes map[int]uint64
}

func newRecorder() *recorder {
	r := &recorder{errors: map[string]*atomic.Uint64{}, batchSizes: map[int]uint64{}}
	for _, k := range errKinds {
		r.errors[k] = new(atomic.Uint64)
	}
	return r
}

func (r *recorder) batch(rows, padding int, run time.Duration) {
	r.batches.Add(1)
	r.rows.Add(uint64(rows))
	r.padding.Add(uint64(padding))
	r.run.observe(run)
	r.mu.Lock()
	r.batchSizes[rows]++
	r.mu.Unlock()
}

func (r *recorder) fail(kind string) { r.errors[kind].Add(1) }

func (r *recorder) snapshot() Stats {
	s := Stats{
		Rows:      r.rows.Load(),
		Batches:   r.batches.Load(),
		Padding:   r.padding.Load(),
		QueueWait: r.queueWait.summary(),
		Run:       r.run.summary(),
		Latency:   r.latency.summary(),
		Errors:    map[string]uint64{},
	}
	for k, v := range r.errors {
		s.Errors[k] = v.Load()
	}
	r.mu.Lock()
	s.BatchSizes = make(map[int]uint64, len(r.batchSizes))
	for k, v := range r.batchSizes {
		s.BatchSizes[k] = v
	}
	r.mu.Unlock()
	return s
}

// sortedSizes returns the batch sizes seen, ascending.
func (s Stats) sortedSizes() []int {
	sizes := make([]int, 0, len(s.BatchSizes))
	for k := range s.BatchSizes {
		sizes = append(sizes, k)
	}
	sort.Ints(sizes)
	return sizes
}
