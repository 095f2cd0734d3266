package serving_test

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/servingtest"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestMergedBatchCarriesEveryRequestContext holds the only batch slot while
// four requests queue; when it frees, they run as one merged batch (they
// are then all the rows outstanding). The run must see all four contexts
// and their values.
func TestMergedBatchCarriesEveryRequestContext(t *testing.T) {
	type key struct{}
	seen := make(chan []any, 2)
	f := &ctxModel{Doubler: servingtest.Doubler{Gate: make(chan struct{})}, seen: seen, key: key{}}
	b, err := NewBatcher(f, BatcherOptions{Adaptive: AdaptiveOff, MaxBatchSize: 8, MaxInFlight: 1, MaxQueueDelay: time.Hour})
	require.NoError(t, err)
	defer b.Close()
	holdThenMerge(t, b, f.Gate, 4, func(i int) (context.Context, func()) {
		return context.WithValue(context.Background(), key{}, i), func() {}
	})
	require.Equal(t, []any{100}, <-seen)
	require.ElementsMatch(t, []any{0, 1, 2, 3}, <-seen)
	require.Equal(t, []int{8, 4}, f.Runs())
}

// holdThenMerge sends request 100, a full batch of 8 rows that runs at once
// and holds b's only slot (MaxInFlight 1) on gate, then n one-row requests
// that queue behind it; it opens the gate and waits for every answer. The
// n requests then make up all the rows outstanding and run as one merged
// batch. start gives each request's context and what to do once answered.
func holdThenMerge(t *testing.T, b *Batcher, gate chan struct{}, n int, start func(i int) (context.Context, func())) {
	t.Helper()
	openGate := sync.OnceFunc(func() { close(gate) })
	defer openGate() // before the caller's Close, should an assertion fail while the gate is shut
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	send := func(i int) {
		defer wg.Done()
		ctx, done := start(i)
		_, err := b.Predict(ctx, rows(float32(i)))
		done()
		errs <- err
	}
	wg.Add(1)
	go send(100)
	require.Eventually(t, func() bool { return b.Stats().InFlight == 1 }, 5*time.Second, time.Millisecond)
	for i := range n {
		wg.Add(1)
		go send(i)
	}
	waitQueued(t, b, n)
	openGate()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// rows returns a request of 8 rows of v when v is 100, else of one row:
// the first fills a batch of 8 and runs at once.
func rows(v float32) map[string]Tensor {
	n := 1
	if v == 100 {
		n = 8
	}
	d := make([]float32, 2*n)
	for i := range d {
		d[i] = v
	}
	return map[string]Tensor{"x": NewTensor([]int64{int64(n), 2}, d)}
}

// ctxModel is a Doubler that reports the value under key of every request
// context of each run.
type ctxModel struct {
	servingtest.Doubler
	seen chan []any
	key  any
}

func (m *ctxModel) Predict(ctx context.Context, in map[string]Tensor) (map[string]Value, error) {
	var vals []any
	for _, rc := range RequestContexts(ctx) {
		vals = append(vals, rc.Value(m.key))
	}
	out, err := m.Doubler.Predict(ctx, in)
	m.seen <- vals
	return out, err
}

// TestTracingSpans checks the spans of a traced request and of a merged
// batch: one span per request, parented to the caller's span, and one span
// per batch, linked to the request spans.
func TestTracingSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	f := &servingtest.Doubler{Gate: make(chan struct{})}
	b, err := NewBatcher(f, BatcherOptions{Adaptive: AdaptiveOff, MaxBatchSize: 8, MaxInFlight: 1, MaxQueueDelay: time.Hour})
	require.NoError(t, err)
	defer b.Close()
	parents := make(chan trace.SpanContext, 4)
	holdThenMerge(t, b, f.Gate, 3, func(int) (context.Context, func()) {
		ctx, span := tp.Tracer("test").Start(context.Background(), "caller")
		parents <- span.SpanContext()
		return ctx, func() { span.End() }
	})
	close(parents)
	callers := map[trace.SpanID]bool{}
	for p := range parents {
		callers[p.SpanID()] = true
	}

	var requests, batches []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "quiver.serving.request":
			requests = append(requests, s)
		case "quiver.serving.batch":
			batches = append(batches, s)
		}
	}
	require.Len(t, requests, 4)
	reqIDs := map[trace.SpanID]bool{}
	for _, s := range requests {
		require.True(t, callers[s.Parent().SpanID()], "a request span is the child of its caller's span")
		require.NotEmpty(t, s.Events(), "the request span marks when its batch started")
		reqIDs[s.SpanContext().SpanID()] = true
	}
	require.Len(t, batches, 1, "only the merged run of three requests has a batch span")
	links := batches[0].Links()
	require.Len(t, links, 3)
	for _, l := range links {
		require.True(t, reqIDs[l.SpanContext.SpanID()], "the batch links to its requests' spans")
	}
}

// TestUntracedRequestsStayUntraced checks that a request whose context
// carries no recording span creates no span.
func TestUntracedRequestsStayUntraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	b, err := NewBatcher(&servingtest.Doubler{}, BatcherOptions{})
	require.NoError(t, err)
	defer b.Close()
	_, err = b.Predict(context.Background(), servingtest.Row(1, 2))
	require.NoError(t, err)
	require.Empty(t, rec.Ended())

	// With TracerProvider set, every request is traced.
	tb, err := NewBatcher(&servingtest.Doubler{}, BatcherOptions{TracerProvider: tp})
	require.NoError(t, err)
	defer tb.Close()
	_, err = tb.Predict(context.Background(), servingtest.Row(1, 2))
	require.NoError(t, err)
	require.Len(t, rec.Ended(), 1)
}
