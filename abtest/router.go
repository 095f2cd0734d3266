package abtest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/quiverml/quiver/internal/metrics"
	"github.com/quiverml/quiver/serving"
)

// Router predicts through the model of the variant a unit is assigned to
// and reports which variant answered. *ModelRouter is the default
// implementation.
type Router interface {
	// Predict assigns req.Unit and runs the variant's model on req.Inputs.
	Predict(ctx context.Context, req Request) (Result, error)
	// Close stops accepting requests and waits for in-flight work.
	Close() error
}

// Request is one prediction request.
type Request struct {
	// Unit is the randomisation unit's id (user, session). Required.
	Unit string
	// Attributes feed the experiment's targeting predicate; may be nil.
	Attributes Attributes
	// Inputs are passed to the variant's model unchanged. With shadows
	// configured they are also read by shadow workers after Predict returns,
	// so the caller must not modify them afterwards.
	Inputs map[string]serving.Tensor
}

// Result is the answer of the variant that served a request.
type Result struct {
	// Variant is the name of the variant whose model answered.
	Variant string
	// Assignment is the full assignment (enrolled, reason, bucket).
	Assignment Assignment
	// Outputs are the model's outputs.
	Outputs map[string]serving.Value
	// Latency is the time the variant's model took.
	Latency time.Duration
}

// ShadowResult is what a shadow model answered for a copy of a request. It
// is given to RouterOptions.OnShadow and never returned to the caller.
type ShadowResult struct {
	Shadow  string // the shadow's name
	Unit    string
	Primary string // the variant that answered the request
	// PrimaryOutputs (the map returned to the caller; read it, do not
	// modify it) and Outputs let the callback compare the answers.
	PrimaryOutputs map[string]serving.Value
	Outputs        map[string]serving.Value
	Err            error
	Latency        time.Duration
}

// RouterOptions configure a ModelRouter. Zero values select the defaults
// documented on each field.
type RouterOptions struct {
	// Tracker receives one ObserveRequest and, for enrolled units, one
	// Expose per request. Nil creates a tracker over the assigner's variants
	// (see ModelRouter.Tracker).
	Tracker *Tracker
	// Shadows receive an asynchronous copy of every request; their answers
	// go to OnShadow and to ShadowTracker, never to the caller. When the
	// request's context carries an OpenTelemetry span, a shadow's
	// prediction gets a span of its own, quiver.abtest.shadow, a child of
	// the request's span in the request's trace (a traced Batcher under the
	// shadow records its spans beneath it). The prediction does not inherit
	// the request's deadline, cancellation or other values (such as
	// registry.WithServedHook, which reports the version that answered the
	// caller): it runs after the request has been answered, bounded by
	// ShadowTimeout.
	Shadows map[string]serving.Model
	// ShadowQueue bounds the copies waiting for a shadow worker; when it is
	// full new copies are dropped and counted. Zero means 1024.
	ShadowQueue int
	// ShadowWorkers bounds the shadow predictions running at once. Zero means 2.
	ShadowWorkers int
	// ShadowTimeout bounds each shadow prediction. Zero means 5s.
	ShadowTimeout time.Duration
	// OnShadow, if set, is called from a shadow worker with each result.
	OnShadow func(ShadowResult)
	// Logger receives shadow failures at debug level (they happen per
	// request; ShadowFailed counts them). Nil means slog.Default(); pass
	// slog.New(slog.DiscardHandler) to silence it.
	Logger *slog.Logger
}

// RouterStats is a snapshot of a ModelRouter's counters.
type RouterStats struct {
	// Requests counts Predict calls that reached a model, per variant.
	Requests map[string]uint64
	// Errors counts failed Predict calls (assignment or model), in total.
	Errors uint64
	// ShadowEnqueued, ShadowDropped, ShadowCompleted and ShadowFailed count
	// shadow copies: queued, dropped because the queue was full, finished
	// without error, and finished with an error.
	ShadowEnqueued, ShadowDropped, ShadowCompleted, ShadowFailed uint64
	// ShadowQueued is the number of copies waiting now.
	ShadowQueued int
}

