package main

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// newTracerProvider returns an OpenTelemetry SDK tracer provider that
// prints every finished span to w as one JSON line. A real deployment
// passes an OTLP exporter instead; the wiring is the same. Shut it down
// after the App closes, so the last spans are printed.
func newTracerProvider(w io.Writer) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(&spanPrinter{w: w}, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "quiver-recommender"))),
	)
}

// spanPrinter is a span exporter that writes JSON lines.
type spanPrinter struct {
	mu sync.Mutex
	w  io.Writer
}

type printedSpan struct {
	Name       string            `json:"name"`
	TraceID    string            `json:"trace_id"`
	SpanID     string            `json:"span_id"`
	Parent     string            `json:"parent_id,omitempty"`
	Links      []string          `json:"links,omitempty"`
	Start      time.Time         `json:"start"`
	DurationUS int64             `json:"duration_us"`
	Status     string            `json:"status,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Events     []string          `json:"events,omitempty"`
}

// ExportSpans prints spans.
func (p *spanPrinter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	enc := json.NewEncoder(p.w)
	for _, s := range spans {
		ps := printedSpan{
			Name: s.Name(), TraceID: s.SpanContext().TraceID().String(), SpanID: s.SpanContext().SpanID().String(),
			Start: s.StartTime(), DurationUS: s.EndTime().Sub(s.StartTime()).Microseconds(),
		}
		if s.Parent().IsValid() {
			ps.Parent = s.Parent().SpanID().String()
		}
		for _, l := range s.Links() {
			ps.Links = append(ps.Links, l.SpanContext.TraceID().String()+"/"+l.SpanContext.SpanID().String())
		}
		if st := s.Status(); st.Code != 0 {
			ps.Status = st.Code.String() + ": " + st.Description
		}
		if attrs := s.Attributes(); len(attrs) > 0 {
			ps.Attributes = make(map[string]string, len(attrs))
			for _, kv := range attrs {
				ps.Attributes[string(kv.Key)] = kv.Value.Emit()
			}
		}
		for _, e := range s.Events() {
			ps.Events = append(ps.Events, e.Name)
		}
		if err := enc.Encode(ps); err != nil {
			return err
		}
	}
	return nil
}

// Shutdown has nothing to release: the writer belongs to the caller.
func (p *spanPrinter) Shutdown(context.Context) error { return nil }
