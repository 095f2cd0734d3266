package serving

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// BatcherOptions configure a Batcher. The zero value gives the defaults
// documented on each field.
type BatcherOptions struct {
	// MaxBatchSize is the most rows merged into one run. Default 64, or the
	// largest of AllowedBatchSizes when those are set. A single request with
	// more rows runs alone.
	MaxBatchSize int
	// MaxQueueDelay is how long the oldest queued request may wait for more
	// rows before its batch runs anyway. Default 1ms; negative: no wait,
	// whatever is queued runs as soon as a batch slot is free.
	MaxQueueDelay time.Duration
	// AllowedBatchSizes, when set, restricts runs to these row counts: a
	// batch is padded up to the next allowed size (repeating its last row)
	// and the padding is dropped from the outputs. Useful for engines built
	// for fixed shapes (TensorRT) and for models that are faster at some sizes.
	AllowedBatchSizes []int
	// MaxQueueLength is the most requests waiting; past it Predict returns
	// ErrOverloaded at once. Default 1024.
	MaxQueueLength int
	// MaxInFlight is the most batches running at once. Default GOMAXPROCS.
	MaxInFlight int
	// KeepModelOpen stops Close from closing the wrapped model.
	KeepModelOpen bool
	// Logger receives batch errors. Default slog.Default().
	Logger *slog.Logger
}

// Batcher is a Model that queues concurrent requests and merges them along
// the batch axis into one run of the wrapped model, then splits the outputs
// back per request. A batched result equals the result of running that
// request alone. Requests are merged only when their non-batch dimensions
// match; a model whose inputs lack a shared leading batch axis (see
// Info.Batchable) runs each request on its own, still behind the queue's
// limits and priorities.
type Batcher struct {
	model   Model
	info    Info
	opts    BatcherOptions
	allowed []int
	stats   *recorder
	notify  chan struct{} // wakes the worker that is forming a batch
	workers sync.WaitGroup
	formMu  sync.Mutex // held by the one worker forming the next batch

	mu       sync.Mutex
	queue    reqHeap
	keyRows  map[uint64]int // queued rows per batch key
	seq      uint64
	closing  bool
	closeErr error
	once     sync.Once
	inFlight atomic.Int32
}

var _ Model = (*Batcher)(nil)

type result struct {
	out map[string]Value
	err error
}

type request struct {
	ctx    context.Context
	inputs map[string]Tensor
	rows   int
	key    uint64 // hash of the non-batch dimensions; equal keys are checked exactly
	prio   int
	seq    uint64
	enq    time.Time
	done   chan result
	index  int // position in the heap; -1 once taken
}

// requests are recycled once their caller has received the result; a
// request abandoned by its caller after being taken into a batch is not.
var requestPool = sync.Pool{New: func() any { return &request{done: make(chan result, 1)} }}

type priorityKey struct{}

// WithPriority returns a context whose requests a Batcher serves before
// queued requests of lower priority. The default priority is 0; requests of
// equal priority are served in arrival order.
func WithPriority(ctx context.Context, priority int) context.Context {
	return context.WithValue(ctx, priorityKey{}, priority)
}

func priorityOf(ctx context.Context) int {
	p, _ := ctx.Value(priorityKey{}).(int)
	return p
}