// ModelRouter is the default Router: it routes between serving.Model values
// with any Assigner. Variant models may be ONNX models, batchers, or a
// registry alias (a serving.Model that forwards each call to the version the
// alias currently points at), so promoting a version needs no router change.
// A ModelRouter does not own the models: Close does not close them.
type ModelRouter struct {
	assigner Assigner
	names    []string
	models   []serving.Model
	tracker  *Tracker
	trackIdx []int // tracker index of each variant
	requests []atomic.Uint64
	errors   atomic.Uint64

	shadows     []shadowModel
	shadowQ     chan shadowJob
	shadowTO    time.Duration
	onShadow    func(ShadowResult)
	shadowTrack *Tracker
	log         *slog.Logger
	enqueued    atomic.Uint64
	dropped     atomic.Uint64
	completed   atomic.Uint64
	failed      atomic.Uint64
	workers     sync.WaitGroup
	closeMu     sync.RWMutex // guards closed against concurrent enqueue
	closed      bool
	closedFast  atomic.Bool
}

// epoch anchors monotonic.
var epoch = time.Now()

// monotonic reads only the monotonic clock (time.Now also reads the wall
// clock, which costs as much again on virtual machines without a fast
// clock source).
func monotonic() time.Duration { return time.Since(epoch) }

type shadowModel struct {
	name  string
	model serving.Model
}

// tracerName is the instrumentation scope of the router's spans.
const tracerName = "github.com/quiverml/quiver/abtest"

type shadowJob struct {
	span    trace.Span // the request's span; the shadow's spans join its trace
	shadow  int
	unit    string
	primary string
	inputs  map[string]serving.Tensor
	outputs map[string]serving.Value
}

// NewRouter returns a router that assigns with a and predicts with
// models[variant]. Every variant of a needs a non-nil model; models for
// names that are not variants are an error. Shadow workers start here and
// stop in Close.
func NewRouter(a Assigner, models map[string]serving.Model, opts RouterOptions) (*ModelRouter, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: nil assigner", ErrConfig)
	}
	names := a.Variants()
	r := &ModelRouter{assigner: a, names: names, models: make([]serving.Model, len(names)), requests: make([]atomic.Uint64, len(names))}
	known := make(map[string]bool, len(names))
	for i, n := range names {
		m := models[n]
		if m == nil {
			return nil, fmt.Errorf("%w: experiment %q: no model for variant %q, want a serving.Model for each of %s", ErrConfig, a.Name(), n, quoteList(names))
		}
		r.models[i] = m
		known[n] = true
	}
	for n := range models {
		if !known[n] {
			return nil, fmt.Errorf("%w: model given for %q, want one of %s", ErrUnknownVariant, n, quoteList(names))
		}
	}
	r.tracker = opts.Tracker
	if r.tracker == nil {
		t, err := NewTracker(a.Name(), names)
		if err != nil {
			return nil, err
		}
		r.tracker = t
	}
	r.trackIdx = make([]int, len(names))
	for i, n := range names {
		j, ok := r.tracker.index[n]
		if !ok {
			return nil, fmt.Errorf("%w: tracker has no variant %q of experiment %q", ErrUnknownVariant, n, a.Name())
		}
		r.trackIdx[i] = j
	}
	r.log = opts.Logger
	if r.log == nil {
		r.log = slog.Default()
	}
	if len(opts.Shadows) > 0 {
		var snames []string
		for n, m := range opts.Shadows {
			if n == "" || m == nil {
				return nil, fmt.Errorf("%w: shadow %q: want a non-empty name and a non-nil model", ErrConfig, n)
			}
			r.shadows = append(r.shadows, shadowModel{name: n, model: m})
		}
		// Stable order, so shadow statistics line up across runs.
		sortShadows(r.shadows)
		for _, s := range r.shadows {
			snames = append(snames, s.name)
		}
		st, err := NewTracker(a.Name()+"/shadow", snames)
		if err != nil {
			return nil, err
		}
		r.shadowTrack = st
		q := opts.ShadowQueue
		if q == 0 {
			q = 1024
		}
		w := opts.ShadowWorkers
		if w == 0 {
			w = 2
		}
		if q < 0 || w < 0 || opts.ShadowTimeout < 0 {
			return nil, fmt.Errorf("%w: shadow queue %d, workers %d, timeout %v, want values >= 0", ErrConfig, opts.ShadowQueue, opts.ShadowWorkers, opts.ShadowTimeout)
		}
		r.shadowTO = opts.ShadowTimeout
		if r.shadowTO == 0 {
			r.shadowTO = 5 * time.Second
		}
		r.onShadow = opts.OnShadow
		r.shadowQ = make(chan shadowJob, q)
		r.workers.Add(w)
		for range w {
			go r.shadowWorker()
		}
	}
	return r, nil
}

