package serving

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
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
	//
	// A batch does not wait for rows that cannot come: it runs at once when
	// it holds MaxBatchSize rows (or the adaptive size cap), or when it
	// holds its share of the rows
	// outstanding (rows of requests inside Predict, queued, running or being
	// answered, divided by MaxInFlight; queued rows that cannot join it,
	// of other shapes or pinned to another model, do not count). When
	// every caller is already
	// waiting on a batch, more rows can only come from a batch that ends, so
	// waiting would leave a batch slot idle; a lone caller is served at once
	// instead of after MaxQueueDelay.
	MaxQueueDelay time.Duration
	// AlwaysWait makes a batch below MaxBatchSize (or below the adaptive
	// size cap, see Adaptive) wait the whole MaxQueueDelay even when it
	// holds its share of the outstanding rows.
	// Outstanding rows count only callers inside Predict, so callers that
	// spend most of their time between requests, or arrive in bursts from
	// outside, get small batches by default; AlwaysWait trades their
	// latency for larger batches, which costs less CPU per row.
	AlwaysWait bool
	// AllowedBatchSizes, when set, restricts runs to these row counts: a
	// batch is padded up to the next allowed size (repeating its last row)
	// and the padding is dropped from the outputs. Useful for engines built
	// for fixed shapes (TensorRT) and for models that are faster at some sizes.
	AllowedBatchSizes []int
	// MaxRequestRows is the most rows one request may hold (its inputs'
	// leading axis); Predict refuses a larger request at once with an
	// *InputError matching ErrTooLarge, before it queues or allocates
	// anything, so one request cannot hold the model for minutes. Default
	// 65536; negative: no limit.
	MaxRequestRows int
	// MaxQueueLength is the most requests waiting; past it Predict returns
	// ErrOverloaded at once. Default 1024.
	MaxQueueLength int
	// MaxInFlight is the most batches running at once. Default GOMAXPROCS.
	MaxInFlight int
	// Adaptive sizes batches from measurements. Per shape group (requests
	// that can merge: same model, same non-batch dimensions) the Batcher
	// measures the rows per second its batches achieve under each size
	// cap (powers of two up to MaxBatchSize, or the AllowedBatchSizes) and
	// caps the group's batches at the size that served the most, trying
	// its neighbours from time to time and at once when the measurements
	// move; a model that loses by merging runs its requests one by one
	// (still MaxInFlight at a time). A new model behind a Pinner starts
	// afresh. MaxBatchSize still bounds every batch, and a request larger
	// than the cap runs alone. Default AdaptiveAuto, which is AdaptiveOn;
	// AdaptiveOff merges up to MaxBatchSize rows whenever they are queued.
	// Stats.Adaptive reports the sizes chosen and measured.
	Adaptive Adaptive
	// KeepModelOpen stops Close from closing the wrapped model.
	KeepModelOpen bool
	// Logger receives batch errors. Default slog.Default().
	Logger *slog.Logger
	// TracerProvider, when set, traces every request: a span per request
	// (from Predict to its answer, with an event when its batch starts) and
	// a span per merged batch linked to its requests' spans. Default nil:
	// a request is traced only when its context carries a recording span,
	// through that span's provider; otherwise tracing costs nothing.
	TracerProvider trace.TracerProvider
}