// NewBatcher starts a batcher in front of m. Close the batcher to stop it;
// it closes m too unless KeepModelOpen is set.
func NewBatcher(m Model, opts BatcherOptions) (*Batcher, error) {
	if m == nil {
		return nil, errors.New("serving: NewBatcher needs a model")
	}
	if opts.MaxBatchSize < 0 || opts.MaxQueueLength < 0 || opts.MaxInFlight < 0 {
		return nil, fmt.Errorf("serving: batcher limits must be >= 0, got MaxBatchSize %d, MaxQueueLength %d, MaxInFlight %d",
			opts.MaxBatchSize, opts.MaxQueueLength, opts.MaxInFlight)
	}
	allowed := slices.Clone(opts.AllowedBatchSizes)
	slices.Sort(allowed)
	allowed = slices.Compact(allowed)
	if len(allowed) > 0 {
		if allowed[0] <= 0 {
			return nil, fmt.Errorf("serving: allowed batch sizes must be positive, got %v", opts.AllowedBatchSizes)
		}
		largest := allowed[len(allowed)-1]
		if opts.MaxBatchSize == 0 {
			opts.MaxBatchSize = largest
		}
		if opts.MaxBatchSize > largest {
			return nil, fmt.Errorf("serving: MaxBatchSize %d is larger than the largest allowed batch size %d", opts.MaxBatchSize, largest)
		}
	}
	if opts.MaxBatchSize == 0 {
		opts.MaxBatchSize = 64
	}
	if opts.MaxQueueDelay == 0 {
		opts.MaxQueueDelay = time.Millisecond
	}
	if opts.MaxQueueLength == 0 {
		opts.MaxQueueLength = 1024
	}
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = runtime.GOMAXPROCS(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Batcher{
		model:   m,
		info:    m.Info(),
		opts:    opts,
		allowed: allowed,
		stats:   newRecorder(),
		notify:  make(chan struct{}, 1),
		keyRows: map[uint64]int{},
	}
	b.workers.Add(opts.MaxInFlight)
	for i := 0; i < opts.MaxInFlight; i++ {
		go b.worker()
	}
	return b, nil
}

// Info returns the wrapped model's Info.
func (b *Batcher) Info() Info { return cloneInfo(b.info) }

// Stats returns a snapshot of the batcher's counters.
func (b *Batcher) Stats() Stats {
	s := b.stats.snapshot()
	b.mu.Lock()
	s.QueueLength = len(b.queue)
	b.mu.Unlock()
	s.InFlight = int(b.inFlight.Load())
	return s
}

// Predict queues the request and waits for its share of a batch. It returns
// ErrOverloaded at once when the queue is full, ErrClosed after Close, and
// the context's error when ctx ends first (a request still queued then is
// dropped before its batch runs). Priority comes from WithPriority.
func (b *Batcher) Predict(ctx context.Context, inputs map[string]Tensor) (map[string]Value, error) {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		b.stats.fail(ctxKind(err))
		return nil, fmt.Errorf("serving: %s: %w", b.info.Name, err)
	}
	if err := Validate(b.info, inputs); err != nil {
		b.stats.fail(ErrKindInput)
		return nil, err
	}
	var rows int
	var key uint64
	if b.info.Batchable {
		var err error
		if rows, key, err = batchKey(b.info, inputs); err != nil {
			b.stats.fail(ErrKindInput)
			return nil, err
		}
	}
	r := requestPool.Get().(*request)
	r.ctx, r.inputs, r.rows, r.key, r.prio, r.enq = ctx, inputs, rows, key, priorityOf(ctx), start

	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		b.recycle(r)
		b.stats.fail(ErrKindClosed)
		return nil, ErrClosed
	}
	if len(b.queue) >= b.opts.MaxQueueLength {
		b.mu.Unlock()
		b.recycle(r)
		b.stats.fail(ErrKindOverloaded)
		return nil, fmt.Errorf("%w: %d requests queued for %s", ErrOverloaded, b.opts.MaxQueueLength, b.info.Name)
	}
	b.seq++
	r.seq = b.seq
	heap.Push(&b.queue, r)
	before := b.keyRows[r.key]
	b.keyRows[r.key] = before + r.rows
	// Wake the worker forming a batch only when its decision may change: the
	// queue was empty, the request became the head, or the head's batch just
	// filled up. Waking it on every request would cost a context switch each.
	head := b.queue[0]
	wake := len(b.queue) == 1 || head == r ||
		(r.key == head.key && before < b.opts.MaxBatchSize && before+r.rows >= b.opts.MaxBatchSize)
	b.mu.Unlock()
	b.stats.requests.Add(1)
	if wake {
		b.wake()
	}

	select {
	case res := <-r.done:
		b.recycle(r)
		if res.err == nil {
			b.stats.latency.observe(time.Since(start))
		}
		return res.out, res.err
	case <-ctx.Done():
		b.mu.Lock()
		queued := r.index >= 0
		if queued {
			b.remove(r)
		}
		b.mu.Unlock()
		if queued {
			b.recycle(r) // no batch holds it
		}
		b.stats.fail(ctxKind(ctx.Err()))
		return nil, fmt.Errorf("serving: %s: %w", b.info.Name, ctx.Err())
	}
}

