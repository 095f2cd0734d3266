package serving_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/quiverml/quiver/serving/servingtest"
	"github.com/stretchr/testify/require"
)

// randomInputs builds a request of rows rows for info with random data;
// dynamic non-batch axes take the sizes in dyn (cycled).
func randomInputs(info Info, rows int, dyn []int64, rng *rand.Rand) map[string]Tensor {
	in := map[string]Tensor{}
	for _, io := range info.Inputs {
		shape := make([]int64, len(io.Shape))
		n, k := 1, 0
		for i, d := range io.Shape {
			switch {
			case d >= 0:
				shape[i] = d
			case i == 0:
				shape[i] = int64(rows)
			default:
				shape[i] = dyn[k%len(dyn)]
				k++
			}
			n *= int(shape[i])
		}
		in[io.Name] = Tensor{Shape: shape, Data: randomData(io.ElementType, n, rng)}
	}
	return in
}

func randomData(t ElementType, n int, rng *rand.Rand) any {
	switch t {
	case Float32:
		return fill(n, func() float32 { return float32(rng.NormFloat64()) })
	case Float64:
		return fill(n, rng.NormFloat64)
	case Float16:
		return fill(n, func() F16 { return F16From(float32(rng.IntN(200)-100) / 8) })
	case BFloat16:
		return fill(n, func() BF16 { return BF16From(float32(rng.NormFloat64())) })
	case Int8:
		return fill(n, func() int8 { return int8(rng.Uint32()) })
	case Uint8:
		return fill(n, func() uint8 { return uint8(rng.Uint32()) })
	case Int16:
		return fill(n, func() int16 { return int16(rng.Uint32()) })
	case Uint16:
		return fill(n, func() uint16 { return uint16(rng.Uint32()) })
	case Int32:
		return fill(n, func() int32 { return int32(rng.Uint32()) })
	case Uint32:
		return fill(n, rng.Uint32)
	case Int64:
		return fill(n, func() int64 { return int64(rng.Uint64()) })
	case Uint64:
		return fill(n, rng.Uint64)
	case Bool:
		return fill(n, func() bool { return rng.IntN(2) == 0 })
	case String:
		return fill(n, func() string { return fmt.Sprintf("s%d", rng.IntN(1000)) })
	}
	panic("unsupported element type " + t.String())
}

func fill[T any](n int, f func() T) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = f()
	}
	return s
}

// TestBatchedEqualsAlone runs concurrent requests through a batcher on every
// test model and checks each answer equals running that request alone.
func TestBatchedEqualsAlone(t *testing.T) {
	cases := []struct {
		model   string
		path    func(t *testing.T) string
		dyn     [][]int64 // non-batch dynamic axis sizes; several => groups that must not merge
		batched bool
	}{
		{model: "mlp", batched: true},
		{model: "bench_mlp", batched: true},
		{model: "multi_io", batched: true},
		{model: "types", batched: true},
		{model: "image", dyn: [][]int64{{4, 5}, {2, 3}}, batched: true},
		{model: "sequence", batched: false}, // a sequence of whole-batch tensors cannot be split per row
		{model: "sklearn_randomforest", path: func(t *testing.T) string { return thirdPartyModel(t, "sklearn_randomforest.onnx") }, batched: true},
		{model: "state", batched: false},
		{model: "fixed_batch", batched: false},
		{model: "conv_dyn", dyn: [][]int64{{4, 5}, {3, 3}}, batched: true}, // fresh axis names: the probe decides
		{model: "center_rows", batched: false},                             // the probe sees rows mixing
	}
	for _, c := range cases {
		t.Run(c.model, func(t *testing.T) {
			path := testModel(c.model)
			if c.path != nil {
				path = c.path(t)
			}
			m, err := onnx.Load(context.Background(), path, onnx.Options{})
			require.NoError(t, err)
			info := m.Info()
			require.Equal(t, c.batched, info.Batchable, info.BatchReason)
			b, err := NewBatcher(m, BatcherOptions{Adaptive: AdaptiveOff, MaxBatchSize: 16, MaxQueueDelay: 20 * time.Millisecond, AlwaysWait: true})
			require.NoError(t, err)
			defer b.Close()

			rng := rand.New(rand.NewPCG(1, uint64(len(c.model))))
			dyn := c.dyn
			if dyn == nil {
				dyn = [][]int64{{1}}
			}
			const n = 24
			reqs := make([]map[string]Tensor, n)
			for i := range reqs {
				reqs[i] = randomInputs(info, 1+rng.IntN(3), dyn[i%len(dyn)], rng)
			}
			tensorsOnly := !slices.ContainsFunc(info.Outputs, func(o IOInfo) bool { return o.Kind != KindTensor })
			got := make([]map[string]Value, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range reqs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if i%2 == 1 && tensorsOnly {
						// Half the requests reuse output buffers that do not fit.
						into := map[string]Tensor{}
						for _, o := range info.Outputs {
							into[o.Name] = Tensor{Shape: []int64{9}, Data: []float32{0}}
						}
						if errs[i] = b.PredictInto(context.Background(), reqs[i], into); errs[i] == nil {
							got[i] = map[string]Value{}
							for name, t := range into {
								got[i][name] = TensorValue(t)
							}
						}
						return
					}
					got[i], errs[i] = b.Predict(context.Background(), reqs[i])
				}()
			}
			wg.Wait()
			for i := range reqs {
				require.NoError(t, errs[i], "request %d", i)
				want, err := m.Predict(context.Background(), reqs[i])
				require.NoError(t, err)
				requireSameValues(t, want, got[i], "request %d", i)
			}
			st := b.Stats()
			require.Equal(t, uint64(n), st.Requests)
			if c.batched {
				require.Less(t, st.Batches, uint64(n), "requests were merged")
			} else {
				require.Equal(t, uint64(n), st.Batches, "unbatchable model runs each request alone")
			}
		})
	}
}