// Batcher is a Model that queues concurrent requests and merges them along
// the batch axis into one run of the wrapped model, then splits the outputs
// back per request. A batched result equals the result of running that
// request alone. Requests are merged only when their non-batch dimensions
// match; a model whose inputs lack a shared leading batch axis (see
// Info.Batchable) runs each request on its own, still behind the queue's
// limits and priorities.
type Batcher struct {
	model  Model
	pinner Pinner  // model as a Pinner, or nil
	fixed  *target // the model's target when it is not a Pinner
	// last is the target of the model most recently pinned; pinMu
	// serialises building a new one when the pinned model changes.
	last    atomic.Pointer[target]
	pinMu   sync.Mutex
	targets atomic.Uint64 // ids handed to targets
	name    string
	epoch   time.Time // origin of Batcher.now
	tracer  trace.Tracer
	opts    BatcherOptions
	allowed []int
	stats   *recorder
	notify  chan struct{} // wakes a worker waiting to form a batch
	// rungs are the caps adaptive batching chooses among; nil when it is
	// off. clock times batches for it (Batcher.now, or a test's clock).
	rungs   []int
	clock   func() time.Duration
	workers sync.WaitGroup

	mu       sync.Mutex
	queue    reqQueue
	keyRows  []keyRows // queued rows per batch key (few distinct keys)
	queued   int       // queued rows, all keys
	accepted uint64    // requests accepted into the queue
	forming  int       // workers waiting on notify for the head's batch
	useSeq   uint64    // ticks on every use of a shape group, for eviction
	closing  bool
	closeErr error
	once     sync.Once
	inFlight atomic.Int32
	// outstanding counts the rows of requests inside Predict past
	// validation: queueing, queued, running, or answered but not returned.
	outstanding atomic.Int64
	// readyAt is the outstanding row count at or below which the head's
	// batch becomes ready while a worker waits for it, else -1: a caller
	// leaving Predict that brings outstanding down to it wakes the worker.
	readyAt atomic.Int64
}

var _ Model = (*Batcher)(nil)

type keyRows struct {
	key  uint64
	rows int
}

type result struct {
	out map[string]Value
	err error
}

// target is what the Batcher knows of one model it runs requests on: the
// wrapped model, or each model a Pinner has pinned. Requests merge only with
// requests of the same target.
type target struct {
	model Model
	info  Info
	id    uint64 // mixed into batch keys
	// borrow: the model keeps no reference to its inputs once Predict
	// returns, so workers reuse the merged input buffers.
	borrow      bool
	tensorsOnly bool // every output is a tensor (PredictInto works)
	// groups are the target's shape groups for adaptive batching, by batch
	// key; lastGroup is the one used last. Guarded by Batcher.mu.
	groups    map[uint64]*group
	lastGroup *group
}

func (b *Batcher) newTarget(m Model) *target {
	t := &target{model: m, info: m.Info(), id: b.targets.Add(1), tensorsOnly: true}
	if ib, ok := m.(InputBorrower); ok {
		t.borrow = ib.BorrowsInputs()
	}
	for _, o := range t.info.Outputs {
		if o.Kind != KindTensor {
			t.tensorsOnly = false
		}
	}
	return t
}

type request struct {
	ctx     context.Context
	tgt     *target
	release func()     // unpins tgt's model, or nil
	span    trace.Span // nil unless the request is traced
	inputs  map[string]Tensor
	ins     []Tensor          // inputs in the model's input order
	into    map[string]Tensor // PredictInto's out map, else nil
	rows    int
	key     uint64 // hash of the non-batch dimensions; equal keys are checked exactly
	grp     *group // adaptive shape group, or nil; set when queued
	prio    int
	enq     time.Duration // Batcher.now at arrival
	done    chan result
	queued  bool
}

// requests are recycled by their caller once the batch holding them has
// answered.
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
// it closes m too unless KeepModelOpen is set. Options out of range give an
// error matching ErrConfig.
func NewBatcher(m Model, opts BatcherOptions) (*Batcher, error) {
	return newBatcher(m, opts, nil)
}

