//go:build cgo

package s3

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
)

// pollInterval is the Servers' poll interval in these tests.
const pollInterval = 100 * time.Millisecond

func newServer(t *testing.T, s *Store) *registry.Server {
	t.Helper()
	srv, err := registry.NewServer(s, registry.FileLoader("onnx", onnx.Opener(onnx.Options{})), registry.ServerOptions{
		PollInterval: pollInterval, Logger: slog.New(slog.DiscardHandler), EventBuffer: 1024, RetryAfter: pollInterval,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// servedVersion runs one request on h and returns the version that
// answered it.
func servedVersion(t *testing.T, h *registry.Handle) int64 {
	t.Helper()
	x := make([]float32, 2*16)
	for i := range x {
		x[i] = float32(i) / 32
	}
	out, served, err := h.PredictVersion(context.Background(), map[string]serving.Tensor{"x": serving.NewTensor([]int64{2, 16}, x)})
	require.NoError(t, err)
	y, err := out["y"].Tensor.Float32s()
	require.NoError(t, err)
	require.Len(t, y, 8)
	return served.Version
}

// waitSwap waits for the Server to report that alias serves version, and
// returns how long it took; the deadline is generous, the measured time is
// what the documented bound speaks of.
func waitSwap(t *testing.T, srv *registry.Server, alias string, version int64, deadline time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	timeout := time.After(deadline)
	for {
		select {
		case ev := <-srv.Events():
			if ev.Kind == registry.EventSwapped && ev.Alias == alias && ev.Version == version {
				return time.Since(start)
			}
		case <-timeout:
			t.Fatalf("%s did not swap to version %d within %v; stats %+v", alias, version, deadline, srv.Stats())
		}
	}
}

// TestServerFollowsAliasMovedElsewhere: a Server over one Store serves an
// ONNX model from the bucket and follows an alias that another Store (as
// another replica or a CI job would) moves; with the object store down it
// keeps serving, a replica started during the outage serves from its
// cache, and moves made after the store returns are followed again.
func TestServerFollowsAliasMovedElsewhere(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	ci := e.open(t)
	publishMLP(t, ci, "ranker", "one")
	publishMLP(t, ci, "ranker", "two")
	require.NoError(t, ci.SetAlias(ctx, "ranker", "production", 1))

	replica := e.open(t)
	srv := newServer(t, replica)
	require.NoError(t, srv.Start(ctx))
	prod, err := srv.Model("ranker", "production")
	require.NoError(t, err)
	require.Equal(t, int64(1), servedVersion(t, prod))

	require.NoError(t, ci.SetAlias(ctx, "ranker", "production", 2))
	took := waitSwap(t, srv, "production", 2, 30*time.Second)
	t.Logf("alias move seen and swapped in %v (poll interval %v)", took, pollInterval)
	require.Equal(t, int64(2), servedVersion(t, prod))
	// Rolling back swaps to the version kept loaded.
	_, err = ci.Rollback(ctx, "ranker", "production")
	require.NoError(t, err)
	waitSwap(t, srv, "production", 1, 30*time.Second)
	require.Equal(t, int64(1), servedVersion(t, prod))

	// The store goes down: the Server keeps serving.
	e.srv.Kill()
	require.NoError(t, srv.Sync(ctx), "a Scan during the outage answers from memory")
	for range 5 {
		require.Equal(t, int64(1), servedVersion(t, prod))
	}
	// A replica restarted during the outage, on the same cache folder,
	// serves what the cache holds.
	restarted := e.open(t, func(o *Options) { o.CacheDir = replica.CacheDir() })
	srv2 := newServer(t, restarted)
	require.NoError(t, srv2.Start(ctx))
	prod2, err := srv2.Model("ranker", "production")
	require.NoError(t, err)
	require.Equal(t, int64(1), servedVersion(t, prod2))

	e.srv.Restart()
	publishMLP(t, ci, "ranker", "three")
	require.NoError(t, ci.SetAlias(ctx, "ranker", "production", 3))
	waitSwap(t, srv, "production", 3, 30*time.Second)
	waitSwap(t, srv2, "production", 3, 30*time.Second)
	require.Equal(t, int64(3), servedVersion(t, prod))
	require.Equal(t, int64(3), servedVersion(t, prod2))
	latest, err := srv.Model("ranker", registry.Latest)
	require.NoError(t, err)
	require.Equal(t, int64(3), servedVersion(t, latest))
	require.Zero(t, srv.Stats().LoadFailures)
}