// waitQueued waits until the batcher holds n queued requests.
func waitQueued(t *testing.T, b *Batcher, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return b.Stats().QueueLength == n }, 5*time.Second, time.Millisecond)
}

func TestBatcherRespectsMaxBatchSize(t *testing.T) {
	f := &servingtest.Doubler{Gate: make(chan struct{})}
	b, err := NewBatcher(f, BatcherOptions{Adaptive: AdaptiveOff, MaxBatchSize: 4, MaxInFlight: 1, MaxQueueDelay: time.Hour, AlwaysWait: true})
	require.NoError(t, err)
	var cs callers
	for i := 0; i < 12; i++ {
		cs.Go(func() error {
			out, err := b.Predict(context.Background(), servingtest.Row(float32(i), 2))
			if err != nil {
				return err
			}
			return expect("answer", []float32{2 * float32(i), 2 * float32(i)}, out["y"].Tensor.Data)
		})
	}
	// 4 rows are taken at once (a full batch does not wait), the rest queue.
	waitQueued(t, b, 8)
	close(f.Gate)
	require.NoError(t, cs.Wait())
	require.NoError(t, b.Close())
	for _, n := range f.Runs() {
		require.LessOrEqual(t, n, 4)
	}
	require.True(t, f.Closed(), "Close closes the model")
}

func TestBatcherDoesNotWaitForRowsThatCannotCome(t *testing.T) {
	f := &servingtest.Doubler{}
	b, err := NewBatcher(f, BatcherOptions{MaxQueueDelay: time.Hour})
	require.NoError(t, err)
	defer b.Close()
	// The only caller is in the queue, so no more rows can come: the batch
	// runs at once rather than after the hour-long delay.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		out, err := b.Predict(ctx, servingtest.Row(3, 1))
		require.NoError(t, err)
		require.Equal(t, []float32{6}, out["y"].Tensor.Data)
	}
	require.Equal(t, []int{1, 1, 1}, f.Runs())

	// AlwaysWait keeps the lone request waiting for company.
	w, err := NewBatcher(&servingtest.Doubler{}, BatcherOptions{Adaptive: AdaptiveOff, MaxQueueDelay: time.Hour, AlwaysWait: true})
	require.NoError(t, err)
	defer w.Close()
	short, cancelShort := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancelShort()
	_, err = w.Predict(short, servingtest.Row(3, 1))
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestBatcherSplitsOutstandingRowsOverSlots(t *testing.T) {
	f := &servingtest.Doubler{Gate: make(chan struct{})}
	b, err := NewBatcher(f, BatcherOptions{Adaptive: AdaptiveOff, MaxBatchSize: 64, MaxInFlight: 2, MaxQueueDelay: time.Hour})
	require.NoError(t, err)
	defer b.Close()
	var cs callers
	send := func(n int) {
		for i := 0; i < n; i++ {
			cs.Go(func() error {
				_, err := b.Predict(context.Background(), servingtest.Row(1, 1))
				return err
			})
		}
	}
	// One request holds the first slot. The requests queued behind it hold
	// their share of the outstanding rows (half, over 2 slots) as soon as
	// they match the running one, so the second slot runs them rather than
	// waiting the hour for a full batch.
	send(1)
	require.Eventually(t, func() bool { return b.Stats().InFlight == 1 }, 5*time.Second, time.Millisecond)
	send(6)
	require.Eventually(t, func() bool { return b.Stats().InFlight == 2 }, 5*time.Second, time.Millisecond)
	close(f.Gate)
	require.NoError(t, cs.Wait())
	require.Equal(t, 7, sum(f.Runs()))
}

