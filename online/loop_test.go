package online_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/internal/metrics/metricstest"
	"github.com/quiverml/quiver/online"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
)

// newLoop returns a loop over the sim's store that learns with tr and
// serves through it; edit adjusts the options first.
func newLoop(t testing.TB, s *sim, clock *simClock, tr *train.Trainer, edit func(*online.Options)) *online.Loop {
	t.Helper()
	opts := online.Options{Store: s.store, Features: []*features.Selection{s.user, s.item}, Model: tr,
		Clock: clock.Now, Logger: slog.New(slog.DiscardHandler)}
	if edit != nil {
		edit(&opts)
	}
	l, err := online.New(online.LearnerFrom(tr), opts)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

func putUser(t testing.TB, s *sim, user string, at time.Time, v float32) {
	t.Helper()
	vals := map[string]features.Value{}
	for j := 0; j < simUserDim; j++ {
		vals[fmt.Sprintf("f%d", j)] = features.Float32(v + float32(j))
	}
	require.NoError(t, s.store.Put(context.Background(), "user", features.Row{Entity: user, EventTime: at, Values: vals}))
}

// predictRow asks tr directly for the probability of row.
func predictRow(t testing.TB, m serving.Model, row []float32) float64 {
	t.Helper()
	out, err := m.Predict(context.Background(), map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, int64(len(row))}, row)})
	require.NoError(t, err)
	return float64(out["y"].Tensor.Data.([]float32)[0])
}

// A feature written after a prediction must not reach its training row:
// the row joined to the outcome is the one the model was served.
func TestJoinUsesFeaturesOfPredictionTime(t *testing.T) {
	ctx := context.Background()
	clock := newSimClock()
	s := newSim(t, 1, -1, clock)
	tr := newTrainer(t, 0.03)
	var events []online.Event
	l := newLoop(t, s, clock, tr, func(o *online.Options) {
		o.BatchSize, o.HoldoutEvery = 1, 2
		o.OnEvent = func(e online.Event) { events = append(events, e) }
	})
	t0 := simStart
	putUser(t, s, "u1", t0, 1)
	clock.Set(t0.Add(time.Second))
	p1, err := l.Predict(ctx, online.Request{ID: "r1", Entities: []string{"u1", "i0"}})
	require.NoError(t, err)
	require.Equal(t, t0.Add(time.Second), p1.Time, "a request without a time takes the clock's")

	want1 := append([]float32{1, 2, 3, 4}, s.items[0][:]...)
	require.InDelta(t, predictRow(t, tr, want1), p1.Score, 1e-7, "the served row is the store's row")

	putUser(t, s, "u1", t0.Add(2*time.Second), 10) // after the prediction
	clock.Set(t0.Add(3 * time.Second))
	p2, err := l.Predict(ctx, online.Request{ID: "r2", Entities: []string{"u1", "i0"}})
	require.NoError(t, err)
	want2 := append([]float32{10, 11, 12, 13}, s.items[0][:]...)
	require.InDelta(t, predictRow(t, tr, want2), p2.Score, 1e-7)

	clock.Set(t0.Add(4 * time.Second))
	require.NoError(t, l.Outcome(ctx, online.Outcome{RequestID: "r1", Label: 1}))
	require.NoError(t, l.Outcome(ctx, online.Outcome{RequestID: "r2", Label: 0, Time: t0.Add(5 * time.Second)}))

	require.Len(t, events, 2)
	require.Equal(t, want1, events[0].Row, "r1 joins the features of its prediction, not the later write")
	require.Equal(t, "r1", events[0].Request)
	require.Equal(t, []string{"u1", "i0"}, events[0].Entities)
	require.Equal(t, t0.Add(time.Second), events[0].PredictedAt)
	require.Equal(t, t0.Add(4*time.Second), events[0].OutcomeAt)
	require.False(t, events[0].HeldOut)
	require.Equal(t, want2, events[1].Row)
	require.True(t, events[1].HeldOut, "every 2nd event is held out")
	require.Equal(t, float64(0), events[1].Label)

	st := l.Stats()
	require.Equal(t, uint64(2), st.Joined)
	require.Equal(t, uint64(1), st.Trained)
	require.Equal(t, uint64(1), st.HeldOut)
	require.Equal(t, int64(1), tr.Stats().UpdateRows, "the learner trained on the one non-held-out row")
}

