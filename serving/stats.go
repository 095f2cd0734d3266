package serving

import (
	"math"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Latency histograms are log-linear: 8 buckets per power of two of the
// duration in nanoseconds, so a percentile read from them is within 12.5% of
// the true value, and observing costs a few integer operations and two
// atomic adds.
const (
	histSubBits = 3
	histBuckets = (63-histSubBits+1)<<histSubBits + 1<<histSubBits
)

// latencyHist is a lock-free histogram of durations.
type latencyHist struct {
	counts [histBuckets]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

func bucketOf(d time.Duration) int {
	ns := uint64(d)
	if ns < 1<<histSubBits {
		return int(ns)
	}
	e := bits.Len64(ns) - 1
	sub := (ns >> (e - histSubBits)) & (1<<histSubBits - 1)
	return (e-histSubBits+1)<<histSubBits + int(sub)
}

// upperBound returns the largest duration that falls in bucket i.
func upperBound(i int) time.Duration {
	if i < 1<<histSubBits {
		return time.Duration(i)
	}
	e := i>>histSubBits + histSubBits - 1
	sub := uint64(i & (1<<histSubBits - 1))
	return time.Duration(uint64(1)<<e + (sub+1)<<(e-histSubBits) - 1)
}

func (h *latencyHist) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(d)].Add(1)
	h.sum.Add(int64(d))
}

func (h *latencyHist) snapshot() ([]uint64, uint64, time.Duration) {
	c := make([]uint64, len(h.counts))
	var n uint64
	for i := range h.counts {
		c[i] = h.counts[i].Load()
		n += c[i]
	}
	return c, n, time.Duration(h.sum.Load())
}

// Latency summarises a latency distribution.
type Latency struct {
	Count uint64
	Mean  time.Duration
	P50   time.Duration
	P95   time.Duration
	P99   time.Duration
	Max   time.Duration // upper bound of the highest non-empty bucket
}

func (h *latencyHist) summary() Latency {
	c, n, sum := h.snapshot()
	l := Latency{Count: n}
	if n == 0 {
		return l
	}
	l.Mean = sum / time.Duration(n)
	q := func(p float64) time.Duration {
		rank := uint64(math.Ceil(p * float64(n)))
		var cum uint64
		for i, x := range c {
			cum += x
			if cum >= rank {
				return upperBound(i)
			}
		}
		return upperBound(len(c) - 1)
	}
	l.P50, l.P95, l.P99 = q(0.50), q(0.95), q(0.99)
	for i := len(c) - 1; i >= 0; i-- {
		if c[i] > 0 {
			l.Max = upperBound(i)
			break
		}
	}
	return l
}

// Error kinds counted by Stats.Errors.
const (
	ErrKindOverloaded = "overloaded"
	ErrKindCanceled   = "canceled"
	ErrKindDeadline   = "deadline"
	ErrKindClosed     = "closed"
	ErrKindInput      = "input"
	ErrKindRun        = "run"
)

var errKinds = []string{ErrKindOverloaded, ErrKindCanceled, ErrKindDeadline, ErrKindClosed, ErrKindInput, ErrKindRun}

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