func TestBatcherPriorities(t *testing.T) {
	f := &servingtest.Doubler{Gate: make(chan struct{})}
	b, err := NewBatcher(f, BatcherOptions{MaxBatchSize: 1, MaxInFlight: 1})
	require.NoError(t, err)
	defer b.Close()
	var cs callers
	send := func(v float32, prio int) {
		cs.Go(func() error {
			_, err := b.Predict(WithPriority(context.Background(), prio), servingtest.Row(v, 1))
			return err
		})
	}
	send(100, 0) // occupies the only slot, blocked on the gate
	require.Eventually(t, func() bool { return b.Stats().InFlight == 1 && b.Stats().QueueLength == 0 }, 5*time.Second, time.Millisecond)
	send(1, 0)
	waitQueued(t, b, 1)
	send(2, 5)
	waitQueued(t, b, 2)
	send(3, 9)
	waitQueued(t, b, 3)
	send(4, 5)
	waitQueued(t, b, 4)
	close(f.Gate)
	require.NoError(t, cs.Wait())
	require.Equal(t, []float32{100, 3, 2, 4, 1}, f.Firsts(), "higher priority first, then arrival order")
}

func TestBatcherOverloaded(t *testing.T) {
	f := &servingtest.Doubler{Gate: make(chan struct{})}
	b, err := NewBatcher(f, BatcherOptions{MaxBatchSize: 1, MaxInFlight: 1, MaxQueueLength: 2})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ { // one running, two queued
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = b.Predict(context.Background(), servingtest.Row(1, 1)) }()
		if i == 0 {
			require.Eventually(t, func() bool { return b.Stats().InFlight == 1 }, 5*time.Second, time.Millisecond)
		}
	}
	waitQueued(t, b, 2)
	_, err = b.Predict(context.Background(), servingtest.Row(1, 1))
	require.ErrorIs(t, err, ErrOverloaded)
	require.Equal(t, uint64(1), b.Stats().Errors[ErrKindOverloaded])
	close(f.Gate)
	wg.Wait()
	require.NoError(t, b.Close())
}

