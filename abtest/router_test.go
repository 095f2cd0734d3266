package abtest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving"
)

// fakeModel answers with a constant tensor naming itself, optionally after a
// delay or with an error, and counts its calls.
type fakeModel struct {
	name  string
	err   error
	delay time.Duration
	block chan struct{} // when set, Predict waits for it (or ctx)
	calls atomic.Int64
	out   map[string]serving.Value
}

func newFake(name string) *fakeModel {
	return &fakeModel{name: name, out: map[string]serving.Value{
		"y": serving.TensorValue(serving.NewTensor([]int64{1}, []string{name})),
	}}
}

func (f *fakeModel) Info() serving.Info { return serving.Info{Name: f.name} }

func (f *fakeModel) Predict(ctx context.Context, _ map[string]serving.Tensor) (map[string]serving.Value, error) {
	f.calls.Add(1)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if f.err != nil {
		return nil, f.err
	}
	return f.out, nil
}

func (f *fakeModel) Close() error { return nil }

func answeredBy(t *testing.T, r Result) string {
	t.Helper()
	return r.Outputs["y"].Tensor.Data.([]string)[0]
}

var testInputs = map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, 2}, []float32{1, 2})}

func newTestRouter(t *testing.T, e Assigner, models map[string]serving.Model, opts RouterOptions) *ModelRouter {
	t.Helper()
	r, err := NewRouter(e, models, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestRouterRoutesToAssignedVariant(t *testing.T) {
	e := mustExperiment(t, Config{Name: "r", Variants: []Variant{{"a", 1}, {"b", 1}},
		Target: Equals("beta", "yes")})
	ma, mb := newFake("a"), newFake("b")
	r := newTestRouter(t, e, map[string]serving.Model{"a": ma, "b": mb}, RouterOptions{})
	ctx := context.Background()
	seen := map[string]int{}
	for i := range 2000 {
		u := unitID(i)
		res, err := r.Predict(ctx, Request{Unit: u, Attributes: Attributes{"beta": "yes"}, Inputs: testInputs})
		require.NoError(t, err)
		want, _ := e.Assign(u, Attributes{"beta": "yes"})
		require.Equal(t, want.Variant, res.Variant)
		require.Equal(t, want, res.Assignment)
		require.Equal(t, res.Variant, answeredBy(t, res), "the reported variant is the one that answered")
		seen[res.Variant]++
	}
	require.InDelta(t, 1000, seen["a"], 100)
	require.Equal(t, int64(seen["a"]), ma.calls.Load())
	require.Equal(t, int64(seen["b"]), mb.calls.Load())

	// Not targeted: served by control, not counted.
	res, err := r.Predict(ctx, Request{Unit: "u1", Inputs: testInputs})
	require.NoError(t, err)
	require.Equal(t, "a", res.Variant)
	require.False(t, res.Assignment.Enrolled)

	st := r.Stats()
	require.Equal(t, uint64(seen["a"]+1), st.Requests["a"])
	require.Equal(t, uint64(seen["b"]), st.Requests["b"])
	ts := r.Tracker().Stats()
	require.Equal(t, uint64(seen["a"]), ts[0].Requests, "unenrolled requests are not in the experiment's statistics")
	require.Equal(t, uint64(seen["a"]), ts[0].Exposures)
	require.Equal(t, uint64(seen["b"]), ts[1].Exposures)
}

func TestRouterErrors(t *testing.T) {
	e := mustExperiment(t, Config{Name: "r", Variants: []Variant{{"a", 1}, {"b", 1}}})
	ma := newFake("a")
	tests := []struct {
		name   string
		a      Assigner
		models map[string]serving.Model
		opts   RouterOptions
		want   error
	}{
		{"nil assigner", nil, nil, RouterOptions{}, ErrConfig},
		{"missing model", e, map[string]serving.Model{"a": ma}, RouterOptions{}, ErrConfig},
		{"extra model", e, map[string]serving.Model{"a": ma, "b": ma, "c": ma}, RouterOptions{}, ErrUnknownVariant},
		{"nil shadow", e, map[string]serving.Model{"a": ma, "b": ma}, RouterOptions{Shadows: map[string]serving.Model{"s": nil}}, ErrConfig},
		{"negative queue", e, map[string]serving.Model{"a": ma, "b": ma}, RouterOptions{Shadows: map[string]serving.Model{"s": ma}, ShadowQueue: -1}, ErrConfig},
		{"tracker lacks variant", e, map[string]serving.Model{"a": ma, "b": ma}, RouterOptions{Tracker: mustTracker(t, "r", "a")}, ErrUnknownVariant},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRouter(tc.a, tc.models, tc.opts)
			require.Nil(t, r)
			require.ErrorIs(t, err, tc.want)
		})
	}

	boom := errors.New("boom")
	mb := newFake("b")
	mb.err = boom
	r := newTestRouter(t, e, map[string]serving.Model{"a": ma, "b": mb}, RouterOptions{})
	_, err := r.Predict(context.Background(), Request{Unit: "", Inputs: testInputs})
	require.ErrorIs(t, err, ErrEmptyUnit)
	// Find a unit in b.
	u := ""
	for i := 0; u == ""; i++ {
		if a, _ := e.Assign(unitID(i), nil); a.Variant == "b" {
			u = unitID(i)
		}
	}
	res, err := r.Predict(context.Background(), Request{Unit: u, Inputs: testInputs})
	require.ErrorIs(t, err, boom)
	require.Contains(t, err.Error(), `variant "b"`)
	require.Equal(t, "b", res.Variant)
	vs, _ := r.Tracker().Variant("b")
	require.Equal(t, uint64(1), vs.Errors)
	require.Equal(t, uint64(2), r.Stats().Errors)

	require.NoError(t, r.Close())
	require.NoError(t, r.Close())
	_, err = r.Predict(context.Background(), Request{Unit: u, Inputs: testInputs})
	require.ErrorIs(t, err, ErrClosed)
}