func sortShadows(s []shadowModel) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].name < s[j-1].name; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Tracker returns the tracker that receives the router's per-variant
// requests, errors, latency and exposures. Record outcomes (Convert,
// Observe) on it.
func (r *ModelRouter) Tracker() *Tracker { return r.tracker }

// ShadowTracker returns the tracker of shadow requests, errors and latency,
// one variant per shadow, or nil when no shadows are configured.
func (r *ModelRouter) ShadowTracker() *Tracker { return r.shadowTrack }

// Predict assigns req.Unit, runs the assigned variant's model and returns
// its answer with the variant's name. Model errors are returned wrapped,
// with Result.Variant still set. After a successful answer, one copy of the
// request per shadow is enqueued without blocking (dropped and counted when
// the shadow queue is full); failed requests are not shadowed.
func (r *ModelRouter) Predict(ctx context.Context, req Request) (Result, error) {
	// The read lock spans the whole call, so Close waits for in-flight
	// predictions; it is uncontended until Close.
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed {
		return Result{}, ErrClosed
	}
	a, err := r.assigner.Assign(req.Unit, req.Attributes)
	if err != nil {
		r.errors.Add(1)
		return Result{}, err
	}
	if a.Index < 0 || a.Index >= len(r.models) {
		r.errors.Add(1)
		return Result{}, fmt.Errorf("%w: assigner returned variant index %d, want [0, %d)", ErrUnknownVariant, a.Index, len(r.models))
	}
	start := monotonic()
	out, err := r.models[a.Index].Predict(ctx, req.Inputs)
	lat := monotonic() - start
	r.requests[a.Index].Add(1)
	if a.Enrolled {
		v := r.tracker.vs[r.trackIdx[a.Index]]
		v.observeRequest(lat, err != nil)
		v.exposures.Add(1)
	}
	res := Result{Variant: a.Variant, Assignment: a, Outputs: out, Latency: lat}
	if err != nil {
		r.errors.Add(1)
		return res, fmt.Errorf("abtest: experiment %q variant %q: %w", a.Experiment, a.Variant, err)
	}
	if len(r.shadows) > 0 {
		r.enqueueShadows(ctx, req, a.Variant, out)
	}
	return res, nil
}

// enqueueShadows runs under closeMu's read lock, so the queue is open.
func (r *ModelRouter) enqueueShadows(ctx context.Context, req Request, primary string, out map[string]serving.Value) {
	span := trace.SpanFromContext(ctx)
	for i := range r.shadows {
		select {
		case r.shadowQ <- shadowJob{span: span, shadow: i, unit: req.Unit, primary: primary, inputs: req.Inputs, outputs: out}:
			r.enqueued.Add(1)
		default:
			r.dropped.Add(1)
		}
	}
}