func TestBatcherDropsExpiredRequestsBeforeRun(t *testing.T) {
	f := &servingtest.Doubler{Gate: make(chan struct{})}
	b, err := NewBatcher(f, BatcherOptions{MaxBatchSize: 8, MaxInFlight: 1, MaxQueueDelay: -1})
	require.NoError(t, err)
	defer b.Close()
	go func() { _, _ = b.Predict(context.Background(), servingtest.Row(100, 1)) }()
	require.Eventually(t, func() bool { return b.Stats().InFlight == 1 }, 5*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { _, err := b.Predict(ctx, servingtest.Row(7, 1)); errc <- err }()
	require.ErrorIs(t, <-errc, context.DeadlineExceeded)
	require.Equal(t, 0, b.Stats().QueueLength, "expired request left the queue")
	close(f.Gate)

	out, err := b.Predict(context.Background(), servingtest.Row(5, 1))
	require.NoError(t, err)
	require.Equal(t, []float32{10}, out["y"].Tensor.Data)
	require.NotContains(t, f.Firsts(), float32(7), "the expired request never ran")
	require.Equal(t, uint64(1), b.Stats().Errors[ErrKindDeadline])
}

func TestBatcherPadsToAllowedSizes(t *testing.T) {
	f := &servingtest.Doubler{}
	b, err := NewBatcher(f, BatcherOptions{Adaptive: AdaptiveOff, AllowedBatchSizes: []int{8, 4, 1}, MaxInFlight: 1, MaxQueueDelay: time.Hour, AlwaysWait: true})
	require.NoError(t, err)
	var cs callers
	for i := 0; i < 3; i++ {
		cs.Go(func() error {
			out, err := b.Predict(context.Background(), servingtest.Row(float32(i+1), 2))
			if err != nil {
				return err
			}
			return errors.Join(expect("shape (padding dropped)", []int64{1, 2}, out["y"].Tensor.Shape),
				expect("answer", []float32{2 * float32(i+1), 2 * float32(i+1)}, out["y"].Tensor.Data))
		})
	}
	waitQueued(t, b, 3)
	require.NoError(t, b.Close()) // closing flushes the partial batch without waiting the delay
	require.NoError(t, cs.Wait())
	require.Equal(t, []int{4}, f.Runs(), "3 rows padded to 4")
	require.Equal(t, uint64(1), b.Stats().Padding)
	require.Equal(t, map[int]uint64{3: 1}, b.Stats().BatchSizes)
}

func TestBatcherMergesOnlyMatchingShapes(t *testing.T) {
	f := &servingtest.Doubler{}
	b, err := NewBatcher(f, BatcherOptions{Adaptive: AdaptiveOff, MaxBatchSize: 64, MaxQueueDelay: 50 * time.Millisecond, MaxInFlight: 1, AlwaysWait: true})
	require.NoError(t, err)
	defer b.Close()
	var cs callers
	for i := 0; i < 6; i++ {
		cs.Go(func() error {
			k := 2 + i%2 // widths 2 and 3 must not share a run
			out, err := b.Predict(context.Background(), servingtest.Row(float32(i), k))
			if err != nil {
				return err
			}
			return expect("shape", []int64{1, int64(k)}, out["y"].Tensor.Shape)
		})
	}
	require.NoError(t, cs.Wait())
	require.Len(t, f.Runs(), 2)
	require.ElementsMatch(t, []int{3, 3}, f.Runs())
}

func TestBatcherLargeRequestRunsAlone(t *testing.T) {
	f := &servingtest.Doubler{}
	b, err := NewBatcher(f, BatcherOptions{MaxBatchSize: 4})
	require.NoError(t, err)
	defer b.Close()
	in := map[string]Tensor{"x": NewTensor([]int64{10, 1}, seq(10, 1))}
	out, err := b.Predict(context.Background(), in)
	require.NoError(t, err)
	require.Equal(t, []int64{10, 1}, out["y"].Tensor.Shape)
	require.Equal(t, []int{10}, f.Runs())
}

func TestBatcherRunErrorReachesEveryRequest(t *testing.T) {
	boom := errors.New("boom")
	f := &servingtest.Doubler{Fail: boom}
	b, err := NewBatcher(f, BatcherOptions{MaxQueueDelay: 10 * time.Millisecond})
	require.NoError(t, err)
	defer b.Close()
	var cs callers
	for i := 0; i < 4; i++ {
		cs.Go(func() error {
			_, err := b.Predict(context.Background(), servingtest.Row(1, 1))
			if !errors.Is(err, boom) {
				return fmt.Errorf("got %v, want the run's error", err)
			}
			return nil
		})
	}
	require.NoError(t, cs.Wait())
	require.Equal(t, uint64(4), b.Stats().Errors[ErrKindRun])
}

func TestBatcherBadInput(t *testing.T) {
	m := load(t, "multi_io", onnx.Options{})
	b, err := NewBatcher(m, BatcherOptions{KeepModelOpen: true})
	require.NoError(t, err)
	defer b.Close()
	_, err = b.Predict(context.Background(), map[string]Tensor{
		"a":   f32([]int64{2, 4}, seq(8, 1)...),
		"b":   f32([]int64{1, 4}, seq(4, 1)...),
		"ids": NewTensor([]int64{2, 3}, []int64{1, 2, 3, 4, 5, 6}),
	})
	require.ErrorIs(t, err, ErrShape)
	require.ErrorContains(t, err, `input "b": got 1 rows, want 2 rows like input "a"`)
	_, err = b.Predict(context.Background(), map[string]Tensor{"a": f32([]int64{0, 4})})
	require.ErrorIs(t, err, ErrInput)
	require.Equal(t, uint64(2), b.Stats().Errors[ErrKindInput])
}

func TestBatcherOptionsValidation(t *testing.T) {
	f := &servingtest.Doubler{}
	for _, c := range []struct {
		opts BatcherOptions
		msg  string
	}{
		{BatcherOptions{AllowedBatchSizes: []int{0, 4}}, "allowed batch sizes must be positive"},
		{BatcherOptions{AllowedBatchSizes: []int{4}, MaxBatchSize: 8}, "larger than the largest allowed"},
		{BatcherOptions{MaxQueueLength: -1}, "must be >= 0"},
		{BatcherOptions{Adaptive: Adaptive(7)}, "Adaptive is Adaptive(7), want AdaptiveAuto, AdaptiveOff or AdaptiveOn"},
		{BatcherOptions{Adaptive: -1}, "Adaptive is Adaptive(-1)"},
	} {
		_, err := NewBatcher(f, c.opts)
		require.ErrorIs(t, err, ErrConfig, c.msg)
		require.ErrorContains(t, err, c.msg)
	}
	_, err := NewBatcher(nil, BatcherOptions{})
	require.ErrorIs(t, err, ErrConfig)
	require.ErrorContains(t, err, "needs a model")
}

func TestBatcherCloseDrainsQueue(t *testing.T) {
	f := &servingtest.Doubler{Gate: make(chan struct{})}
	b, err := NewBatcher(f, BatcherOptions{Adaptive: AdaptiveOff, MaxBatchSize: 2, MaxInFlight: 1, MaxQueueDelay: time.Hour, AlwaysWait: true})
	require.NoError(t, err)
	var cs callers
	for i := 0; i < 5; i++ {
		cs.Go(func() error {
			out, err := b.Predict(context.Background(), servingtest.Row(float32(i), 1))
			if err != nil {
				return fmt.Errorf("queued requests are served by Close, not dropped: %w", err)
			}
			return expect("answer", []float32{2 * float32(i)}, out["y"].Tensor.Data)
		})
	}
	waitQueued(t, b, 3)
	closed := make(chan error)
	go func() { closed <- b.Close() }()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		_, err := b.Predict(ctx, servingtest.Row(1, 1))
		return errors.Is(err, ErrClosed)
	}, 5*time.Second, time.Millisecond)
	close(f.Gate)
	require.NoError(t, <-closed)
	require.NoError(t, cs.Wait())
	require.NoError(t, b.Close(), "Close is idempotent")
	require.Equal(t, 5, sum(f.Runs()))
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

