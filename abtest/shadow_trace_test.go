package abtest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/servingtest"
)

// TestShadowJoinsTheRequestTrace puts a traced Batcher behind a shadow:
// the shadow's request span is a child of the caller's span, in the same
// trace, and the shadow still completes after the caller's context is
// cancelled (it carries the trace, not the deadline).
func TestShadowJoinsTheRequestTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	e := mustExperiment(t, Config{Name: "s", Variants: []Variant{{"prod", 1}}})
	gate := make(chan struct{})
	shadowModel := &servingtest.Doubler{Gate: gate}
	shadow, err := serving.NewBatcher(shadowModel, serving.BatcherOptions{})
	require.NoError(t, err)
	defer shadow.Close()
	done := make(chan ShadowResult, 1)
	r := newTestRouter(t, e, map[string]serving.Model{"prod": &servingtest.Doubler{}}, RouterOptions{
		Shadows:  map[string]serving.Model{"candidate": shadow},
		OnShadow: func(s ShadowResult) { done <- s },
	})

	ctx, span := tp.Tracer("test").Start(context.Background(), "caller")
	ctx, cancel := context.WithCancel(ctx)
	_, err = r.Predict(ctx, Request{Unit: "u", Inputs: servingtest.Row(1, 2)})
	require.NoError(t, err)
	cancel() // the caller is answered and gone
	span.End()
	close(gate)
	res := <-done
	require.NoError(t, res.Err, "the shadow does not inherit the caller's cancellation")

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		require.NotContains(t, byName, s.Name())
		byName[s.Name()] = s
	}
	sh, batch := byName["quiver.abtest.shadow"], byName["quiver.serving.request"]
	require.NotNil(t, sh, "the shadow's span")
	require.NotNil(t, batch, "the shadow's Batcher recorded its request")
	require.Equal(t, span.SpanContext().TraceID(), sh.SpanContext().TraceID())
	require.Equal(t, span.SpanContext().SpanID(), sh.Parent().SpanID(), "the shadow's span is a child of the caller's")
	require.Equal(t, sh.SpanContext().SpanID(), batch.Parent().SpanID(), "the Batcher's span is a child of the shadow's")
	require.Contains(t, sh.Attributes(), attribute.String("quiver.shadow", "candidate"))
}

// TestUntracedShadowStaysUntraced: without a span in the caller's
// context, the shadow's Batcher records nothing.
func TestUntracedShadowStaysUntraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	_ = tp.Tracer("test") // a provider exists in the process, but the caller does not trace

	e := mustExperiment(t, Config{Name: "s", Variants: []Variant{{"prod", 1}}})
	shadow, err := serving.NewBatcher(&servingtest.Doubler{}, serving.BatcherOptions{})
	require.NoError(t, err)
	defer shadow.Close()
	done := make(chan ShadowResult, 1)
	r := newTestRouter(t, e, map[string]serving.Model{"prod": &servingtest.Doubler{}}, RouterOptions{
		Shadows:  map[string]serving.Model{"candidate": shadow},
		OnShadow: func(s ShadowResult) { done <- s },
	})
	_, err = r.Predict(context.Background(), Request{Unit: "u", Inputs: servingtest.Row(1, 2)})
	require.NoError(t, err)
	require.NoError(t, (<-done).Err)
	require.Empty(t, rec.Ended())
}
