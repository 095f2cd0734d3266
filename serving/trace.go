package serving

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the Batcher's spans.
const tracerName = "github.com/quiverml/quiver/serving"

type requestsKey struct{}

// RequestContexts returns the contexts of the requests that a model's run
// serves: when a Batcher merges several requests into one run, the run's
// context carries all of theirs, so a model (or a Pinner's pinned model)
// can reach every request's values, such as hooks that must fire once per
// request. For any other context it returns ctx alone.
//
// A merged run's context carries no deadline and is never cancelled: the
// run is shared, and one caller giving up does not cut it short for the
// others (see Batcher.Predict). Its values are those of the first request,
// and its span is the batch's span. The Batcher reuses a merged run's
// context and the returned slice for later batches: use them only until
// Predict returns.
func RequestContexts(ctx context.Context) []context.Context {
	if rs, ok := ctx.Value(requestsKey{}).([]context.Context); ok {
		return rs
	}
	return []context.Context{ctx}
}

// batchCtx is the context a merged batch runs under: never cancelled, no
// deadline, the first request's values, and every request's context under
// requestsKey. Each worker reuses one, so a merged run allocates no
// context; a model must not keep the context after Predict returns.
type batchCtx struct {
	first context.Context
	reqs  []context.Context
}

func (c *batchCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *batchCtx) Done() <-chan struct{}       { return nil }
func (c *batchCtx) Err() error                  { return nil }
func (c *batchCtx) Value(key any) any {
	if key == (requestsKey{}) {
		return c.reqs
	}
	return c.first.Value(key)
}

// batchContext fills bc for the live requests and returns the context the
// batch runs under, and the batch's span when any of its requests is
// traced.
func (b *Batcher) batchContext(bc *batchCtx, live []*request, rows, padded int) (context.Context, trace.Span) {
	bc.first = live[0].ctx
	bc.reqs = bc.reqs[:0]
	var links []trace.Link
	for _, r := range live {
		bc.reqs = append(bc.reqs, r.ctx)
		if r.span != nil {
			links = append(links, trace.Link{SpanContext: r.span.SpanContext()})
		}
	}
	if links == nil {
		return bc, nil
	}
	// The batch serves many traces, so it starts a trace of its own
	// linked to each request's span, as OpenTelemetry advises for batches.
	ctx, span := b.tracerFor(live[0].ctx).Start(bc, "quiver.serving.batch",
		trace.WithNewRoot(), trace.WithLinks(links...), trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			attribute.String("quiver.model", live[0].tgt.info.Name),
			attribute.Int("quiver.batch.requests", len(live)),
			attribute.Int("quiver.batch.rows", rows),
			attribute.Int("quiver.batch.padding", padded-rows),
		))
	return ctx, span
}

// release drops the batch's references to its requests' contexts.
func (c *batchCtx) release() {
	c.first = nil
	clear(c.reqs)
	c.reqs = c.reqs[:0]
}

// startSpan starts the request's span when it is traced: when
// BatcherOptions.TracerProvider is set, or when ctx carries a recording
// span (the host traces this request through the global provider).
// Untraced requests cost no allocation.
func (b *Batcher) startSpan(r *request) {
	if b.tracer == nil && !trace.SpanFromContext(r.ctx).IsRecording() {
		return
	}
	ctx, span := b.tracerFor(r.ctx).Start(r.ctx, "quiver.serving.request",
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			attribute.String("quiver.model", r.tgt.info.Name),
			attribute.Int("quiver.rows", r.rows),
		))
	r.ctx, r.span = ctx, span
}

func (b *Batcher) tracerFor(ctx context.Context) trace.Tracer {
	if b.tracer != nil {
		return b.tracer
	}
	if tp := trace.SpanFromContext(ctx).TracerProvider(); tp != nil {
		return tp.Tracer(tracerName)
	}
	return otel.Tracer(tracerName)
}