// requireSameValues checks two outputs are equal: exactly for integers,
// strings and booleans, and to a few float32 ulps for floats, since a kernel
// may sum in another order when the batch is larger.
func requireSameValues(t *testing.T, want, got map[string]Value, msg ...any) {
	t.Helper()
	require.Equal(t, len(want), len(got), msg...)
	for name, w := range want {
		g, ok := got[name]
		require.True(t, ok, "output %q missing", name)
		requireSameValue(t, w, g, append(msg, name)...)
	}
}

func requireSameValue(t *testing.T, w, g Value, msg ...any) {
	t.Helper()
	require.Equal(t, w.Kind, g.Kind, msg...)
	switch w.Kind {
	case KindTensor:
		require.Equal(t, w.Tensor.Shape, g.Tensor.Shape, msg...)
		if wf, ok := w.Tensor.Data.([]float32); ok {
			gf := g.Tensor.Data.([]float32)
			for i := range wf {
				require.InDelta(t, wf[i], gf[i], 1e-6+1e-6*math.Abs(float64(wf[i])), msg...)
			}
			return
		}
		require.Equal(t, w.Tensor.Data, g.Tensor.Data, msg...)
	case KindSequence:
		require.Equal(t, len(w.Sequence), len(g.Sequence), msg...)
		for i := range w.Sequence {
			requireSameValue(t, w.Sequence[i], g.Sequence[i], msg...)
		}
	case KindMap:
		require.Equal(t, w.Keys, g.Keys, msg...)
		requireSameValue(t, TensorValue(w.Values), TensorValue(g.Values), msg...)
	}
}

