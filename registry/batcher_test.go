package registry_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/quiverml/quiver/serving/servingtest"
	"github.com/stretchr/testify/require"
)

// outcome is what one request through the batcher saw.
type outcome struct {
	width  int // input width sent: 16 for mlp versions, 64 for bench_mlp
	x      []float32
	y      []float32
	shape  []int64
	err    error
	served []registry.Served // every hook call for this request
}

// TestBatcherOverMovingAlias runs 16 goroutines through one Batcher in
// front of a registry Handle while the alias moves 24 times between
// versions of two signatures (x [-1 16] -> y [-1 4] and x [-1 64] ->
// y [-1 1]). Each request is sent with either width. Every request that
// matches the version it was validated against must succeed, be answered by
// a version of its width, equal that model's own answer, and be reported to
// the served hook exactly once (merged batches included); every other
// request must fail with ErrShape naming the width that version wants.
func TestBatcherOverMovingAlias(t *testing.T) {
	ctx := context.Background()
	store, err := registry.Open(t.TempDir(), registry.Options{})
	require.NoError(t, err)
	widthOf := map[int64]int{}
	for n, name := range []string{"mlp", "mlp", "bench_mlp"} {
		v, err := store.Publish(ctx, "ranker", []registry.File{{Name: "model.onnx", Path: servingtest.ModelPath(name)}}, registry.Meta{})
		require.NoError(t, err)
		require.Equal(t, int64(n+1), v.Number)
		widthOf[v.Number] = map[string]int{"mlp": 16, "bench_mlp": 64}[name]
	}
	srv, err := registry.NewServer(store, registry.FileLoader("onnx", onnx.Opener(onnx.Options{})),
		registry.ServerOptions{PollInterval: time.Hour, Policy: registry.Policy{Latest: -1}})
	require.NoError(t, err)
	defer srv.Close()
	h, err := srv.Model("ranker", "production")
	require.NoError(t, err)

	// The batcher is built before the alias exists: requests fail with a
	// retryable error instead of being rejected for good.
	b, err := serving.NewBatcher(h, serving.BatcherOptions{MaxBatchSize: 16, MaxQueueDelay: 2 * time.Millisecond})
	require.NoError(t, err)
	defer b.Close()
	_, err = b.Predict(ctx, request(16, rand.New(rand.NewPCG(1, 1))).in)
	require.ErrorIs(t, err, serving.ErrNotReady)
	require.ErrorIs(t, err, registry.ErrNotServing)

	require.NoError(t, store.SetAlias(ctx, "ranker", "production", 1))
	require.NoError(t, srv.Sync(ctx))

	// Reference answers: each model loaded on its own.
	refs := map[int]*onnx.Model{}
	for width, name := range map[int]string{16: "mlp", 64: "bench_mlp"} {
		m, err := onnx.Load(ctx, servingtest.ModelPath(name), onnx.Options{})
		require.NoError(t, err)
		defer m.Close()
		refs[width] = m
	}

	var (
		stop     atomic.Bool
		finished atomic.Int64
		mu       sync.Mutex
		outcomes []*outcome
		wg       sync.WaitGroup
	)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for !stop.Load() {
				width := 16
				if rng.IntN(2) == 0 {
					width = 64
				}
				r := request(width, rng)
				o := &outcome{width: width, x: r.x}
				var hookMu sync.Mutex
				rctx := registry.WithServedHook(ctx, func(s registry.Served) {
					hookMu.Lock()
					o.served = append(o.served, s)
					hookMu.Unlock()
				})
				out, err := b.Predict(rctx, r.in)
				o.err = err
				if err == nil {
					o.y, _ = out["y"].Tensor.Float32s()
					o.shape = out["y"].Tensor.Shape
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				finished.Add(1)
			}
		}()
	}

	// Move the alias 1 -> 2 -> 3 -> 1 -> ... 24 times, letting requests
	// run between moves. Right after each move, a request that matches the
	// new version is served by it.
	rng := rand.New(rand.NewPCG(9, 9))
	for move := range 24 {
		next := int64(move%3 + 2)
		if next == 4 {
			next = 1
		}
		// The versions take different inputs on purpose: the move is forced.
		require.NoError(t, store.SetAlias(ctx, "ranker", "production", next, registry.MoveOptions{Force: true}))
		require.NoError(t, srv.Sync(ctx))
		cur, ok := h.Version()
		require.True(t, ok)
		require.Equal(t, next, cur.Number)

		var seen []registry.Served
		r := request(widthOf[next], rng)
		out, err := b.Predict(registry.WithServedHook(ctx, func(s registry.Served) { seen = append(seen, s) }), r.in)
		require.NoError(t, err, "first request after the move to version %d", next)
		require.Equal(t, []registry.Served{{Model: "ranker", Alias: "production", Version: next}}, seen)
		require.Equal(t, []int64{1, map[int]int64{16: 4, 64: 1}[widthOf[next]]}, out["y"].Tensor.Shape)

		target := finished.Load() + 40
		require.Eventually(t, func() bool { return finished.Load() >= target }, 30*time.Second, 100*time.Microsecond)
	}
	stop.Store(true)
	wg.Wait()

	ok, refused := map[int]int{}, 0
	for i, o := range outcomes {
		if o.err != nil {
			require.ErrorIs(t, o.err, serving.ErrShape, "request %d (width %d)", i, o.width)
			var ie *serving.InputError
			require.True(t, errors.As(o.err, &ie))
			other := map[int]int{16: 64, 64: 16}[o.width]
			require.Contains(t, ie.Want, fmt.Sprintf("[-1 %d]", other), "request %d failed against a version of its own width", i)
			require.Empty(t, o.served, "request %d did not run", i)
			refused++
			continue
		}
		require.Len(t, o.served, 1, "request %d: the hook fires once", i)
		v := o.served[0]
		require.Equal(t, "production", v.Alias)
		require.Equal(t, o.width, widthOf[v.Version], "request %d of width %d answered by version %d", i, o.width, v.Version)
		want, err := refs[o.width].Predict(ctx, map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, int64(o.width)}, o.x)})
		require.NoError(t, err)
		require.Equal(t, want["y"].Tensor.Shape, o.shape)
		require.InDeltaSlice(t, want["y"].Tensor.Data, o.y, 1e-5, "request %d", i)
		ok[o.width]++
	}
	require.Positive(t, ok[16])
	require.Positive(t, ok[64])
	require.Positive(t, refused, "some requests were sent with the other version's width")
	st := b.Stats()
	require.Less(t, st.Batches, st.Requests, "requests were merged into batches")
	t.Logf("%d requests: %d+%d served, %d refused, %d batches", len(outcomes), ok[16], ok[64], refused, st.Batches)
}

type req struct {
	x  []float32
	in map[string]serving.Tensor
}

func request(width int, rng *rand.Rand) req {
	x := make([]float32, width)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return req{x: x, in: map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, int64(width)}, x)}}
}