func TestBadInputLeavesStateIntact(t *testing.T) {
	ctx := context.Background()
	clock := newSimClock()
	s := newSim(t, 1, -1, clock)
	tr := newTrainer(t, 0.03)
	l := newLoop(t, s, clock, tr, func(o *online.Options) { o.BatchSize = 1 })
	putUser(t, s, "u1", simStart, 1)
	clock.Advance(time.Second)
	_, err := l.Predict(ctx, online.Request{ID: "r1", Entities: []string{"u1", "i0"}})
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		req  online.Request
		want error
	}{
		{"empty id", online.Request{Entities: []string{"u1", "i0"}}, online.ErrRequest},
		{"long id", online.Request{ID: strings.Repeat("x", online.MaxRequestIDLen+1), Entities: []string{"u1", "i0"}}, online.ErrRequest},
		{"one key", online.Request{ID: "r9", Entities: []string{"u1"}}, online.ErrRequest},
		{"empty key", online.Request{ID: "r9", Entities: []string{"u1", ""}}, online.ErrRequest},
		{"duplicate", online.Request{ID: "r1", Entities: []string{"u1", "i0"}}, online.ErrDuplicateRequest},
	} {
		t.Run("predict "+tc.name, func(t *testing.T) {
			_, err := l.Predict(ctx, tc.req)
			require.ErrorIs(t, err, tc.want)
		})
	}
	for _, tc := range []struct {
		name string
		o    online.Outcome
		want error
	}{
		{"empty id", online.Outcome{Label: 1}, online.ErrOutcome},
		{"soft label", online.Outcome{RequestID: "r1", Label: 0.5}, online.ErrOutcome},
		{"label 2", online.Outcome{RequestID: "r1", Label: 2}, online.ErrOutcome},
		{"before prediction", online.Outcome{RequestID: "r1", Label: 1, Time: simStart}, online.ErrOutcome},
		{"unknown", online.Outcome{RequestID: "nope", Label: 1}, online.ErrUnknownRequest},
	} {
		t.Run("outcome "+tc.name, func(t *testing.T) {
			require.ErrorIs(t, l.Outcome(ctx, tc.o), tc.want)
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, l.Outcome(cctx, online.Outcome{RequestID: "r1", Label: 1}), context.Canceled)
	_, err = l.Predict(cctx, online.Request{ID: "r2", Entities: []string{"u1", "i0"}})
	require.ErrorIs(t, err, context.Canceled)

	st := l.Stats()
	require.Equal(t, 1, st.Pending, "r1 still waits after every refused outcome")
	require.Equal(t, uint64(4), st.Rejected)
	require.Equal(t, uint64(1), st.Unmatched)
	require.Equal(t, uint64(0), st.Joined)
	require.Equal(t, int64(0), tr.Stats().Updates)

	require.NoError(t, l.Outcome(ctx, online.Outcome{RequestID: "r1", Label: 1}))
	require.ErrorIs(t, l.Outcome(ctx, online.Outcome{RequestID: "r1", Label: 1}), online.ErrUnknownRequest, "an outcome joins once")
	require.Equal(t, int64(1), tr.Stats().Updates)

	require.NoError(t, l.Close())
	require.NoError(t, l.Close())
	_, err = l.Predict(ctx, online.Request{ID: "r3", Entities: []string{"u1", "i0"}})
	require.ErrorIs(t, err, online.ErrClosed)
	require.ErrorIs(t, l.Outcome(ctx, online.Outcome{RequestID: "r3", Label: 1}), online.ErrClosed)
	require.ErrorIs(t, l.Flush(ctx), online.ErrClosed)
}

func TestPredictionsExpireAfterTTL(t *testing.T) {
	ctx := context.Background()
	clock := newSimClock()
	s := newSim(t, 1, -1, clock)
	l := newLoop(t, s, clock, newTrainer(t, 0.03), func(o *online.Options) { o.TTL = time.Minute })
	putUser(t, s, "u1", simStart, 1)
	for i, at := range []time.Duration{0, 30 * time.Second, 50 * time.Second} {
		clock.Set(simStart.Add(at))
		_, err := l.Predict(ctx, online.Request{ID: "r" + strconv.Itoa(i), Entities: []string{"u1", "i0"}})
		require.NoError(t, err)
	}
	require.Equal(t, 3, l.Stats().Pending)

	clock.Set(simStart.Add(80 * time.Second)) // r0 is 80s old, past the TTL; r1 is 50s old
	require.ErrorIs(t, l.Outcome(ctx, online.Outcome{RequestID: "r0", Label: 1}), online.ErrUnknownRequest)
	st := l.Stats()
	require.Equal(t, uint64(1), st.Expired)
	require.Equal(t, 2, st.Pending)
	require.NoError(t, l.Outcome(ctx, online.Outcome{RequestID: "r1", Label: 0}))

	clock.Set(simStart.Add(111 * time.Second)) // r2 is 61s old
	require.ErrorIs(t, l.Outcome(ctx, online.Outcome{RequestID: "r2", Label: 0}), online.ErrUnknownRequest)
	st = l.Stats()
	require.Equal(t, uint64(2), st.Expired)
	require.Equal(t, 0, st.Pending)
	require.Equal(t, uint64(1), st.Joined)
}

func TestPendingPredictionsAreBounded(t *testing.T) {
	ctx := context.Background()
	clock := newSimClock()
	s := newSim(t, 1, -1, clock)
	l := newLoop(t, s, clock, newTrainer(t, 0.03), func(o *online.Options) { o.MaxPending = 100 })
	putUser(t, s, "u1", simStart, 1)
	for i := 0; i < 1000; i++ {
		_, err := l.Predict(ctx, online.Request{ID: "r" + strconv.Itoa(i), Entities: []string{"u1", "i0"}})
		require.NoError(t, err)
		if i%3 == 0 { // joins in the middle of the log leave holes in its queue
			require.NoError(t, l.Outcome(ctx, online.Outcome{RequestID: "r" + strconv.Itoa(i), Label: 1}))
		}
	}
	st := l.Stats()
	require.LessOrEqual(t, st.Pending, 100)
	require.Equal(t, uint64(334), st.Joined)
	require.Equal(t, uint64(1000-334-st.Pending), st.Evicted, "every prediction joined, waits or was evicted")
	require.ErrorIs(t, l.Outcome(ctx, online.Outcome{RequestID: "r1", Label: 1}), online.ErrUnknownRequest, "the oldest were evicted")
	require.NoError(t, l.Outcome(ctx, online.Outcome{RequestID: "r998", Label: 1}), "the newest wait")
}

func TestLearnsInMiniBatches(t *testing.T) {
	ctx := context.Background()
	clock := newSimClock()
	s := newSim(t, 1, -1, clock)
	tr := newTrainer(t, 0.03)
	l := newLoop(t, s, clock, tr, func(o *online.Options) { o.BatchSize, o.HoldoutEvery = 4, 5 })
	putUser(t, s, "u1", simStart, 1)
	for i := 0; i < 11; i++ {
		id := "r" + strconv.Itoa(i)
		_, err := l.Predict(ctx, online.Request{ID: id, Entities: []string{"u1", "i" + strconv.Itoa(i)}})
		require.NoError(t, err)
		require.NoError(t, l.Outcome(ctx, online.Outcome{RequestID: id, Label: float64(i % 2)}))
	}
	// Events 4 and 9 are held out; 9 trained rows: two batches of 4, one waiting.
	st := l.Stats()
	require.Equal(t, uint64(2), st.HeldOut)
	require.Equal(t, uint64(2), st.Updates)
	require.Equal(t, uint64(8), st.Trained)
	require.Equal(t, int64(2), tr.Stats().Updates)
	require.Equal(t, int64(8), tr.Stats().UpdateRows)

	require.NoError(t, l.Flush(ctx))
	require.Equal(t, int64(9), tr.Stats().UpdateRows, "Flush trains the partial batch")
	require.NoError(t, l.Flush(ctx))
	require.Equal(t, int64(3), tr.Stats().Updates, "an empty batch is no update")
}

// Window reports must equal the metrics recomputed from the held-out
// events: a baseline that never learns is scored on exactly those rows.
func TestWindowsMatchRecomputedMetrics(t *testing.T) {
	clock := newSimClock()
	s := newSim(t, 3, -1, clock)
	tr := newTrainer(t, 0.03)
	static := newTrainer(t, 0.03)
	pretrain(t, s, static, 2000, 64)
	var held []online.Event
	l := newLoop(t, s, clock, tr, func(o *online.Options) {
		o.HoldoutEvery, o.WindowSize, o.MaxWindows = 3, 50, 4
		o.Baselines = map[string]serving.Model{"static": static}
		o.OnEvent = func(e online.Event) {
			if e.HeldOut {
				held = append(held, e)
			}
		}
	})
	r := &streamRun{s: s, loop: l, clock: clock}
	r.play(t, 0, 1000)
	r.drain(t)

	ws := l.Windows()
	require.Len(t, ws, 4, "MaxWindows keeps the latest")
	total := len(held) / 50
	require.Equal(t, total-1, ws[3].Index)
	for _, w := range ws {
		part := held[w.Index*50 : (w.Index+1)*50]
		require.Equal(t, part[0].Number, w.FirstEvent)
		require.Equal(t, part[49].Number, w.LastEvent)
		require.Equal(t, part[0].PredictedAt, w.First)
		require.Equal(t, part[49].PredictedAt, w.Last)
		scores, labels := make([]float64, 50), make([]float64, 50)
		for i, e := range part {
			scores[i], labels[i] = predictRow(t, static, e.Row), e.Label
		}
		want, err := online.Evaluate(scores, labels)
		require.NoError(t, err)
		require.InDelta(t, want.AUC, w.Metrics["static"].AUC, 1e-12, "window %d", w.Index)
		require.InDelta(t, want.LogLoss, w.Metrics["static"].LogLoss, 1e-6, "window %d", w.Index)
		require.Equal(t, 50, w.Metrics[online.LearnerName].N)
		require.Greater(t, w.Metrics["static"].AUC, 0.75, "a model trained on the stream's distribution ranks it")
	}
	st := l.Stats()
	require.Equal(t, ws[3].Index, st.Window.Index)
	require.Equal(t, ws[3].Metrics, st.Window.Metrics)
}

func TestConcurrentPredictionsAndOutcomes(t *testing.T) {
	ctx := context.Background()
	clock := newSimClock()
	s := newSim(t, 1, -1, clock)
	tr := newTrainer(t, 0.03)
	l := newLoop(t, s, clock, tr, func(o *online.Options) { o.BatchSize, o.HoldoutEvery, o.WindowSize = 8, 4, 20 })
	for u := 0; u < 4; u++ {
		putUser(t, s, "u"+strconv.Itoa(u), simStart, float32(u))
	}
	const workers, each = 4, 200
	var g errgroup.Group
	ids := make(chan string, workers*each)
	for w := 0; w < workers; w++ {
		g.Go(func() error {
			for i := 0; i < each; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				if _, err := l.Predict(ctx, online.Request{ID: id, Entities: []string{"u" + strconv.Itoa(w), "i" + strconv.Itoa(i%simItems)}}); err != nil {
					return err
				}
				ids <- id
			}
			return nil
		})
	}
	var joiners errgroup.Group
	var mu sync.Mutex
	sent := 0
	for j := 0; j < 2; j++ {
		joiners.Go(func() error {
			for id := range ids {
				if err := l.Outcome(ctx, online.Outcome{RequestID: id, Label: float64(len(id) % 2)}); err != nil {
					return err
				}
				mu.Lock()
				sent++
				mu.Unlock()
			}
			return nil
		})
	}
	statsDone := make(chan struct{})
	go func() { // readers race with writers
		defer close(statsDone)
		for i := 0; i < 50; i++ {
			_ = l.Stats()
			_ = l.Windows()
		}
	}()
	require.NoError(t, g.Wait())
	close(ids)
	require.NoError(t, joiners.Wait())
	<-statsDone
	require.NoError(t, l.Flush(ctx))
	st := l.Stats()
	require.Equal(t, workers*each, sent)
	require.Equal(t, uint64(workers*each), st.Joined)
	require.Equal(t, st.Joined, st.HeldOut+st.Trained)
	require.Equal(t, uint64(workers*each/4), st.HeldOut)
	require.Equal(t, int64(st.Trained), tr.Stats().UpdateRows)
	require.Len(t, l.Windows(), workers*each/4/20)
}