func (r *ModelRouter) shadowWorker() {
	defer r.workers.Done()
	for job := range r.shadowQ {
		s := r.shadows[job.shadow]
		// The request's trace, not its deadline or values: the shadow runs
		// after the request has been answered, usually after its span ended.
		base, span := context.Background(), trace.Span(nil)
		if job.span.SpanContext().IsValid() {
			base, span = job.span.TracerProvider().Tracer(tracerName).Start(
				trace.ContextWithSpan(base, job.span), "quiver.abtest.shadow",
				trace.WithSpanKind(trace.SpanKindInternal),
				trace.WithAttributes(
					attribute.String("quiver.experiment", r.assigner.Name()),
					attribute.String("quiver.shadow", s.name),
					attribute.String("quiver.primary", job.primary)))
		}
		ctx, cancel := context.WithTimeout(base, r.shadowTO)
		start := monotonic()
		out, err := s.model.Predict(ctx, job.inputs)
		lat := monotonic() - start
		cancel()
		if span != nil {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, "shadow prediction failed")
			}
			span.End()
		}
		r.shadowTrack.vs[job.shadow].observeRequest(lat, err != nil)
		if err != nil {
			r.failed.Add(1)
			r.log.Debug("abtest: shadow prediction failed", "experiment", r.assigner.Name(), "shadow", s.name, "unit", job.unit, "error", err)
		} else {
			r.completed.Add(1)
		}
		if r.onShadow != nil {
			r.onShadow(ShadowResult{Shadow: s.name, Unit: job.unit, Primary: job.primary, PrimaryOutputs: job.outputs, Outputs: out, Err: err, Latency: lat})
		}
	}
}

// Close stops accepting requests, waits for in-flight Predict calls, lets
// the shadow workers finish the copies already queued, and waits for them. It does not close the variant or
// shadow models. Predict after Close returns ErrClosed; Close is idempotent.
func (r *ModelRouter) Close() error {
	r.closeMu.Lock()
	if r.closed {
		r.closeMu.Unlock()
		return nil
	}
	r.closed = true
	if r.shadowQ != nil {
		close(r.shadowQ)
	}
	r.closeMu.Unlock()
	r.workers.Wait()
	return nil
}

// Stats returns a snapshot of the router's counters.
func (r *ModelRouter) Stats() RouterStats {
	s := RouterStats{
		Requests:        make(map[string]uint64, len(r.names)),
		Errors:          r.errors.Load(),
		ShadowEnqueued:  r.enqueued.Load(),
		ShadowDropped:   r.dropped.Load(),
		ShadowCompleted: r.completed.Load(),
		ShadowFailed:    r.failed.Load(),
	}
	for i, n := range r.names {
		s.Requests[n] = r.requests[i].Load()
	}
	if r.shadowQ != nil {
		s.ShadowQueued = len(r.shadowQ)
	}
	return s
}

// Collector returns a prometheus.Collector exporting the router's
// counters under the quiver_abtest_ prefix: requests per variant, failed
// requests and shadow copies by outcome. The router's trackers (Tracker,
// ShadowTracker) have collectors of their own; register them too. The
// caller registers them where it wants; the package registers nothing.
//
// Every series carries constLabels as constant labels, added to the
// default {"experiment": the assigner's name}; a key of constLabels
// overrides the default. Routers whose labels differ register side by side
// in one registry; two with identical labels are refused by the registry
// as a duplicate. Every collector registered in one registry must use the
// same label names.
func (r *ModelRouter) Collector(constLabels prometheus.Labels) prometheus.Collector {
	l := metrics.ConstLabels(prometheus.Labels{"experiment": r.assigner.Name()}, constLabels)
	return &routerCollector{r: r,
		requests: prometheus.NewDesc("quiver_abtest_router_requests_total", "Requests routed to a variant.", []string{"variant"}, l),
		errors:   prometheus.NewDesc("quiver_abtest_router_errors_total", "Routed requests that failed.", nil, l),
		shadow:   prometheus.NewDesc("quiver_abtest_shadow_copies_total", "Shadow request copies by outcome (enqueued, dropped, completed, failed).", []string{"outcome"}, l),
	}
}

type routerCollector struct {
	r                        *ModelRouter
	requests, errors, shadow *prometheus.Desc
}

func (c *routerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.errors
	ch <- c.shadow
}

func (c *routerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Stats()
	for _, n := range c.r.names {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(s.Requests[n]), n)
	}
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(s.Errors))
	for _, o := range []struct {
		name string
		v    uint64
	}{{"enqueued", s.ShadowEnqueued}, {"dropped", s.ShadowDropped}, {"completed", s.ShadowCompleted}, {"failed", s.ShadowFailed}} {
		ch <- prometheus.MustNewConstMetric(c.shadow, prometheus.CounterValue, float64(o.v), o.name)
	}
}
