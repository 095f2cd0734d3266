package serving

import (
	"context"

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
// and its span is the batch's span.
func RequestContexts(ctx context.Context) []context.Context {
	if rs, ok := ctx.Value(requestsKey{}).([]context.Context); ok {
		return rs
	}
	return []context.Context{ctx}
}

// batchContext returns the context a merged batch runs under, and the
// batch's span when any of its requests is traced.
func (b *Batcher) batchContext(live []*request, rows, padded int) (context.Context, trace.Span) {
	ctxs := make([]context.Context, len(live))
	var links []trace.Link
	for i, r := range live {
		ctxs[i] = r.ctx
		if r.span != nil {
			links = append(links, trace.Link{SpanContext: r.span.SpanContext()})
		}
	}
	ctx := context.WithValue(context.WithoutCancel(live[0].ctx), requestsKey{}, ctxs)
	if links == nil {
		return ctx, nil
	}
	// The batch serves many traces, so it starts a trace of its own
	// linked to each request's span, as OpenTelemetry advises for batches.
	ctx, span := b.tracerFor(live[0].ctx).Start(ctx, "quiver.serving.batch",
		trace.WithNewRoot(), trace.WithLinks(links...), trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			attribute.String("quiver.model", live[0].tgt.info.Name),
			attribute.Int("quiver.batch.requests", len(live)),
			attribute.Int("quiver.batch.rows", rows),
			attribute.Int("quiver.batch.padding", padded-rows),
		))
	return ctx, span
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