func TestConfigErrors(t *testing.T) {
	clock := newSimClock()
	s := newSim(t, 1, -1, clock)
	tr := newTrainer(t, 0.03)
	good := online.Options{Store: s.store, Features: []*features.Selection{s.user}, Model: tr}
	for _, tc := range []struct {
		name string
		edit func(*online.Options)
	}{
		{"no store", func(o *online.Options) { o.Store = nil }},
		{"no features", func(o *online.Options) { o.Features = nil }},
		{"nil selection", func(o *online.Options) { o.Features = []*features.Selection{nil} }},
		{"no model", func(o *online.Options) { o.Model = nil }},
		{"holdout 1", func(o *online.Options) { o.HoldoutEvery = 1 }},
		{"negative batch", func(o *online.Options) { o.BatchSize = -1 }},
		{"negative TTL", func(o *online.Options) { o.TTL = -time.Second }},
		{"baseline named learner", func(o *online.Options) { o.Baselines = map[string]serving.Model{online.LearnerName: tr} }},
		{"deploy without models", func(o *online.Options) { o.Deploy = &online.Deploy{Model: "m"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.edit(&o)
			_, err := online.New(online.LearnerFrom(tr), o)
			require.ErrorIs(t, err, online.ErrConfig)
		})
	}
	_, err := online.New(nil, good)
	require.ErrorIs(t, err, online.ErrConfig)
	l, err := online.New(online.LearnerFrom(tr), good)
	require.NoError(t, err)
	require.Equal(t, simUserDim, l.Width())
}

// A model whose answer is not one probability per row is refused, and
// nothing is logged.
func TestUnusableOutputIsRefused(t *testing.T) {
	ctx := context.Background()
	clock := newSimClock()
	s := newSim(t, 1, -1, clock)
	tr := newTrainer(t, 0.03)
	l := newLoop(t, s, clock, tr, func(o *online.Options) { o.Output = "z" })
	_, err := l.Predict(ctx, online.Request{ID: "r1", Entities: []string{"u1", "i0"}})
	require.ErrorIs(t, err, online.ErrOutput)
	require.Contains(t, err.Error(), `"z"`)
	require.Equal(t, 0, l.Stats().Pending)
	require.Equal(t, uint64(1), l.Stats().PredictErrors)
}

func TestCollector(t *testing.T) {
	ctx := context.Background()
	clock := newSimClock()
	s := newSim(t, 1, -1, clock)
	tr := newTrainer(t, 0.03)
	a := newLoop(t, s, clock, tr, func(o *online.Options) { o.Name, o.HoldoutEvery, o.WindowSize = "a", 2, 2 })
	b := newLoop(t, s, clock, tr, func(o *online.Options) { o.Name = "b" })
	putUser(t, s, "u1", simStart, 1)
	for i := 0; i < 4; i++ {
		id := "r" + strconv.Itoa(i)
		_, err := a.Predict(ctx, online.Request{ID: id, Entities: []string{"u1", "i" + strconv.Itoa(i)}})
		require.NoError(t, err)
		require.NoError(t, a.Outcome(ctx, online.Outcome{RequestID: id, Label: float64(i / 2 % 2)}))
	}
	require.ErrorIs(t, a.Outcome(ctx, online.Outcome{RequestID: "x", Label: 1}), online.ErrUnknownRequest)

	mfs := metricstest.Gather(t, a.Collector(nil), b.Collector(nil))
	metricstest.RequireConventions(t, mfs, "quiver_online_")
	metricstest.RequireDuplicate(t, a.Collector(nil), a.Collector(nil))
	value := func(name, loop string, labels ...string) (float64, bool) {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		metric:
			for _, m := range mf.GetMetric() {
				got := map[string]string{}
				for _, lp := range m.GetLabel() {
					got[lp.GetName()] = lp.GetValue()
				}
				if got["loop"] != loop {
					continue
				}
				for i := 0; i+1 < len(labels); i += 2 {
					if got[labels[i]] != labels[i+1] {
						continue metric
					}
				}
				return metricValue(m), true
			}
		}
		return 0, false
	}
	v, ok := value("quiver_online_outcomes_total", "a", "result", "joined")
	require.True(t, ok)
	require.Equal(t, 4.0, v)
	v, _ = value("quiver_online_outcomes_total", "a", "result", "unmatched")
	require.Equal(t, 1.0, v)
	v, _ = value("quiver_online_heldout_total", "a")
	require.Equal(t, 2.0, v)
	v, _ = value("quiver_online_predictions_total", "b")
	require.Equal(t, 0.0, v)
	auc, ok := value("quiver_online_window_auc", "a", "model", online.LearnerName)
	require.True(t, ok, "a's window closed after 2 held-out events")
	require.Equal(t, a.Stats().Window.Metrics[online.LearnerName].AUC, auc)
	require.False(t, math.IsNaN(auc), "the window's held-out events hold both classes")
	_, ok = value("quiver_online_window_auc", "b", "model", online.LearnerName)
	require.False(t, ok, "b has no window yet")
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// LearnerFrom adapts a trainer whose Update returns statistics, and the
// loop passes its errors through.
func TestLearnerFromPassesErrors(t *testing.T) {
	tr := newTrainer(t, 0.03)
	l := online.LearnerFrom(tr)
	err := l.Update(context.Background(), map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, 3}, []float32{1, 2, 3})},
		serving.NewTensor([]int64{1, 1}, []float32{1}))
	require.ErrorIs(t, err, serving.ErrShape)
	var buf bytes.Buffer
	require.NoError(t, l.Export(&buf))
	require.NotZero(t, buf.Len())
	require.NoError(t, tr.Close())
	require.True(t, errors.Is(l.Export(&buf), serving.ErrClosed))
}
