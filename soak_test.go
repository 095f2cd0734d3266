package quiver_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiverml/quiver/features"
	"github.com/quiverml/quiver/features/redisstore"
	"github.com/quiverml/quiver/internal/redistest"
	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/quiverml/quiver/serving/servingtest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestFaultSoak runs the parts of a host application together under load
// while faults strike: feature writers put rows through a Redis tier while
// redis-server is killed and restarted; callers predict through a Batcher
// in front of a registry alias, a third of them cancelling or timing out at
// once, while the alias moves, and moves to a version whose file was
// corrupted on disk. Afterwards: no request failed for a reason other than
// its own context, the corrupted version never served, every feature write
// that was acknowledged is readable from another replica (Redis keeps what
// it acknowledged), and goroutines and ONNX Runtime sessions are back to
// where they started.
func TestFaultSoak(t *testing.T) {
	ctx := context.Background()
	rs := redistest.Start(t, redistest.Options{Durable: true})
	baseSessions := onnx.LiveSessions()
	baseGoroutines := runtime.NumGoroutine()

	// Features: replica A writes, replica B only reads at the end.
	view := features.View{Name: "user", Entity: "user_id", Features: []features.Feature{{Name: "clicks", Kind: features.KindInt64}}}
	rdbA := redis.NewClient(&redis.Options{Addr: rs.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	localA := features.New(features.Options{Name: "a"})
	tierA := redisstore.New(localA, rdbA, redisstore.Options{})
	require.NoError(t, tierA.Register(view))

	// Registry: versions 1 and 2 serve, version 3 is corrupted on disk.
	store, err := registry.Open(t.TempDir(), registry.Options{})
	require.NoError(t, err)
	for range 3 {
		_, err := store.Publish(ctx, "ranker", []registry.File{{Name: "model.onnx", Path: servingtest.ModelPath("mlp")}}, registry.Meta{})
		require.NoError(t, err)
	}
	dir3, err := store.Dir("ranker", 3)
	require.NoError(t, err)
	corrupt(t, filepath.Join(dir3, "model.onnx"))
	require.NoError(t, store.SetAlias(ctx, "ranker", "production", 1))
	srv, err := registry.NewServer(store, registry.FileLoader("onnx", onnx.Opener(onnx.Options{})),
		registry.ServerOptions{PollInterval: time.Hour, Policy: registry.Policy{Latest: -1}})
	require.NoError(t, err)
	require.NoError(t, srv.Sync(ctx))
	h, err := srv.Model("ranker", "production")
	require.NoError(t, err)
	b, err := serving.NewBatcher(h, serving.BatcherOptions{MaxQueueDelay: time.Millisecond})
	require.NoError(t, err)

	var (
		stop               atomic.Bool
		wg                 sync.WaitGroup
		served, cancelled  atomic.Int64
		failures           = make(chan error, 64)
		ackMu              sync.Mutex
		acked              = map[string]int64{} // entity -> last acknowledged clicks
		putOK, putFailed   atomic.Int64
		servedBy3          atomic.Int64
		writersSawFailures = make(chan struct{})
		failOnce           sync.Once
	)
	report := func(err error) {
		select {
		case failures <- err:
		default:
		}
	}
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			x := make([]float32, 16)
			for !stop.Load() {
				rctx, cancel := context.WithCancel(ctx)
				switch rng.IntN(3) {
				case 0:
					rctx, cancel = context.WithTimeout(ctx, time.Duration(rng.IntN(300))*time.Microsecond)
				case 1:
					cancel() // gone before it is served
				}
				rctx = registry.WithServedHook(rctx, func(s registry.Served) {
					if s.Version == 3 {
						servedBy3.Add(1)
					}
				})
				_, err := b.Predict(rctx, map[string]serving.Tensor{"x": serving.NewTensor([]int64{1, 16}, x)})
				cancel()
				switch {
				case err == nil:
					served.Add(1)
				case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
					cancelled.Add(1)
				default:
					report(fmt.Errorf("predict: %w", err))
				}
			}
		}()
	}
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			for n := int64(1); !stop.Load(); n++ {
				entity := fmt.Sprintf("u%d-%d", w, n%50)
				row := features.Row{Entity: entity, EventTime: start.Add(time.Duration(n) * time.Millisecond),
					Values: map[string]features.Value{"clicks": features.Int64(n)}}
				if err := tierA.Put(ctx, "user", row); err != nil {
					if !errors.Is(err, redisstore.ErrRedis) {
						report(fmt.Errorf("put: %w", err))
					}
					putFailed.Add(1)
					failOnce.Do(func() { close(writersSawFailures) })
					continue
				}
				putOK.Add(1)
				ackMu.Lock()
				acked[entity] = n
				ackMu.Unlock()
			}
		}()
	}

	progress := func(what string, counter *atomic.Int64, more int64) {
		t.Helper()
		target := counter.Load() + more
		require.Eventually(t, func() bool { return counter.Load() >= target }, 30*time.Second, time.Millisecond, what)
	}
	progress("requests served on version 1", &served, 200)
	progress("feature writes acknowledged", &putOK, 200)

	// The alias moves; then it is moved to the corrupted version, which
	// fails its checksum and never serves.
	require.NoError(t, store.SetAlias(ctx, "ranker", "production", 2))
	require.NoError(t, srv.Sync(ctx))
	progress("requests served on version 2", &served, 200)
	require.NoError(t, store.SetAlias(ctx, "ranker", "production", 3))
	_ = srv.Sync(ctx) // reports version 3's load failure
	v, ok := h.Version()
	require.True(t, ok)
	require.Equal(t, int64(2), v.Number, "a corrupted version never replaces a serving one")
	progress("requests served after the failed swap", &served, 200)

	// Redis dies; writes fail until it is back.
	rs.Kill()
	select {
	case <-writersSawFailures:
	case <-time.After(30 * time.Second):
		t.Fatal("no feature write failed while Redis was down")
	}
	rs.Restart()
	progress("feature writes acknowledged after the restart", &putOK, 200)

	require.NoError(t, store.SetAlias(ctx, "ranker", "production", 1, registry.MoveOptions{}))
	require.NoError(t, srv.Sync(ctx))
	progress("requests served on version 1 again", &served, 200)
	stop.Store(true)
	wg.Wait()
	close(failures)
	for err := range failures {
		require.NoError(t, err)
	}
	require.Zero(t, servedBy3.Load(), "version 3 never served")
	t.Logf("served %d, cancelled %d, writes acknowledged %d, failed %d", served.Load(), cancelled.Load(), putOK.Load(), putFailed.Load())

	// Every acknowledged write is readable from a replica that starts empty.
	rdbB := redis.NewClient(&redis.Options{Addr: rs.Addr})
	localB := features.New(features.Options{Name: "b"})
	tierB := redisstore.New(localB, rdbB, redisstore.Options{})
	require.NoError(t, tierB.Register(view))
	require.NotEmpty(t, acked)
	for entity, n := range acked {
		res, err := tierB.GetRow(ctx, "user", entity)
		require.NoError(t, err, entity)
		require.GreaterOrEqual(t, res.Values["clicks"].Int64(), n, "entity %s: acknowledged %d", entity, n)
	}

	require.NoError(t, b.Close())
	require.NoError(t, srv.Close())
	require.NoError(t, localA.Close())
	require.NoError(t, localB.Close())
	require.NoError(t, rdbA.Close())
	require.NoError(t, rdbB.Close())
	require.Equal(t, baseSessions, onnx.LiveSessions(), "every ONNX Runtime session closed")
	// Polled here rather than with require.Eventually, whose own goroutines
	// would be counted.
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > baseGoroutines; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatalf("%d goroutines left running, %d before the test", runtime.NumGoroutine(), baseGoroutines)
		}
	}
}

// corrupt flips bytes in the middle of a file, keeping its size.
func corrupt(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	for i := len(data) / 2; i < len(data)/2+16 && i < len(data); i++ {
		data[i] ^= 0xff
	}
	require.NoError(t, os.WriteFile(path, data, 0o644))
}
