package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving/onnx"
)

// TestLoad drives the whole service over loopback HTTP: 64 clients, at
// least 20,000 recommendations each followed by its feedback, while the
// production alias moves 10 times and the bad canary runs until the click
// guardrail stops it. Nothing may fail outside the canary, every move must
// show in the answers, and after shutdown no goroutine and no ONNX Runtime
// session may be left.
func TestLoad(t *testing.T) {
	const (
		requests = 20000
		clients  = 64
		moves    = 10
	)
	goroutines, sessions := runtime.NumGoroutine(), onnx.LiveSessions()
	// Generous: on two cores that other jobs keep busy, under the race
	// detector, the run takes minutes; the test fails if it runs out.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	app, err := New(ctx, Config{Users: 2000, Items: 2000, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	conc := &concurrency{n: clients, all: make(chan struct{})}
	hs := &http.Server{Handler: conc.wrap(app.Handler())}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	cpu0 := cpuTime()
	start := time.Now()
	res, err := runLoad(ctx, app, "http://"+ln.Addr().String(), loadOptions{
		Clients: clients, Requests: requests, Moves: moves, Seed: 11,
	})
	took, cpu := time.Since(start), cpuTime()-cpu0
	snap := app.Snapshot()
	// CPU per recommendation (with its feedback, both sides of the HTTP
	// connection and the shadow run) is what other jobs on the machine
	// change least; wall time depends on them.
	t.Logf("%d recommendations and %d feedback posts in %v (%.0f/s; process CPU %v, %v per recommendation), p50 %v, p99 %v; split %v; failed %v",
		res.Recommendations, res.Feedback, took.Round(time.Millisecond), float64(res.Recommendations)/took.Seconds(),
		cpu.Round(time.Millisecond), (cpu / time.Duration(max(res.Recommendations, 1))).Round(time.Microsecond),
		res.Latency.Quantile(0.5), res.Latency.Quantile(0.99), res.Variants, res.Failed)
	require.NoError(t, hs.Shutdown(context.Background()))
	require.ErrorIs(t, <-served, http.ErrServerClosed)
	require.NoError(t, app.Close())
	require.NoError(t, err)

	// The clients loaded the server concurrently: all of them had a
	// recommendation in flight at once.
	require.Equal(t, int64(clients), conc.peak.Load(), "the most /recommend requests in flight at once")

	// Every request answered, outside the stopped canary at least.
	var failed uint64
	for _, n := range res.Failed {
		failed += n
	}
	require.GreaterOrEqual(t, res.Recommendations+failed, uint64(requests))
	require.Zero(t, res.FailedExcept(aliasCanary), "failures: %v, e.g. %v", res.Failed, res.Errors)
	require.Zero(t, res.FeedbackFailed, "e.g. %v", res.Errors)
	require.Equal(t, res.Recommendations, res.Feedback)

	// The click guardrail stopped the canary, on numbers that show it was
	// worse, and its users went to production.
	require.True(t, app.exp.Stopped(aliasCanary), "decisions: %+v", snap.Decisions)
	require.NotEmpty(t, snap.Decisions)
	d := snap.Decisions[0]
	require.Equal(t, aliasCanary, d.Variant)
	if d.Guardrail == "clicks" {
		require.Greater(t, d.VariantRate, d.ControlRate+0.05, "%+v", d)
	}
	require.Positive(t, res.Variants[aliasCanary])
	require.Greater(t, res.Variants[aliasProduction], 5*res.Variants[aliasCanary])

	// Every move was seen in the answers, and both versions served.
	require.Len(t, res.Moves, moves)
	for i, m := range res.Moves {
		require.True(t, m.Observed, "move %d v%d -> v%d: %s", i+1, m.From, m.To, m.Err)
		require.NotEqual(t, m.From, m.To)
		if i > 0 {
			require.Equal(t, res.Moves[i-1].To, m.From, "move %d starts where the last one ended", i+1)
		}
	}
	require.Positive(t, res.Versions[aliasProduction][versionV1])
	require.Positive(t, res.Versions[aliasProduction][versionV2])
	require.Equal(t, map[int64]uint64{versionBad: res.Variants[aliasCanary]}, res.Versions[aliasCanary])
	var swaps int
	for _, s := range snap.Swaps {
		if s.Alias == aliasProduction && s.From != 0 {
			swaps++
		}
	}
	require.Equal(t, moves, swaps, "the registry Server applied every move: %+v", snap.Swaps)

	// Nothing left behind.
	require.Equal(t, sessions, onnx.LiveSessions(), "ONNX Runtime sessions")
	// Goroutines of closed connections exit on their own schedule: give
	// them a bounded moment.
	settle := time.NewTicker(5 * time.Millisecond)
	defer settle.Stop()
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > goroutines && time.Now().Before(deadline); {
		<-settle.C
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		require.LessOrEqual(t, n, goroutines, "goroutines left:\n%s", buf)
	}
}

// cpuTime is the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// concurrency holds the first n /recommend requests at the server until n
// are in flight at once, which proves that n clients load it concurrently,
// and records the most requests in flight at any moment. A client that
// never comes releases the others after a while, and peak tells.
type concurrency struct {
	n                      int64
	inFlight, peak, arrive atomic.Int64
	all                    chan struct{}
}

func (c *concurrency) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/recommend" {
			next.ServeHTTP(w, r)
			return
		}
		cur := c.inFlight.Add(1)
		defer c.inFlight.Add(-1)
		for p := c.peak.Load(); cur > p && !c.peak.CompareAndSwap(p, cur); p = c.peak.Load() {
		}
		if a := c.arrive.Add(1); a <= c.n {
			if a == c.n {
				close(c.all)
			}
			// Well inside the clients' own 30 s timeout.
			timer := time.NewTimer(15 * time.Second)
			defer timer.Stop()
			select {
			case <-c.all:
			case <-r.Context().Done():
			case <-timer.C:
			}
		}
		next.ServeHTTP(w, r)
	})
}