func TestRouterShadowRecordsAndNeverReturns(t *testing.T) {
	e := mustExperiment(t, Config{Name: "s", Variants: []Variant{{"prod", 1}}})
	prod, shadow := newFake("prod"), newFake("shadow")
	var mu sync.Mutex
	var got []ShadowResult
	r := newTestRouter(t, e, map[string]serving.Model{"prod": prod}, RouterOptions{
		Shadows:  map[string]serving.Model{"candidate": shadow},
		OnShadow: func(s ShadowResult) { mu.Lock(); got = append(got, s); mu.Unlock() },
	})
	for i := range 50 {
		res, err := r.Predict(context.Background(), Request{Unit: unitID(i), Inputs: testInputs})
		require.NoError(t, err)
		require.Equal(t, "prod", answeredBy(t, res))
	}
	require.NoError(t, r.Close()) // drains the queue
	require.Len(t, got, 50)
	for _, s := range got {
		require.Equal(t, "candidate", s.Shadow)
		require.Equal(t, "prod", s.Primary)
		require.NoError(t, s.Err)
		require.Equal(t, "shadow", s.Outputs["y"].Tensor.Data.([]string)[0])
		require.Equal(t, "prod", s.PrimaryOutputs["y"].Tensor.Data.([]string)[0])
	}
	st := r.Stats()
	require.Equal(t, uint64(50), st.ShadowEnqueued)
	require.Equal(t, uint64(50), st.ShadowCompleted)
	require.Zero(t, st.ShadowDropped)
	ss, err := r.ShadowTracker().Variant("candidate")
	require.NoError(t, err)
	require.Equal(t, uint64(50), ss.Requests)
}

