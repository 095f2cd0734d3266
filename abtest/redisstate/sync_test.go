package redisstate

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/internal/metrics/metricstest"
	"github.com/quiverml/quiver/internal/redistest"
)

// waitFor polls cond until it holds or the deadline passes; it is for
// effects of other goroutines' timers (Run's flush loop).
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond) // polling another goroutine's timer-driven work
	}
	return time.Since(start)
}

// A canary whose errors are spread over three replicas, none of which has
// enough requests to judge it alone, is stopped by the guardrail of
// replica 1 from the pooled numbers, and the stop reaches replicas 2 and 3
// within one flush interval (plus round trips).
func TestGuardrailStopFromPooledNumbersReachesEveryReplica(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	const interval = 100 * time.Millisecond
	rs := newReplicas(t, srv.Addr, 3, Options{FlushInterval: interval})
	quiet := slog.New(slog.DiscardHandler)
	guards := make([]*abtest.Guardrail, len(rs))
	for i, r := range rs {
		var err error
		guards[i], err = abtest.NewGuardrail(r.e, r.tr, abtest.GuardrailOptions{Logger: quiet})
		require.NoError(t, err)
		// control: 400 requests, 1% errors; canary: 150 requests, 10% errors.
		for k := range 400 {
			require.NoError(t, r.tr.ObserveRequest("control", time.Millisecond, k < 4))
		}
		for k := range 150 {
			require.NoError(t, r.tr.ObserveRequest("canary", time.Millisecond, k < 15))
		}
	}
	for _, g := range guards {
		require.Empty(t, g.Check(), "150 canary requests on one replica: below MinRequests (200)")
	}

	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	for _, r := range rs {
		g.Go(func() error { return r.s.Run(ctx) })
	}
	waitFor(t, 5*time.Second, "pooled canary requests on replica 1", func() bool {
		v, _ := rs[0].tr.Variant("canary")
		return v.Requests == 450
	})
	ds := guards[0].Check()
	require.Len(t, ds, 1)
	require.Equal(t, "error_rate", ds[0].Reason)
	require.Equal(t, uint64(450), ds[0].VariantRequests)
	require.Equal(t, uint64(1200), ds[0].ControlRequests)

	// Bound: FlushInterval + 2 round trips; the deadline adds slack for a
	// busy machine, the measured time is logged.
	took := waitFor(t, interval+2*time.Second, "the stop on replicas 2 and 3", func() bool {
		return rs[1].e.Stopped("canary") && rs[2].e.Stopped("canary")
	})
	t.Logf("stop applied on every replica %v after the decision (flush interval %v)", took, interval)
	for _, r := range rs[1:] {
		info, _ := r.e.StopInfo("canary")
		require.Equal(t, "error_rate", info.Reason)
		require.Equal(t, "r1", info.Replica)
		require.Equal(t, ds[0].Time.UnixNano(), info.Time.UnixNano())
		require.Equal(t, 0.0, r.e.Weights()[0].Weight, "routed to 0%")
		a, err := r.e.Assign("some-user", nil)
		require.NoError(t, err)
		require.Equal(t, "control", a.Variant)
	}
	cancel()
	err := g.Wait()
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, uint64(1), rs[0].s.Stats().Published)
	require.Equal(t, uint64(1), rs[1].s.Stats().Applied)
}