// newBatcher is NewBatcher with the clock that times batches for adaptive
// batching (nil: Batcher.now).
func newBatcher(m Model, opts BatcherOptions, clock func() time.Duration) (*Batcher, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: NewBatcher needs a model, got nil", ErrConfig)
	}
	if opts.MaxBatchSize < 0 || opts.MaxQueueLength < 0 || opts.MaxInFlight < 0 {
		return nil, fmt.Errorf("%w: batcher limits must be >= 0, got MaxBatchSize %d, MaxQueueLength %d, MaxInFlight %d",
			ErrConfig, opts.MaxBatchSize, opts.MaxQueueLength, opts.MaxInFlight)
	}
	if opts.Adaptive < AdaptiveAuto || opts.Adaptive > AdaptiveOn {
		return nil, fmt.Errorf("%w: Adaptive is %v, want AdaptiveAuto, AdaptiveOff or AdaptiveOn", ErrConfig, opts.Adaptive)
	}
	allowed := slices.Clone(opts.AllowedBatchSizes)
	slices.Sort(allowed)
	allowed = slices.Compact(allowed)
	if len(allowed) > 0 {
		if allowed[0] <= 0 {
			return nil, fmt.Errorf("%w: allowed batch sizes must be positive, got %v", ErrConfig, opts.AllowedBatchSizes)
		}
		largest := allowed[len(allowed)-1]
		if opts.MaxBatchSize == 0 {
			opts.MaxBatchSize = largest
		}
		if opts.MaxBatchSize > largest {
			return nil, fmt.Errorf("%w: MaxBatchSize %d is larger than the largest allowed batch size %d", ErrConfig, opts.MaxBatchSize, largest)
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
	if opts.MaxRequestRows == 0 {
		opts.MaxRequestRows = 1 << 16
	}
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = runtime.GOMAXPROCS(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Batcher{
		model:   m,
		opts:    opts,
		allowed: allowed,
		stats:   newRecorder(),
		notify:  make(chan struct{}, 1),
		epoch:   time.Now(),
		clock:   clock,
	}
	if b.clock == nil {
		b.clock = b.now
	}
	if opts.Adaptive.enabled() {
		b.rungs = rungsFor(opts.MaxBatchSize, allowed)
	}
	if p, ok := m.(Pinner); ok {
		b.pinner = p
	} else {
		b.fixed = b.newTarget(m)
	}
	b.name = m.Info().Name
	if opts.TracerProvider != nil {
		b.tracer = opts.TracerProvider.Tracer(tracerName)
	}
	b.readyAt.Store(-1)
	b.workers.Add(opts.MaxInFlight)
	for i := 0; i < opts.MaxInFlight; i++ {
		go b.worker()
	}
	return b, nil
}

// Info returns the wrapped model's Info; for a Pinner, the Info of what it
// serves now.
func (b *Batcher) Info() Info {
	if b.fixed != nil {
		return b.fixed.info.Clone()
	}
	return b.model.Info()
}

// Stats returns a snapshot of the batcher's counters.
func (b *Batcher) Stats() Stats {
	s := b.stats.snapshot()
	b.mu.Lock()
	s.QueueLength = b.queue.len()
	s.Requests = b.accepted
	s.Adaptive = b.adaptiveStats()
	b.mu.Unlock()
	s.InFlight = int(b.inFlight.Load())
	return s
}

// Predict queues the request and waits for its share of a batch. It returns
// ErrOverloaded at once when the queue is full, ErrClosed after Close, and
// the context's error when ctx ends first: a request still queued then is
// dropped at once; one already in a batch returns when that batch is done
// with it (a batch that has not started skips it; a running batch, shared
// with other callers, is not cut short, except a request run alone on a
// model that cannot batch, whose run ctx terminates). The batcher never
// touches inputs after Predict returns. Priority comes from WithPriority.
func (b *Batcher) Predict(ctx context.Context, inputs map[string]Tensor) (map[string]Value, error) {
	return b.submit(ctx, inputs, nil)
}

// PredictInto is Predict for callers that reuse their output buffers, so
// that serving a request allocates nothing: it writes the request's share
// of every output into out, reusing the tensor already there when its data
// is a slice of the output's element type and the answer's length (as out
// holds after a call with the same row count); otherwise it stores a new
// tensor. The model's outputs must all be tensors (use Predict for
// sequences and maps). Errors are Predict's.
func (b *Batcher) PredictInto(ctx context.Context, inputs map[string]Tensor, out map[string]Tensor) error {
	if out == nil {
		return fmt.Errorf("serving: %s: PredictInto needs a non-nil out map", b.name)
	}
	_, err := b.submit(ctx, inputs, out)
	return err
}

// pin returns the target a request runs on and what unpins it.
func (b *Batcher) pin() (*target, func(), error) {
	if b.fixed != nil {
		return b.fixed, nil, nil
	}
	m, release, err := b.pinner.Pin()
	if err != nil {
		return nil, nil, err
	}
	if t := b.last.Load(); t != nil && t.model == m {
		return t, release, nil
	}
	b.pinMu.Lock()
	defer b.pinMu.Unlock()
	t := b.last.Load()
	if t == nil || t.model != m {
		t = b.newTarget(m)
		b.last.Store(t)
	}
	return t, release, nil
}

func (b *Batcher) submit(ctx context.Context, inputs map[string]Tensor, into map[string]Tensor) (map[string]Value, error) {
	if err := ctx.Err(); err != nil {
		b.stats.fail(ctxKind(err))
		return nil, fmt.Errorf("serving: %s: %w", b.name, err)
	}
	tgt, release, err := b.pin()
	if err != nil {
		b.countErr(err)
		return nil, err
	}
	if into != nil && !tgt.tensorsOnly {
		if release != nil {
			release()
		}
		return nil, fmt.Errorf("serving: %s: model has non-tensor outputs; PredictInto returns tensors only, use Predict", tgt.info.Name)
	}
	r := requestPool.Get().(*request)
	r.tgt, r.release = tgt, release
	if r.ins, err = validateInputs(tgt.info.Inputs, inputs, r.ins[:0], true); err == nil {
		r.rows, r.key, err = batchKey(tgt, r.ins)
	}
	if err == nil && b.opts.MaxRequestRows > 0 && r.rows > b.opts.MaxRequestRows {
		err = &InputError{Input: tgt.info.Inputs[0].Name, Kind: ErrTooLarge, Got: fmt.Sprintf("%d rows", r.rows),
			Want: fmt.Sprintf("at most %d rows (BatcherOptions.MaxRequestRows)", b.opts.MaxRequestRows)}
	}
	if err != nil {
		b.recycle(r)
		b.stats.fail(ErrKindInput)
		return nil, err
	}
	r.ctx, r.inputs, r.into, r.prio, r.enq = ctx, inputs, into, priorityOf(ctx), b.now()
	b.startSpan(r)

	// Count the rows as outstanding before waiting for the lock: callers
	// held up there are about to queue, and a batch that ignored them would
	// run small, answer fast, and keep the queue short and batches small.
	b.outstanding.Add(int64(r.rows))
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		b.leave(r.rows)
		b.recycle(r)
		b.stats.fail(ErrKindClosed)
		return nil, ErrClosed
	}
	if b.queue.len() >= b.opts.MaxQueueLength {
		b.mu.Unlock()
		b.leave(r.rows)
		b.recycle(r)
		b.stats.fail(ErrKindOverloaded)
		return nil, fmt.Errorf("%w: %d requests queued for %s", ErrOverloaded, b.opts.MaxQueueLength, b.name)
	}
	b.accepted++
	r.grp = b.groupOf(r)
	b.queue.push(r)
	b.addRows(r.key, r.rows)
	// Wake a worker waiting to form a batch only when its decision changes:
	// the queue was empty (it waits without a timer) or the head's batch is
	// now ready. Waking one on every request would cost a context switch each.
	wake := b.forming > 0 && (b.queue.len() == 1 || b.ready(b.queue.head()))
	b.mu.Unlock()
	if wake {
		b.wake()
	}

	var res result
	if done := ctx.Done(); done == nil {
		res = <-r.done
	} else {
		select {
		case res = <-r.done:
		case <-done:
			return nil, b.abandon(ctx, r)
		}
	}
	b.leave(r.rows)
	b.recycle(r)
	return res.out, res.err
}

// abandon answers a request whose context ended while it waited. A request
// still queued leaves the queue at once. One already taken into a batch
// waits for that batch to be done with it (the batch reads its inputs and
// may write PredictInto's outputs, which the caller owns again once it
// returns); the batch skips it if it has not started running.
func (b *Batcher) abandon(ctx context.Context, r *request) error {
	b.mu.Lock()
	queued := b.remove(r)
	b.mu.Unlock()
	if !queued {
		<-r.done
	}
	b.leave(r.rows)
	b.recycle(r)
	b.stats.fail(ctxKind(ctx.Err()))
	return fmt.Errorf("serving: %s: %w", b.name, ctx.Err())
}

// leave takes a returning request's rows out of the outstanding count,
// waking a worker waiting to form a batch when that makes the batch ready.
func (b *Batcher) leave(rows int) {
	// Decrement, then read readyAt; the worker stores readyAt, then reads
	// outstanding: one of the two sees the other's write.
	if b.outstanding.Add(-int64(rows)) > b.readyAt.Load() {
		return
	}
	b.mu.Lock()
	wake := b.forming > 0 && b.queue.len() > 0 && b.ready(b.queue.head())
	b.mu.Unlock()
	if wake {
		b.wake()
	}
}

// recycle unpins the request's model, ends its span and returns it to the
// pool.
func (b *Batcher) recycle(r *request) {
	if r.release != nil {
		r.release()
	}
	if r.span != nil {
		r.span.End()
	}
	r.ctx, r.inputs, r.into, r.rows, r.key = nil, nil, nil, 0, 0
	r.tgt, r.release, r.span, r.grp = nil, nil, nil, nil
	clear(r.ins)
	requestPool.Put(r)
}

// now reads the monotonic clock only (time.Now reads the wall clock too).
func (b *Batcher) now() time.Duration { return time.Since(b.epoch) }

func ctxKind(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrKindDeadline
	}
	return ErrKindCanceled
}