func (b *Batcher) recycle(r *request) {
	r.ctx, r.inputs = nil, nil
	requestPool.Put(r)
}

func ctxKind(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrKindDeadline
	}
	return ErrKindCanceled
}

// batchKey returns the request's row count and a hash of its non-batch
// dimensions. Requests with equal keys are compared exactly (sameDims)
// before they are merged, so a hash collision can never merge mismatched shapes.
func batchKey(info Info, inputs map[string]Tensor) (int, uint64, error) {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	rows := -1
	for _, in := range info.Inputs {
		s := inputs[in.Name].Shape
		if rows == -1 {
			rows = int(s[0])
		} else if int(s[0]) != rows {
			return 0, 0, &InputError{Input: in.Name, Kind: ErrShape,
				Got: fmt.Sprintf("%d rows", s[0]), Want: fmt.Sprintf("%d rows like input %q", rows, info.Inputs[0].Name)}
		}
		for _, d := range s[1:] {
			h = (h ^ uint64(d)) * prime
		}
		h = (h ^ 0xff) * prime
	}
	if rows < 1 {
		return 0, 0, &InputError{Input: info.Inputs[0].Name, Kind: ErrShape, Got: "0 rows", Want: "at least 1 row"}
	}
	return rows, h, nil
}

// sameDims reports whether a and b have equal non-batch dimensions.
func (b *Batcher) sameDims(x, y *request) bool {
	for _, in := range b.info.Inputs {
		if !slices.Equal(x.inputs[in.Name].Shape[1:], y.inputs[in.Name].Shape[1:]) {
			return false
		}
	}
	return true
}

func (b *Batcher) wake() {
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// remove takes r out of the queue; b.mu must be held.
func (b *Batcher) remove(r *request) {
	heap.Remove(&b.queue, r.index)
	b.keyRows[r.key] -= r.rows
	if b.keyRows[r.key] == 0 {
		delete(b.keyRows, r.key)
	}
}

// worker runs batches until the batcher is closed and its queue drained.
// Workers take turns forming the next batch (formMu), so exactly one waits
// for the queue while the others run models.
func (b *Batcher) worker() {
	defer b.workers.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch := b.next(timer)
		if batch == nil {
			return
		}
		b.runBatch(batch)
	}
}

// next waits until the oldest request of the highest priority has enough
// company or has waited MaxQueueDelay, and returns its batch; nil once the
// batcher is closed and the queue is empty.
func (b *Batcher) next(timer *time.Timer) []*request {
	b.formMu.Lock()
	defer b.formMu.Unlock()
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			closing := b.closing
			b.mu.Unlock()
			if closing {
				b.wake() // let the next worker see it too
				return nil
			}
			<-b.notify
			continue
		}
		head := b.queue[0]
		wait := time.Duration(0)
		if b.info.Batchable && b.keyRows[head.key] < b.opts.MaxBatchSize && !b.closing {
			wait = b.opts.MaxQueueDelay - time.Since(head.enq)
		}
		if wait <= 0 {
			batch := b.take(head)
			b.mu.Unlock()
			return batch
		}
		b.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-b.notify:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// take removes from the queue the head and the requests that can join it,
// in priority order, up to MaxBatchSize rows; b.mu must be held.
func (b *Batcher) take(head *request) []*request {
	if !b.info.Batchable || head.rows >= b.opts.MaxBatchSize {
		b.remove(head)
		return []*request{head}
	}
	// Pop in priority order; keep what fits, push back the rest.
	var batch, rest []*request
	rows := 0
	for len(b.queue) > 0 && rows < b.opts.MaxBatchSize {
		r := heap.Pop(&b.queue).(*request)
		if r.key == head.key && rows+r.rows <= b.opts.MaxBatchSize && (r == head || b.sameDims(head, r)) {
			batch = append(batch, r)
			rows += r.rows
			b.keyRows[r.key] -= r.rows
		} else {
			rest = append(rest, r)
		}
	}
	if b.keyRows[head.key] == 0 {
		delete(b.keyRows, head.key)
	}
	for _, r := range rest {
		heap.Push(&b.queue, r)
	}
	return batch
}

