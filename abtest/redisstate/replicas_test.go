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

// Three replicas record disjoint parts of the traffic; after flushing, each
// reads exactly what one tracker and one bandit fed all of it read, and
// keeps doing so across a Redis crash in the middle, with traffic going on
// while Redis is down, whether Redis keeps its data (appendonly) or comes
// back empty.
func TestCountersSumExactlyAcrossReplicas(t *testing.T) {
	for _, durable := range []bool{true, false} {
		name := "volatile"
		if durable {
			name = "durable"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			srv := redistest.Start(t, redistest.Options{Durable: durable})
			rs := newReplicas(t, srv.Addr, 3, Options{})
			ref := newReference(t)
			r := rand.New(rand.NewPCG(11, 12))

			// Rounds of traffic, flushed in a different order each round.
			for round := range 5 {
				feed(t, ref, rs, randomEvents(r, 400, 3))
				for _, i := range r.Perm(3) {
					require.NoError(t, rs[i].s.Flush(ctx))
				}
				require.Equal(t, uint64(round+1), rs[0].s.Stats().Flushes)
			}
			converge(t, ctx, ref, rs, 2)
			before := rs[0].tr.Stats()

			// Redis dies. Traffic goes on; flushes fail; every replica keeps
			// reading the last pooled numbers plus its own.
			srv.Kill()
			evs := randomEvents(r, 600, 3)
			feed(t, ref, rs, evs)
			for _, err := range flushAll(ctx, rs) {
				require.ErrorIs(t, err, ErrRedis)
			}
			for _, err := range flushAll(ctx, rs) {
				require.ErrorIs(t, err, ErrRedis)
			}
			own := 0
			for _, ev := range evs {
				if ev.replica == 0 && ev.kind == 0 && ev.variant == "control" {
					own++
				}
			}
			require.Equal(t, before[0].Requests+uint64(own), rs[0].tr.Stats()[0].Requests,
				"during the outage: the last pooled numbers plus this replica's own")
			require.False(t, matches(ref, rs[0]), "the others' outage traffic is not visible yet")

			// Redis returns: everything converges to the exact totals, with
			// nothing lost and nothing counted twice.
			srv.Restart()
			feed(t, ref, rs, randomEvents(r, 300, 3))
			converge(t, ctx, ref, rs, 3)
			for _, x := range rs {
				st := x.s.Stats()
				require.NoError(t, st.Err)
				if durable {
					require.Zero(t, st.Resyncs, "a durable Redis kept every record")
				} else {
					require.Equal(t, uint64(2), st.Resyncs, "tracker and bandit resent in full once into the new epoch")
				}
			}

			// And stays exact as traffic continues.
			for range 3 {
				feed(t, ref, rs, randomEvents(r, 200, 3))
				converge(t, ctx, ref, rs, 2)
			}
		})
	}
}

// A flush whose reply is lost after Redis applied it, and an old flush
// delivered again later, add nothing twice.
func TestLostReplyAndReplayAddNothing(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Options{})
	rs := newReplicas(t, srv.Addr, 2, Options{})
	ref := newReference(t)
	r := rand.New(rand.NewPCG(21, 22))
	h := &faultHook{}
	rs[0].rdb.AddHook(h)

	feed(t, ref, rs, randomEvents(r, 300, 2))
	converge(t, ctx, ref, rs, 2)

	// The reply of replica 1's next flush is lost after Redis ran it.
	feed(t, ref, rs, randomEvents(r, 300, 2))
	h.set(true, false)
	require.ErrorIs(t, rs[0].s.Flush(ctx), ErrRedis)
	require.Equal(t, 1, h.dropped())
	h.set(false, true) // record the next exchange for a replay
	converge(t, ctx, ref, rs, 2)

	// The recorded flush is delivered again, after later ones: refused.
	feed(t, ref, rs, randomEvents(r, 300, 2))
	converge(t, ctx, ref, rs, 2)
	replayed := h.replay(ctx, t, rs[0].rdb)
	require.NotEmpty(t, replayed)
	for _, reply := range replayed {
		require.Equal(t, "stale", reply[0], "an older call of the same incarnation")
	}
	converge(t, ctx, ref, rs, 2)
}

