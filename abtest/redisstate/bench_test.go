package redisstate

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/abtest"
	"github.com/quiverml/quiver/internal/redistest"
)

// benchReplica is a replica whose tracker and bandit hold some traffic and
// have been pooled through Redis once.
func benchReplica(b *testing.B, addr string) *replica {
	r := newReplica(b, addr, "bench", Options{Logger: slog.New(slog.DiscardHandler)})
	env := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		v := variants[env.IntN(2)]
		require.NoError(b, r.tr.ObserveRequest(v, time.Duration(env.ExpFloat64()*float64(2*time.Millisecond)), env.Float64() < 0.01))
		require.NoError(b, r.tr.Expose(v))
		require.NoError(b, r.b.Update(arms[env.IntN(3)], float64(env.IntN(2))))
	}
	require.NoError(b, r.s.Flush(context.Background()))
	return r
}

// BenchmarkRecord measures what a request costs the replica that records
// it: one ObserveRequest and one Expose. "local" is a tracker no Sync
// knows; "pooled" one attached to a Sync whose Run loop flushes every
// 100ms meanwhile (the request path is the same code: the flush reads the
// counters, it does not wrap them); "hincrby-per-event" is the design this
// package avoids, a pipelined round trip to Redis per request.
func BenchmarkRecord(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	ctx := context.Background()
	local, err := abtest.NewTracker("exp", variants)
	require.NoError(b, err)
	r := benchReplica(b, srv.Addr)
	b.Run("local", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = local.ObserveRequest("canary", time.Millisecond, false)
			_ = local.Expose("canary")
		}
	})
	b.Run("pooled", func(b *testing.B) {
		runCtx, stop := context.WithCancel(ctx)
		s, err := New(r.rdb, Options{FlushInterval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(b, err)
		require.NoError(b, s.Tracker(r.tr))
		done := make(chan error, 1)
		go func() { done <- s.Run(runCtx) }()
		b.ReportAllocs()
		for b.Loop() {
			_ = r.tr.ObserveRequest("canary", time.Millisecond, false)
			_ = r.tr.Expose("canary")
		}
		b.StopTimer()
		stop()
		<-done
	})
	b.Run("hincrby-per-event", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pipe := r.rdb.Pipeline()
			pipe.HIncrBy(ctx, "bench:naive", "requests/canary", 1)
			pipe.HIncrBy(ctx, "bench:naive", "exposures/canary", 1)
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBandit measures Select plus Update of a Thompson-Beta bandit
// over three arms, alone ("local") and pooled: Update then also moves the
// pooled view.
func BenchmarkBandit(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	r := benchReplica(b, srv.Addr)
	local, err := abtest.NewThompsonBeta(arms, abtest.BanditOptions{Seed: 1})
	require.NoError(b, err)
	for i := range 10000 {
		require.NoError(b, local.Update(arms[i%3], float64(i%2)))
	}
	for _, bc := range []struct {
		name string
		b    abtest.Bandit
	}{{"local", local}, {"pooled", r.b}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = bc.b.Update(bc.b.Select(), float64(i&1))
				i++
			}
		})
	}
}

// BenchmarkFlush measures one Flush of a replica holding a tracker (two
// variants, with their latency histograms), a bandit and an experiment:
// after a batch of 100 requests ("flush": about 200 changed fields), with
// nothing changed ("flush-idle": the scripts and the read-back alone), and
// the floor of any exchange with Redis, one PING round trip.
func BenchmarkFlush(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	ctx := context.Background()
	r := benchReplica(b, srv.Addr)
	env := rand.New(rand.NewPCG(3, 4))
	b.Run("flush", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			for range 100 {
				v := variants[env.IntN(2)]
				_ = r.tr.ObserveRequest(v, time.Duration(env.ExpFloat64()*float64(2*time.Millisecond)), false)
				_ = r.tr.Expose(v)
				_ = r.b.Update(r.b.Select(), float64(env.IntN(2)))
			}
			b.StartTimer()
			if err := r.s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("flush-idle", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := r.s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ping", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := r.rdb.Ping(ctx).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStats measures Tracker.Stats (what a guardrail reads per check)
// on a local tracker and on a pooled one.
func BenchmarkStats(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	r := benchReplica(b, srv.Addr)
	local, err := abtest.NewTracker("exp", variants)
	require.NoError(b, err)
	for i := range 10000 {
		require.NoError(b, local.ObserveRequest(variants[i%2], time.Duration(i)*time.Microsecond, false))
	}
	for _, bc := range []struct {
		name string
		t    *abtest.Tracker
	}{{"local", local}, {"pooled", r.tr}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = bc.t.Stats()
			}
		})
	}
}