func TestPredictIntoReusesBuffers(t *testing.T) {
	m, err := onnx.Load(context.Background(), testModel("multi_io"), onnx.Options{})
	require.NoError(t, err)
	b, err := NewBatcher(m, BatcherOptions{})
	require.NoError(t, err)
	defer b.Close()
	rng := rand.New(rand.NewPCG(3, 3))
	info := b.Info()
	out := map[string]Tensor{}
	var first map[string]any
	for i := 0; i < 5; i++ {
		in := randomInputs(info, 2, []int64{1}, rng)
		require.NoError(t, b.PredictInto(context.Background(), in, out))
		want, err := m.Predict(context.Background(), in)
		require.NoError(t, err)
		got := map[string]Value{}
		data := map[string]any{}
		for name, t := range out {
			got[name] = TensorValue(t)
			data[name] = t.Data
		}
		requireSameValues(t, want, got, "call %d", i)
		if first == nil {
			first = data
			continue
		}
		for name := range data {
			// Same slice header in the interface: the buffer was written in place.
			require.Same(t, dataPtr(first[name]), dataPtr(data[name]), "output %q reused", name)
		}
	}
}

func dataPtr(d any) any {
	switch x := d.(type) {
	case []float32:
		return &x[0]
	case []float64:
		return &x[0]
	case []int64:
		return &x[0]
	case []int32:
		return &x[0]
	case []bool:
		return &x[0]
	}
	panic(fmt.Sprintf("dataPtr: %T", d))
}

func TestPredictIntoErrors(t *testing.T) {
	m, err := onnx.Load(context.Background(), testModel("sequence"), onnx.Options{})
	require.NoError(t, err)
	b, err := NewBatcher(m, BatcherOptions{})
	require.NoError(t, err)
	defer b.Close()
	in := randomInputs(b.Info(), 1, []int64{1}, rand.New(rand.NewPCG(1, 1)))
	err = b.PredictInto(context.Background(), in, map[string]Tensor{})
	require.ErrorContains(t, err, "use Predict")

	f, err := NewBatcher(&servingtest.Doubler{}, BatcherOptions{})
	require.NoError(t, err)
	defer f.Close()
	require.ErrorContains(t, f.PredictInto(context.Background(), servingtest.Row(1, 1), nil), "non-nil out map")
	out := map[string]Tensor{}
	require.ErrorIs(t, f.PredictInto(context.Background(), map[string]Tensor{"nope": servingtest.Row(1, 1)["x"]}, out), ErrInput)
	require.Empty(t, out, "a rejected request leaves out untouched")
	require.NoError(t, f.PredictInto(context.Background(), servingtest.Row(4, 3), out))
	require.Equal(t, Tensor{Shape: []int64{1, 3}, Data: []float32{8, 8, 8}}, out["y"])
}