func (b *Batcher) runBatch(batch []*request) {
	b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	start := time.Now()
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			// Dropped before the run; Predict has answered (or will) with ctx's error.
			continue
		}
		b.stats.queueWait.observe(start.Sub(r.enq))
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	if len(live) == 1 && !b.needsPadding(live[0].rows) {
		r := live[0]
		ctx := context.WithoutCancel(r.ctx)
		if !b.info.Batchable {
			ctx = r.ctx // a request run alone may be terminated by its caller
		}
		out, err := b.model.Predict(ctx, r.inputs)
		b.stats.batch(r.rows, 0, time.Since(start))
		b.answer(r, out, err)
		return
	}
	rows := 0
	for _, r := range live {
		rows += r.rows
	}
	padded := b.paddedSize(rows)
	inputs, err := mergeInputs(b.info, live, padded)
	if err != nil {
		b.failAll(live, err)
		return
	}
	out, err := b.model.Predict(context.Background(), inputs)
	b.stats.batch(rows, padded-rows, time.Since(start))
	if err != nil {
		b.failAll(live, err)
		return
	}
	parts, err := splitOutputs(out, live, padded)
	if err != nil {
		b.opts.Logger.Error("serving: cannot split batch outputs", "model", b.info.Name, "error", err)
		b.failAll(live, err)
		return
	}
	for i, r := range live {
		b.answer(r, parts[i], nil)
	}
}

func (b *Batcher) needsPadding(rows int) bool { return b.paddedSize(rows) != rows }

// paddedSize is the smallest allowed batch size holding rows, or rows.
func (b *Batcher) paddedSize(rows int) int {
	if !b.info.Batchable {
		return rows
	}
	for _, a := range b.allowed {
		if a >= rows {
			return a
		}
	}
	return rows
}

func (b *Batcher) answer(r *request, out map[string]Value, err error) {
	if err != nil {
		b.countErr(err)
	}
	r.done <- result{out: out, err: err}
}

func (b *Batcher) countErr(err error) {
	switch {
	case errors.Is(err, ErrClosed):
		b.stats.fail(ErrKindClosed)
	case errors.Is(err, context.Canceled):
		b.stats.fail(ErrKindCanceled)
	case errors.Is(err, context.DeadlineExceeded):
		b.stats.fail(ErrKindDeadline)
	case errors.Is(err, ErrInput), errors.Is(err, ErrShape), errors.Is(err, ErrType):
		b.stats.fail(ErrKindInput)
	default:
		b.stats.fail(ErrKindRun)
	}
}

func (b *Batcher) failAll(rs []*request, err error) {
	for _, r := range rs {
		b.answer(r, nil, err)
	}
}

// Close stops accepting requests, runs what is queued, waits for batches in
// flight, then closes the wrapped model unless KeepModelOpen is set. It is
// safe to call more than once; later calls return the first call's result.
func (b *Batcher) Close() error {
	b.once.Do(func() {
		b.mu.Lock()
		b.closing = true
		b.mu.Unlock()
		b.wake()
		b.workers.Wait()
		if !b.opts.KeepModelOpen {
			b.closeErr = b.model.Close()
		}
	})
	return b.closeErr
}

// reqHeap orders requests by priority (higher first), then arrival.
type reqHeap []*request

func (h reqHeap) Len() int { return len(h) }
func (h reqHeap) Less(i, j int) bool {
	if h[i].prio != h[j].prio {
		return h[i].prio > h[j].prio
	}
	return h[i].seq < h[j].seq
}
func (h reqHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *reqHeap) Push(x any) {
	r := x.(*request)
	r.index = len(*h)
	*h = append(*h, r)
}
func (h *reqHeap) Pop() any {
	old := *h
	n := len(old)
	r := old[n-1]
	old[n-1] = nil
	r.index = -1
	*h = old[:n-1]
	return r
}