func TestRouterShadowQueueFullDrops(t *testing.T) {
	e := mustExperiment(t, Config{Name: "s", Variants: []Variant{{"prod", 1}}})
	prod, shadow := newFake("prod"), newFake("shadow")
	shadow.block = make(chan struct{})
	r := newTestRouter(t, e, map[string]serving.Model{"prod": prod}, RouterOptions{
		Shadows:       map[string]serving.Model{"slow": shadow},
		ShadowQueue:   2,
		ShadowWorkers: 1,
	})
	// The worker takes one copy and blocks; two more fill the queue; the
	// rest are dropped, and the primary path never waits.
	for i := range 10 {
		res, err := r.Predict(context.Background(), Request{Unit: unitID(i), Inputs: testInputs})
		require.NoError(t, err)
		require.Equal(t, "prod", res.Variant)
		if i == 0 {
			require.Eventually(t, func() bool { return shadow.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
		}
	}
	st := r.Stats()
	require.Equal(t, uint64(3), st.ShadowEnqueued)
	require.Equal(t, uint64(7), st.ShadowDropped)
	require.Equal(t, 2, st.ShadowQueued)
	close(shadow.block)
	require.NoError(t, r.Close())
	st = r.Stats()
	require.Equal(t, uint64(3), st.ShadowCompleted)
	require.Equal(t, 0, st.ShadowQueued)
}

func TestRouterShadowFailureAndTimeout(t *testing.T) {
	e := mustExperiment(t, Config{Name: "s", Variants: []Variant{{"prod", 1}}})
	prod, hang := newFake("prod"), newFake("hang")
	hang.block = make(chan struct{}) // never closed: the timeout ends it
	r := newTestRouter(t, e, map[string]serving.Model{"prod": prod}, RouterOptions{
		Shadows:       map[string]serving.Model{"hang": hang},
		ShadowTimeout: 10 * time.Millisecond,
	})
	_, err := r.Predict(context.Background(), Request{Unit: "u", Inputs: testInputs})
	require.NoError(t, err)
	require.NoError(t, r.Close())
	st := r.Stats()
	require.Equal(t, uint64(1), st.ShadowFailed)
	ss, _ := r.ShadowTracker().Variant("hang")
	require.Equal(t, uint64(1), ss.Errors)
}

func TestRouterConcurrent(t *testing.T) {
	e := mustExperiment(t, Config{Name: "c", Variants: []Variant{{"a", 1}, {"b", 1}}})
	r := newTestRouter(t, e, map[string]serving.Model{"a": newFake("a"), "b": newFake("b")}, RouterOptions{
		Shadows: map[string]serving.Model{"s": newFake("s")}, ShadowQueue: 8,
	})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				res, err := r.Predict(context.Background(), Request{Unit: unitID(g*1000 + i), Inputs: testInputs})
				if err != nil || res.Variant != answeredBy(t, res) {
					t.Errorf("predict: %v %q", err, res.Variant)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = e.SetWeights(map[string]float64{"a": 3}) }()
	wg.Wait()
	require.NoError(t, r.Close())
	st := r.Stats()
	require.Equal(t, uint64(2000), st.Requests["a"]+st.Requests["b"])
	require.Equal(t, uint64(2000), st.ShadowEnqueued+st.ShadowDropped)
	require.Equal(t, st.ShadowEnqueued, st.ShadowCompleted)
}

func TestRouterCollectors(t *testing.T) {
	e := mustExperiment(t, Config{Name: "m", Variants: []Variant{{"a", 1}}})
	r := newTestRouter(t, e, map[string]serving.Model{"a": newFake("a")}, RouterOptions{})
	_, err := r.Predict(context.Background(), Request{Unit: "u", Inputs: testInputs})
	require.NoError(t, err)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(r.Collector(nil)))
	require.NoError(t, reg.Register(r.Tracker().Collector(nil)))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	values := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					key += "/" + l.GetValue()
				}
			}
			values[key] += v
		}
	}
	require.Equal(t, 1.0, values["quiver_abtest_router_requests_total"])
	require.Equal(t, 1.0, values["quiver_abtest_requests_total"])
	require.Equal(t, 1.0, values["quiver_abtest_exposures_total"])
	require.Equal(t, 0.0, values["quiver_abtest_shadow_copies_total/dropped"])
	require.Equal(t, 1.0, values["quiver_abtest_request_seconds"], "latency is a histogram of one request")
}

// TestRouterWithONNXModels routes between two ONNX Runtime sessions of the
// committed mlp.onnx test model.
func TestRouterWithONNXModels(t *testing.T) {
	e := mustExperiment(t, Config{Name: "onnx", Variants: []Variant{{"v1", 1}, {"v2", 1}}})
	m1, m2 := loadMLP(t), loadMLP(t)
	r := newTestRouter(t, e, map[string]serving.Model{"v1": m1, "v2": m2}, RouterOptions{})
	x := make([]float32, 2*16)
	for i := range x {
		x[i] = float32(i%7) / 7
	}
	in := map[string]serving.Tensor{"x": serving.NewTensor([]int64{2, 16}, x)}
	direct, err := m1.Predict(context.Background(), in)
	require.NoError(t, err)
	seen := map[string]bool{}
	for i := range 40 {
		res, err := r.Predict(context.Background(), Request{Unit: unitID(i), Inputs: in})
		require.NoError(t, err)
		seen[res.Variant] = true
		y := res.Outputs["y"].Tensor
		require.Equal(t, []int64{2, 4}, y.Shape)
		// Both variants are the same model, so they agree with a direct run.
		require.InDeltaSlice(t, direct["y"].Tensor.Data, y.Data, 1e-6)
	}
	require.Len(t, seen, 2)
	// A bad input comes back as the model's error, naming the variant.
	_, err = r.Predict(context.Background(), Request{Unit: "u1", Inputs: map[string]serving.Tensor{
		"x": serving.NewTensor([]int64{1, 3}, []float32{1, 2, 3}),
	}})
	require.ErrorIs(t, err, serving.ErrShape)
	require.Contains(t, err.Error(), "variant")
}

func TestRouterCloseWaitsForInFlight(t *testing.T) {
	e := mustExperiment(t, Config{Name: "w", Variants: []Variant{{"a", 1}}})
	slow := newFake("a")
	slow.block = make(chan struct{})
	r := newTestRouter(t, e, map[string]serving.Model{"a": slow}, RouterOptions{})
	done := make(chan error)
	go func() {
		_, err := r.Predict(context.Background(), Request{Unit: "u", Inputs: testInputs})
		done <- err
	}()
	require.Eventually(t, func() bool { return slow.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
	closed := make(chan struct{})
	go func() { _ = r.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a prediction was in flight")
	case <-time.After(20 * time.Millisecond):
	}
	close(slow.block)
	require.NoError(t, <-done)
	<-closed
	_, err := r.Predict(context.Background(), Request{Unit: "u", Inputs: testInputs})
	require.ErrorIs(t, err, ErrClosed)
}