func TestPredictIntoConcurrentReuse(t *testing.T) {
	m, err := onnx.Load(context.Background(), testModel("mlp"), onnx.Options{})
	require.NoError(t, err)
	b, err := NewBatcher(m, BatcherOptions{Adaptive: AdaptiveOff, KeepModelOpen: true, MaxQueueDelay: 5 * time.Millisecond, AlwaysWait: true})
	require.NoError(t, err)
	defer m.Close()
	info := b.Info()
	var cs callers
	for g := 0; g < 8; g++ {
		cs.Go(func() error {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			out := map[string]Tensor{}
			for i := 0; i < 20; i++ {
				in := randomInputs(info, 1, []int64{1}, rng)
				if err := b.PredictInto(context.Background(), in, out); err != nil {
					return err
				}
				want, err := m.Predict(context.Background(), in)
				if err != nil {
					return err
				}
				if err := expect("answer", want["y"].Tensor, out["y"]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	require.NoError(t, cs.Wait())
	require.NoError(t, b.Close())
	st := b.Stats()
	require.Less(t, st.Batches, st.Requests, "requests were merged")
}

// TestBatcherKeepsBatchesLargeUnderLoad guards the readiness rules against
// collapsing into tiny batches: with 64 callers each waiting on its answer,
// batches should hold a large share of them. It looks at the middle half of
// the run, away from the start and the tail, where fewer callers remain.
func TestBatcherKeepsBatchesLargeUnderLoad(t *testing.T) {
	m, err := onnx.Load(context.Background(), testModel(benchModel), onnx.Options{})
	require.NoError(t, err)
	b, err := NewBatcher(m, BatcherOptions{Adaptive: AdaptiveOff})
	require.NoError(t, err)
	defer b.Close()
	in := map[string]Tensor{"x": NewTensor([]int64{1, 64}, randomFloats(64))}
	const callers, each = 64, 200
	var done, failed atomic.Int64
	var mid [2]Stats
	var once [2]sync.Once
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Nothing but Predict in the loop: callers that spend their time
			// elsewhere (the test framework's locks, say) are rarely waiting,
			// and then small batches are the right answer.
			for i := 0; i < each; i++ {
				if _, err := b.Predict(context.Background(), in); err != nil {
					failed.Add(1)
				}
				switch done.Add(1) {
				case callers * each / 4:
					once[0].Do(func() { mid[0] = b.Stats() })
				case callers * each * 3 / 4:
					once[1].Do(func() { mid[1] = b.Stats() })
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, failed.Load())
	rows, batches := mid[1].Rows-mid[0].Rows, mid[1].Batches-mid[0].Batches
	mean := float64(rows) / float64(batches)
	t.Logf("%d rows in %d batches, %.1f rows per batch; by size at the end: %v", rows, batches, mean, b.Stats().BatchSizes)
	require.Greater(t, mean, 8.0, "batches stay large while every caller waits")
}

func TestCancelledRequestInARunningBatchWaitsForIt(t *testing.T) {
	f := &servingtest.Doubler{Gate: make(chan struct{}), Entered: make(chan struct{}, 1)}
	b, err := NewBatcher(f, BatcherOptions{MaxInFlight: 1})
	require.NoError(t, err)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	in := servingtest.Row(1, 2)
	out := map[string]Tensor{}
	errc := make(chan error, 1)
	go func() { errc <- b.PredictInto(ctx, in, out) }()
	<-f.Entered // the run has started
	cancel()
	select {
	case err := <-errc:
		t.Fatalf("returned (%v) while its batch still held its inputs and outputs", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(f.Gate)
	require.ErrorIs(t, <-errc, context.Canceled)
	// The caller owns its buffers again; the race detector would report a
	// batch still writing to them.
	in["x"].Data.([]float32)[0] = 7
	out["y"] = Tensor{}
	require.Equal(t, uint64(1), b.Stats().Errors[ErrKindCanceled])

	res, err := b.Predict(context.Background(), servingtest.Row(2, 1))
	require.NoError(t, err, "the batcher keeps serving")
	require.Equal(t, []float32{4}, res["y"].Tensor.Data)
}

// TestBatcherRequestLimits checks MaxRequestRows (default and set), that a
// 0-row request is answered like a direct call, and that rows are counted
// for a model that cannot batch.
func TestBatcherRequestLimits(t *testing.T) {
	f := &servingtest.Doubler{}
	b, err := NewBatcher(f, BatcherOptions{MaxRequestRows: 4})
	require.NoError(t, err)
	defer b.Close()
	big := map[string]Tensor{"x": NewTensor([]int64{5, 1}, make([]float32, 5))}
	_, err = b.Predict(context.Background(), big)
	require.ErrorIs(t, err, ErrTooLarge)
	var ie *InputError
	require.ErrorAs(t, err, &ie)
	require.Equal(t, "5 rows", ie.Got)
	require.Contains(t, ie.Want, "at most 4 rows")
	require.Empty(t, f.Runs(), "a refused request never runs")
	require.Equal(t, uint64(1), b.Stats().Errors[ErrKindInput])

	out, err := b.Predict(context.Background(), map[string]Tensor{"x": NewTensor([]int64{0, 3}, []float32{})})
	require.NoError(t, err)
	require.Equal(t, []int64{0, 3}, out["y"].Tensor.Shape)

	d, err := NewBatcher(&servingtest.Doubler{}, BatcherOptions{})
	require.NoError(t, err)
	defer d.Close()
	huge := map[string]Tensor{"x": NewTensor([]int64{1<<16 + 1, 1}, make([]float32, 1<<16+1))}
	_, err = d.Predict(context.Background(), huge)
	require.ErrorIs(t, err, ErrTooLarge, "the default limit is 65536 rows")

	u := &servingtest.Doubler{Unbatchable: true}
	ub, err := NewBatcher(u, BatcherOptions{})
	require.NoError(t, err)
	defer ub.Close()
	for _, n := range []int64{1, 3} {
		_, err := ub.Predict(context.Background(), map[string]Tensor{"x": NewTensor([]int64{n, 1}, make([]float32, n))})
		require.NoError(t, err)
	}
	st := ub.Stats()
	require.Equal(t, uint64(4), st.Rows, "rows of an unbatchable model are counted")
	require.Equal(t, map[int]uint64{1: 1, 3: 1}, st.BatchSizes)
}