// batchKey returns the request's row count and a hash of its target and
// non-batch dimensions. Requests with equal keys are compared exactly
// (same target, sameDims) before they are merged, so a hash collision can
// never merge mismatched shapes. A model that cannot batch gives 0 rows.
func batchKey(tgt *target, ins []Tensor) (int, uint64, error) {
	if !tgt.info.Batchable {
		// Rows only for the stats: the first input's leading axis, or 1.
		for _, in := range ins {
			if len(in.Shape) > 0 {
				return int(in.Shape[0]), 0, nil
			}
		}
		return 1, 0, nil
	}
	want := tgt.info.Inputs
	const prime = 1099511628211
	h := (uint64(14695981039346656037) ^ tgt.id) * prime
	rows := -1
	for i, in := range ins {
		s := in.Shape
		if rows == -1 {
			rows = int(s[0])
		} else if int(s[0]) != rows {
			return 0, 0, &InputError{Input: want[i].Name, Kind: ErrShape,
				Got: fmt.Sprintf("%d rows", s[0]), Want: fmt.Sprintf("%d rows like input %q", rows, want[0].Name)}
		}
		for _, d := range s[1:] {
			h = (h ^ uint64(d)) * prime
		}
		h = (h ^ 0xff) * prime
	}
	return rows, h, nil
}