// Redis going away is logged once per outage, not per flush; Err and
// Stats report it; the end of the outage is logged once too.
func TestOutageLoggedOnceAndReported(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Options{})
	r := newReplica(t, srv.Addr, "r1", Options{})
	require.NoError(t, r.s.Flush(ctx))
	require.NoError(t, r.s.Err())
	for outage := 1; outage <= 2; outage++ {
		srv.Kill()
		for range 4 {
			require.NoError(t, r.tr.ObserveRequest("control", time.Millisecond, false), "the hot path never waits for Redis")
			err := r.s.Flush(ctx)
			require.ErrorIs(t, err, ErrRedis)
		}
		require.ErrorIs(t, r.s.Err(), ErrRedis)
		st := r.s.Stats()
		require.ErrorIs(t, st.Err, ErrRedis)
		require.Equal(t, uint64(4*outage), st.Failures)
		require.Equal(t, outage, r.log.Count(slog.LevelWarn, "redis unavailable"), "once per outage")
		srv.Restart()
		require.NoError(t, r.s.Flush(ctx))
		require.NoError(t, r.s.Err())
		require.Equal(t, outage, r.log.Count(slog.LevelInfo, "available again"))
		require.Less(t, r.s.Stats().Staleness, 10*time.Second)
		v, err := r.tr.Variant("control")
		require.NoError(t, err)
		require.Equal(t, uint64(4*outage), v.Requests)
	}
}

// A Redis that hangs (accepts connections, answers nothing) is an outage
// too: Run's flushes end at Options.Timeout, the outage is logged once as
// a warning and reported by Err, the replica keeps counting locally, and
// sharing resumes, logged, when Redis answers again.
func TestHungRedisIsAnOutage(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rs := newReplicas(t, srv.Addr, 2, Options{FlushInterval: 20 * time.Millisecond, Timeout: 150 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	for _, r := range rs {
		g.Go(func() error { return r.s.Run(ctx) })
	}
	defer func() {
		cancel()
		_ = g.Wait()
	}()
	require.NoError(t, rs[1].tr.ObserveRequest("control", time.Millisecond, false))
	waitFor(t, 10*time.Second, "sharing before the hang", func() bool {
		v, _ := rs[0].tr.Variant("control")
		return v.Requests == 1
	})

	srv.Pause()
	tookWarn := waitFor(t, 10*time.Second, "the outage warning", func() bool {
		return rs[0].log.Count(slog.LevelWarn, "redis unavailable") == 1
	})
	require.Less(t, tookWarn, 3*time.Second, "bounded by Options.Timeout (150ms), not by the client's 5s ReadTimeout")
	require.ErrorIs(t, rs[0].s.Err(), ErrRedis)
	for range 3 {
		require.NoError(t, rs[0].tr.ObserveRequest("control", time.Millisecond, false), "the hot path never waits for Redis")
	}
	require.NoError(t, rs[1].tr.ObserveRequest("control", time.Millisecond, false))
	v, err := rs[0].tr.Variant("control")
	require.NoError(t, err)
	require.Equal(t, uint64(4), v.Requests, "during the outage: the last pooled numbers plus this replica's own")

	srv.Resume()
	tookBack := waitFor(t, 10*time.Second, "sharing after the hang", func() bool {
		a, _ := rs[0].tr.Variant("control")
		b, _ := rs[1].tr.Variant("control")
		return a.Requests == 5 && b.Requests == 5
	})
	waitFor(t, 10*time.Second, "the end of the outage logged", func() bool {
		return rs[0].log.Count(slog.LevelInfo, "available again") == 1
	})
	require.Equal(t, 1, rs[0].log.Count(slog.LevelWarn, "redis unavailable"), "once per outage")
	require.NotZero(t, rs[0].s.Stats().Failures)
	t.Logf("outage logged %v after the hang began (timeout 150ms); sharing resumed %v after Redis did", tookWarn, tookBack)
}

func TestOptionsAndLifecycle(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rdb := newClient(t, srv.Addr)
	_, err := New(nil, Options{})
	require.ErrorIs(t, err, abtest.ErrConfig)
	for _, bad := range []Options{
		{ReplicaID: "a|b"}, {ReplicaID: "line\nbreak"}, {ReplicaID: string(make([]byte, 300))},
		{FlushInterval: -time.Second}, {Timeout: -1},
	} {
		_, err := New(rdb, bad)
		require.ErrorIs(t, err, abtest.ErrConfig, "%+v", bad)
	}
	s, err := New(rdb, Options{})
	require.NoError(t, err)
	require.NotEmpty(t, s.ReplicaID(), "defaults to host name and pid")

	tr, err := abtest.NewTracker("t", []string{"a"})
	require.NoError(t, err)
	require.ErrorIs(t, s.Tracker(nil), abtest.ErrConfig)
	require.NoError(t, s.Tracker(tr))
	require.ErrorIs(t, s.Tracker(tr), abtest.ErrConfig, "attached twice")
	b, err := abtest.NewUCB1([]string{"x", "y"}, abtest.BanditOptions{})
	require.NoError(t, err)
	require.ErrorIs(t, s.Bandit("", b), abtest.ErrConfig)
	require.ErrorIs(t, s.Bandit("b", notPoolable{b}), abtest.ErrConfig)
	require.NoError(t, s.Bandit("t", b), "a bandit may share a tracker's name")
	require.ErrorIs(t, s.Experiment(nil), abtest.ErrConfig)
	e, err := abtest.NewExperiment(abtest.Config{Name: "t", Variants: []abtest.Variant{{Name: "a", Weight: 1}}})
	require.NoError(t, err)
	require.NoError(t, s.Experiment(e))
	require.ErrorIs(t, s.Experiment(e), abtest.ErrConfig)

	// A cancelled context ends a flush with its error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, s.Flush(ctx), context.Canceled)

	// Run: one at a time; its context's end returns ctx's error after a
	// last flush; Close ends it with ErrClosed.
	require.NoError(t, tr.ObserveRequest("a", time.Millisecond, false))
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	waitFor(t, 5*time.Second, "Run started", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.running
	})
	require.ErrorIs(t, s.Run(context.Background()), abtest.ErrConfig, "already running")
	stop()
	require.ErrorIs(t, <-done, context.Canceled)
	n, err := rdb.HGet(context.Background(), tag(DefaultPrefix, "t")+":tracker", "c:requests/a").Int()
	require.NoError(t, err, "the last flush shared the last numbers")
	require.Equal(t, 1, n)

	go func() { done <- s.Run(context.Background()) }()
	waitFor(t, 5*time.Second, "Run started", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.running
	})
	require.NoError(t, s.Close())
	require.ErrorIs(t, <-done, ErrClosed)
	require.NoError(t, s.Close(), "twice")
	require.ErrorIs(t, s.Flush(context.Background()), ErrClosed)
	require.ErrorIs(t, s.Run(context.Background()), ErrClosed)
	require.ErrorIs(t, s.Tracker(tr), ErrClosed)
	require.ErrorIs(t, s.Experiment(e), ErrClosed)
}