// A record that expired while its replica was away is replaced by a full
// resend against what the replica knows it contributed.
func TestExpiredRecordResendsAgainstBase(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Options{})
	rs := newReplicas(t, srv.Addr, 3, Options{})
	ref := newReference(t)
	r := rand.New(rand.NewPCG(31, 32))
	feed(t, ref, rs, randomEvents(r, 500, 3))
	converge(t, ctx, ref, rs, 2)

	admin := newClient(t, srv.Addr)
	for _, h := range rs[1].s.holders {
		require.Equal(t, int64(1), admin.Del(ctx, h.record).Val(), "the record of %s", h.kind)
		ttl := admin.PTTL(ctx, rs[0].s.holders[0].record).Val()
		require.Greater(t, ttl, DefaultRecordTTL-time.Minute, "records expire RecordTTL after the last flush")
	}
	feed(t, ref, rs, randomEvents(r, 500, 3))
	converge(t, ctx, ref, rs, 2)
	require.Equal(t, uint64(2), rs[1].s.Stats().Resyncs)
	require.Zero(t, rs[0].s.Stats().Resyncs)
}

// An aggregate holding something this package did not write is rebuilt
// from the live replicas, with a warning.
func TestCorruptAggregateIsRebuilt(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Options{})
	rs := newReplicas(t, srv.Addr, 3, Options{})
	ref := newReference(t)
	r := rand.New(rand.NewPCG(41, 42))
	feed(t, ref, rs, randomEvents(r, 500, 3))
	converge(t, ctx, ref, rs, 2)

	admin := newClient(t, srv.Addr)
	agg := rs[0].s.holders[0].agg
	for _, garbage := range [][2]string{
		{"c:requests/control", "12x"}, {"m:metric/canary", "3 NaN 1"}, {"c:errors/control", "-4"}, {"weird", "1"},
	} {
		require.NoError(t, admin.HSet(ctx, agg, garbage[0], garbage[1]).Err())
		feed(t, ref, rs, randomEvents(r, 200, 3))
		// The script finds garbage in the fields a flush touches; the
		// replica finds it in the rest when it reads the aggregate back,
		// and has the next flush rebuild it.
		if err := rs[0].s.Flush(ctx); err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			require.NoError(t, rs[0].s.Flush(ctx))
		}
		converge(t, ctx, ref, rs, 3)
	}
	require.Equal(t, uint64(4), rs[0].s.Stats().Corrupt, "the first replica to flush found each")
	require.Equal(t, 4, rs[0].log.Count(slog.LevelWarn, "did not write"))
}

// Stop decisions and resumes taken on one replica reach the others; a
// Redis that lost them gets them back from the replicas that hold them.
func TestDecisionsReachEveryReplica(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Options{})
	rs := newReplicas(t, srv.Addr, 3, Options{})
	flushAll(ctx, rs)

	require.NoError(t, rs[1].e.StopWith("canary", abtest.StopInfo{Reason: "error_rate"}))
	require.NoError(t, rs[1].s.Flush(ctx)) // Run flushes at once after a local decision
	for _, err := range flushAll(ctx, rs) {
		require.NoError(t, err)
	}
	for _, x := range rs {
		info, stopped := x.e.StopInfo("canary")
		require.True(t, stopped, x.id)
		require.Equal(t, "error_rate", info.Reason)
		if x != rs[1] {
			require.Equal(t, "r2", info.Replica, "applied from the replica that decided")
			require.Equal(t, uint64(1), x.s.Stats().Applied)
			require.Equal(t, 0.0, x.e.Weights()[0].Weight)
		}
	}
	require.Equal(t, uint64(1), rs[1].s.Stats().Published)

	// Redis loses everything; a new replica must still learn the stop.
	srv.Kill()
	srv.Restart()
	flushAll(ctx, rs) // the new epoch: stops queued again
	flushAll(ctx, rs) // written
	late := newReplica(t, srv.Addr, "r4", Options{})
	require.NoError(t, late.s.Flush(ctx))
	_, stopped := late.e.StopInfo("canary")
	require.True(t, stopped, "a replica that joins after the loss")

	// Resume on replica 3 reaches everyone.
	require.NoError(t, rs[2].e.Resume("canary"))
	require.NoError(t, rs[2].s.Flush(ctx))
	for _, err := range flushAll(ctx, append(rs, late)) {
		require.NoError(t, err)
	}
	for _, x := range append(rs, late) {
		require.False(t, x.e.Stopped("canary"), x.id)
	}
	require.NoError(t, rs[0].e.SetWeights(map[string]float64{"canary": 20, "control": 80}), "resumed: a ramp may proceed")
}