// sameDims reports whether a and b have equal non-batch dimensions.
func (b *Batcher) sameDims(x, y *request) bool {
	for i := range x.ins {
		if !slices.Equal(x.ins[i].Shape[1:], y.ins[i].Shape[1:]) {
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

// remove takes r out of the queue if it is there; b.mu must be held.
func (b *Batcher) remove(r *request) bool {
	if !b.queue.remove(r) {
		return false
	}
	b.addRows(r.key, -r.rows)
	return true
}

// addRows adds n to the queued rows of key; b.mu must be held.
func (b *Batcher) addRows(key uint64, n int) {
	b.queued += n
	for i := range b.keyRows {
		if b.keyRows[i].key == key {
			b.keyRows[i].rows += n
			if b.keyRows[i].rows == 0 {
				b.keyRows = slices.Delete(b.keyRows, i, i+1)
			}
			return
		}
	}
	b.keyRows = append(b.keyRows, keyRows{key, n})
}

// rowsOf returns the queued rows of key; b.mu must be held.
func (b *Batcher) rowsOf(key uint64) int {
	for _, k := range b.keyRows {
		if k.key == key {
			return k.rows
		}
	}
	return 0
}

// ready reports whether head's batch should run without waiting any longer
// (see MaxQueueDelay), and publishes in readyAt when callers leaving
// Predict would make it ready; b.mu must be held.
func (b *Batcher) ready(head *request) bool {
	if !head.tgt.info.Batchable || b.closing || head.rows == 0 {
		return true
	}
	rows := b.rowsOf(head.key)
	limit := b.opts.MaxBatchSize
	if head.grp != nil {
		limit = min(limit, head.grp.cap())
	}
	if rows >= limit {
		return true
	}
	if b.opts.AlwaysWait {
		return false
	}
	// Queued rows of other keys (other shapes, or another model pinned
	// through a Pinner) can never join this batch: they do not count as
	// rows that may still come.
	share := int64(rows*b.opts.MaxInFlight + b.queued - rows)
	if share >= b.outstanding.Load() {
		return true
	}
	// Store readyAt, then read outstanding again: leave decrements, then
	// reads readyAt, so one of the two sees the other's write.
	if b.readyAt.Load() != share {
		b.readyAt.Store(share)
	}
	return share >= b.outstanding.Load()
}

// worker runs batches until the batcher is closed and its queue drained.
// Idle workers all wait for the next batch; the readiness rules (see
// MaxQueueDelay) keep them from splitting the queue into tiny batches.
func (b *Batcher) worker() {
	defer b.workers.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var buf []*request
	var bufs []any // merged inputs' data, reused when the model allows it
	var bufsFor *target
	bc := new(batchCtx)
	var last measured
	for {
		batch, tag := b.next(timer, buf[:0], &last)
		if batch == nil {
			return
		}
		if tgt := batch[0].tgt; tgt != bufsFor {
			bufs, bufsFor = nil, tgt
			if tgt.borrow {
				bufs = make([]any, len(tgt.info.Inputs))
			}
		}
		if tag.g == nil {
			b.runBatch(batch, bufs, bc)
		} else {
			start := b.clock()
			if rows := b.runBatch(batch, bufs, bc); rows > 0 {
				last = measured{batchTag: tag, rows: rows, busy: b.clock() - start}
			}
		}
		clear(batch) // answered requests go back to the pool; hold none
		buf = batch
	}
}

// batchTag says which shape group and size cap a batch was taken under.
type batchTag struct {
	g    *group
	rung int
	seq  uint64
}

// measured is what a worker saw of its last batch: rows answered and the
// time it spent on them.
type measured struct {
	batchTag
	rows int
	busy time.Duration
}

// next waits until the oldest request of the highest priority has enough
// company or has waited MaxQueueDelay, and returns its batch; nil once the
// batcher is closed and the queue is empty. It first hands last, the
// worker's previous batch, to its shape group: under the lock it takes
// anyway, so measuring costs no lock of its own.
func (b *Batcher) next(timer *time.Timer, buf []*request, last *measured) ([]*request, batchTag) {
	b.mu.Lock()
	if last.g != nil {
		last.g.record(last.rung, last.seq, last.rows, last.busy)
		*last = measured{}
	}
	for {
		if b.queue.len() == 0 {
			if b.closing {
				b.mu.Unlock()
				b.wake() // let the next worker see it too
				return nil, batchTag{}
			}
			b.forming++
			b.mu.Unlock()
			<-b.notify
			b.mu.Lock()
			b.stopForming()
			continue
		}
		head := b.queue.head()
		wait := time.Duration(0)
		if !b.ready(head) {
			wait = b.opts.MaxQueueDelay - (b.now() - head.enq)
		}
		if wait <= 0 {
			batch, tag := b.take(head, buf)
			// Another worker may be waiting for what is left.
			wake := b.forming > 0 && b.queue.len() > 0 && b.ready(b.queue.head())
			b.mu.Unlock()
			if wake {
				b.wake()
			}
			return batch, tag
		}
		b.forming++
		b.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-b.notify:
		case <-timer.C:
		}
		timer.Stop()
		b.mu.Lock()
		b.stopForming()
	}
}

// stopForming counts out a worker that stopped waiting; b.mu must be held.
func (b *Batcher) stopForming() {
	b.forming--
	if b.forming == 0 {
		b.readyAt.Store(-1)
	}
}

// take removes from the queue the head and the requests that can join it,
// in priority order, up to MaxBatchSize rows or the head's adaptive cap
// (or the batch's share of the outstanding rows, when smaller); b.mu must
// be held.
func (b *Batcher) take(head *request, batch []*request) ([]*request, batchTag) {
	limit := b.opts.MaxBatchSize
	var tag batchTag
	if g := head.grp; g != nil {
		tag.g = g
		tag.rung, tag.seq = g.pick()
		limit = min(limit, g.rungs[tag.rung])
	}
	if !head.tgt.info.Batchable || head.rows >= limit || head.rows == 0 {
		b.remove(head)
		return append(batch, head), tag
	}
	// A batch takes no more than its share of the outstanding rows, so the
	// rows left queued can fill the next batch slot at once.
	if !b.opts.AlwaysWait {
		k := int64(b.opts.MaxInFlight)
		if share := int((b.outstanding.Load() + k - 1) / k); share < limit {
			limit = max(share, head.rows)
		}
	}
	batch, rows := b.queue.take(batch, limit, func(r *request) bool {
		return r == head || (r.key == head.key && r.tgt == head.tgt && r.rows > 0 && b.sameDims(head, r))
	})
	b.addRows(head.key, -rows)
	return batch, tag
}

// runBatch runs a batch and answers its requests; it returns the rows
// answered without error.
func (b *Batcher) runBatch(batch []*request, bufs []any, bc *batchCtx) int {
	b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	start := b.now()
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			// Dropped before the run: its caller returns ctx's error (and
			// counts it) once told that the batch is done with it.
			r.done <- result{err: err}
			continue
		}
		wait := start - r.enq
		b.stats.queueWait.observe(wait)
		if r.span != nil {
			r.span.AddEvent("dequeued", trace.WithAttributes(attribute.Float64("quiver.queue_wait_seconds", wait.Seconds())))
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return 0
	}
	tgt := live[0].tgt
	if len(live) == 1 && !b.needsPadding(tgt, live[0].rows) {
		r := live[0]
		ctx := context.WithoutCancel(r.ctx)
		if !tgt.info.Batchable {
			ctx = r.ctx // a request run alone may be terminated by its caller
		}
		out, err := tgt.model.Predict(ctx, r.inputs)
		if err == nil && r.into != nil {
			err = fillFromValues(r.into, out)
			out = nil
		}
		end := b.now()
		rows := r.rows // r is its caller's again once answered
		b.stats.batch(rows, 0, end-start)
		if err == nil {
			b.stats.latency.observe(end - r.enq)
		}
		b.answer(r, out, err)
		if err != nil {
			return 0
		}
		return rows
	}
	rows := 0
	for _, r := range live {
		rows += r.rows
	}
	padded := b.paddedSize(tgt, rows)
	inputs, err := mergeInputs(tgt.info, live, padded, bufs)
	if err != nil {
		b.failAll(live, err)
		return 0
	}
	ctx, span := b.batchContext(bc, live, rows, padded)
	out, err := tgt.model.Predict(ctx, inputs)
	bc.release()
	end := b.now()
	if span != nil {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	b.stats.batch(rows, padded-rows, end-start)
	if err != nil {
		b.failAll(live, err)
		return 0
	}
	parts, err := splitOutputs(out, live, padded)
	if err != nil {
		b.opts.Logger.Error("serving: cannot split batch outputs", "model", tgt.info.Name, "error", err)
		b.failAll(live, err)
		return 0
	}
	for i, r := range live {
		b.stats.latency.observe(end - r.enq)
		b.answer(r, parts[i], nil)
	}
	return rows
}

func (b *Batcher) needsPadding(tgt *target, rows int) bool { return b.paddedSize(tgt, rows) != rows }

// paddedSize is the smallest allowed batch size holding rows, or rows.
func (b *Batcher) paddedSize(tgt *target, rows int) int {
	if !tgt.info.Batchable {
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
		if r.span != nil {
			r.span.SetStatus(codes.Error, err.Error())
		}
	}
	r.done <- result{out: out, err: err}
}

func (b *Batcher) countErr(err error) {
	switch {
	case errors.Is(err, ErrClosed):
		b.stats.fail(ErrKindClosed)
	case errors.Is(err, ErrNotReady):
		b.stats.fail(ErrKindNotReady)
	case errors.Is(err, context.Canceled):
		b.stats.fail(ErrKindCanceled)
	case errors.Is(err, context.DeadlineExceeded):
		b.stats.fail(ErrKindDeadline)
	case errors.Is(err, ErrInput), errors.Is(err, ErrShape), errors.Is(err, ErrType), errors.Is(err, ErrTooLarge):
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