type notPoolable struct{ abtest.Bandit }

func TestCollector(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rs := newReplicas(t, srv.Addr, 2, Options{})
	ctx := context.Background()
	flushAll(ctx, rs)
	mfs := metricstest.Gather(t, rs[0].s.Collector(prometheus.Labels{"zone": "a"}), rs[1].s.Collector(prometheus.Labels{"zone": "b"}))
	metricstest.RequireConventions(t, mfs, "quiver_abtest_sync_")
	metricstest.RequireInstances(t, mfs, "replica", "r1", "r2")
	metricstest.RequireDuplicate(t, rs[0].s.Collector(nil), rs[0].s.Collector(nil))
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if labelOf(m.GetLabel(), "replica") == "r1" {
				got[mf.GetName()+labelOf(m.GetLabel(), "direction")] += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	require.Equal(t, 1.0, got["quiver_abtest_sync_flushes_total"])
	require.Equal(t, 1.0, got["quiver_abtest_sync_up"])
	require.Equal(t, 0.0, got["quiver_abtest_sync_failures_total"])
	require.Contains(t, got, "quiver_abtest_sync_decisions_totalpublished")
	require.Equal(t, 1.0, got["quiver_abtest_sync_staleness_seconds"], "one renewal observed")
	require.Equal(t, 1.0, got["quiver_abtest_sync_flush_seconds"])
}

func labelOf(ls []*dto.LabelPair, name string) string {
	for _, l := range ls {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
