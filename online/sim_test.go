package online_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/online"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/gorgonia/train"
	"github.com/stretchr/testify/require"
)

// The click stream the tests learn from: each event a user (whose four
// session features are drawn afresh and written to the store at the
// event's time) meets an item (four fixed features); the click
// probability is the sigmoid of a linear function of the eight features.
// At the drift event the weights of the user features change sign.
const (
	simUsers     = 200
	simItems     = 100
	simUserDim   = 4
	simItemDim   = 4
	simWidth     = simUserDim + simItemDim
	simStep      = 10 * time.Millisecond // event spacing on the synthetic clock
	simDelay     = 16                    // events between a prediction and its outcome
	simLostEvery = 97                    // every 97th outcome never arrives
)

var (
	simStart   = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	simWeights = [simWidth]float64{1.6, -1.3, 1.1, -0.9, 1.4, -1.1, 0.9, 1.3}
	simBias    = -0.2
)

// simClock is a synthetic clock the tests advance by hand.
type simClock struct{ ns atomic.Int64 }

func newSimClock() *simClock {
	c := &simClock{}
	c.ns.Store(simStart.UnixNano())
	return c
}

func (c *simClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *simClock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *simClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// simEventTime is the time of stream event i.
func simEventTime(i int) time.Time { return simStart.Add(time.Duration(i) * simStep) }

// simEvent returns the index of the stream event at time t.
func simEvent(t time.Time) int { return int(t.Sub(simStart) / simStep) }

type sim struct {
	rng     *rand.Rand
	drift   int // first drifted event; < 0: never
	items   [simItems][simItemDim]float32
	store   *features.Memory
	user    *features.Selection
	item    *features.Selection
	clicked []float64 // label of each event
}

func newSim(t testing.TB, seed uint64, drift int, clock *simClock) *sim {
	t.Helper()
	s := &sim{rng: rand.New(rand.NewPCG(seed, seed^0x5bd1e995)), drift: drift}
	s.store = features.New(features.Options{Logger: slog.New(slog.DiscardHandler), Clock: clock.Now})
	t.Cleanup(func() { s.store.Close() })
	view := func(name string, dim int) features.View {
		v := features.View{Name: name, Entity: name + "_id", TTL: 24 * time.Hour}
		for j := 0; j < dim; j++ {
			v.Features = append(v.Features, features.Feature{Name: fmt.Sprintf("f%d", j), Kind: features.KindFloat32})
		}
		return v
	}
	require.NoError(t, s.store.Register(view("user", simUserDim)))
	require.NoError(t, s.store.Register(view("item", simItemDim)))
	var err error
	s.user, err = s.store.Select("user")
	require.NoError(t, err)
	s.item, err = s.store.Select("item")
	require.NoError(t, err)
	for i := range s.items {
		vals := map[string]features.Value{}
		for j := range s.items[i] {
			s.items[i][j] = float32(s.rng.NormFloat64())
			vals[fmt.Sprintf("f%d", j)] = features.Float32(s.items[i][j])
		}
		require.NoError(t, s.store.Put(context.Background(), "item",
			features.Row{Entity: "i" + strconv.Itoa(i), EventTime: simStart.Add(-time.Hour), Values: vals}))
	}
	return s
}

// next draws event i: writes the user's fresh features to the store at the
// event's time and returns the request and its label.
func (s *sim) next(t testing.TB, i int) (online.Request, float64) {
	u, it := s.rng.IntN(simUsers), s.rng.IntN(simItems)
	var x [simWidth]float64
	vals := map[string]features.Value{}
	for j := 0; j < simUserDim; j++ {
		v := float32(s.rng.NormFloat64())
		x[j] = float64(v)
		vals[fmt.Sprintf("f%d", j)] = features.Float32(v)
	}
	for j := 0; j < simItemDim; j++ {
		x[simUserDim+j] = float64(s.items[it][j])
	}
	at := simEventTime(i)
	user := "u" + strconv.Itoa(u)
	if err := s.store.Put(context.Background(), "user", features.Row{Entity: user, EventTime: at, Values: vals}); err != nil {
		t.Fatalf("put user features: %v", err)
	}
	label := 0.0
	if s.rng.Float64() < s.prob(x[:], i) {
		label = 1
	}
	return online.Request{ID: "r" + strconv.Itoa(i), Entities: []string{user, "i" + strconv.Itoa(it)}, Time: at}, label
}

// prob is the true click probability of features x at event i.
func (s *sim) prob(x []float64, i int) float64 {
	z := simBias
	for j, w := range simWeights {
		if s.drift >= 0 && i >= s.drift && j < simUserDim {
			w = -w
		}
		z += w * x[j]
	}
	return 1 / (1 + math.Exp(-z))
}

// batch draws n rows of the pre-drift distribution without the store, for
// offline training.
func (s *sim) batch(n int) ([]float32, []float32) {
	x := make([]float32, n*simWidth)
	y := make([]float32, n)
	for r := 0; r < n; r++ {
		row := x[r*simWidth : (r+1)*simWidth]
		xf := make([]float64, simWidth)
		for j := 0; j < simUserDim; j++ {
			row[j] = float32(s.rng.NormFloat64())
		}
		copy(row[simUserDim:], s.items[s.rng.IntN(simItems)][:])
		for j := range row {
			xf[j] = float64(row[j])
		}
		if s.rng.Float64() < s.prob(xf, -1) {
			y[r] = 1
		}
	}
	return x, y
}

// newTrainer returns a logistic regression trainer over the stream's
// features.
func newTrainer(t testing.TB, lr float64) *train.Trainer {
	t.Helper()
	tr, err := train.New(train.LogisticRegression{Features: simWidth},
		train.Options{Seed: 7, LearningRate: lr, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	return tr
}

// pretrain trains tr offline on rows of the pre-drift distribution.
func pretrain(t testing.TB, s *sim, tr *train.Trainer, rows, batch int) {
	t.Helper()
	for done := 0; done < rows; done += batch {
		x, y := s.batch(batch)
		_, err := tr.Update(context.Background(), map[string]serving.Tensor{"x": serving.NewTensor([]int64{int64(batch), simWidth}, x)},
			serving.NewTensor([]int64{int64(batch), 1}, y))
		require.NoError(t, err)
	}
}

// runStream plays stream events [from, to): it sets the clock to each
// event's time, predicts, and delivers each outcome simDelay events later
// (except every simLostEvery-th, which never comes). label, when set,
// changes the label of the k-th outcome delivered (k counts from 0 over
// the whole run, in join order). Outcomes still due at the end are
// delivered after the last event.
type streamRun struct {
	s       *sim
	loop    *online.Loop
	clock   *simClock
	label   func(k int, y float64) float64
	due     []dueOutcome
	sent    int
	next    int // the next event playUntil plays
	predict func(i int, p online.Prediction)
}

type dueOutcome struct {
	event int
	id    string
	label float64
}

func (r *streamRun) play(t testing.TB, from, to int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < to; i++ {
		r.clock.Set(simEventTime(i))
		req, y := r.s.next(t, i)
		p, err := r.loop.Predict(ctx, req)
		if err != nil {
			t.Fatalf("event %d: predict: %v", i, err)
		}
		if r.predict != nil {
			r.predict(i, p)
		}
		if i%simLostEvery != simLostEvery-1 {
			r.due = append(r.due, dueOutcome{event: i, id: req.ID, label: y})
		}
		r.deliver(t, i-simDelay)
	}
}

// drain delivers every outcome still due.
func (r *streamRun) drain(t testing.TB) { r.deliver(t, math.MaxInt) }

func (r *streamRun) deliver(t testing.TB, upTo int) {
	t.Helper()
	n := 0
	for ; n < len(r.due) && r.due[n].event <= upTo; n++ {
		d := r.due[n]
		y := d.label
		if r.label != nil {
			y = r.label(r.sent, y)
		}
		r.sent++
		if err := r.loop.Outcome(context.Background(), online.Outcome{RequestID: d.id, Label: y, Time: r.clock.Now()}); err != nil {
			t.Fatalf("outcome %s: %v", d.id, err)
		}
	}
	r.due = r.due[n:]
}
