package online_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/quiverml/quiver/internal/redistest"
	"github.com/quiverml/quiver/online"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// predictN logs n predictions r0..r(n-1) and returns their ids.
func predictN(t *testing.T, l *online.Loop, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "r" + strconv.Itoa(i)
		_, err := l.Predict(context.Background(), online.Request{ID: ids[i], Entities: []string{"u1", "i" + strconv.Itoa(i%simItems)}})
		require.NoError(t, err)
	}
	return ids
}

func pendingCount(t *testing.T, rdb *redis.Client, stream, group string) int64 {
	t.Helper()
	p, err := rdb.XPending(context.Background(), stream, group).Result()
	require.NoError(t, err)
	return p.Count
}

// waitFor polls cond until it holds or 10 seconds pass: the source runs
// against a real redis-server on its own goroutine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type runResult struct {
	st  online.StreamStats
	err error
}

func runSource(ctx context.Context, src *online.RedisStreamSource, sink online.Sink) <-chan runResult {
	done := make(chan runResult, 1)
	go func() {
		st, err := src.Run(ctx, sink)
		done <- runResult{st, err}
	}()
	return done
}

func quietStream(stream, consumer string) online.StreamOptions {
	return online.StreamOptions{Stream: stream, Group: "learners", Consumer: consumer, Block: 20 * time.Millisecond,
		FlushDelay: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
}

func TestRedisStreamSourceJoinsAndAcknowledges(t *testing.T) {
	ctx := context.Background()
	rdb := redisClient(t)
	clock := newSimClock()
	s := newSim(t, 1, -1, clock)
	tr := newTrainer(t, 0.03)
	l := newLoop(t, s, clock, tr, func(o *online.Options) { o.HoldoutEvery = 5 })
	ids := predictN(t, l, 20)
	clock.Advance(time.Second)
	// An outcome before its prediction is refused (and acknowledged); r0
	// keeps waiting and joins with the valid outcome that follows.
	_, err := online.PublishOutcome(ctx, rdb, "outcomes", online.Outcome{RequestID: "r0", Label: 1, Time: simStart.Add(-time.Hour)})
	require.NoError(t, err)
	for i, id := range ids {
		_, err := online.PublishOutcome(ctx, rdb, "outcomes", online.Outcome{RequestID: id, Label: float64(i % 2), Time: clock.Now()})
		require.NoError(t, err)
	}
	// A malformed entry and an outcome for no prediction: acknowledged,
	// not redelivered forever.
	require.NoError(t, rdb.XAdd(ctx, &redis.XAddArgs{Stream: "outcomes", Values: []any{"request_id", "r5", "label", "yes"}}).Err())
	_, err = online.PublishOutcome(ctx, rdb, "outcomes", online.Outcome{RequestID: "ghost", Label: 1})
	require.NoError(t, err)
	_, err = online.PublishOutcome(ctx, rdb, "outcomes", online.Outcome{RequestID: "r0", Label: 0.5})
	require.ErrorIs(t, err, online.ErrEntry, "nothing malformed is published")

	src, err := online.NewRedisStreamSource(rdb, quietStream("outcomes", "a"))
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	done := runSource(rctx, src, l)
	waitFor(t, "every entry acknowledged", func() bool {
		return l.Stats().Joined == 20 && pendingCount(t, rdb, "outcomes", "learners") == 0
	})
	cancel()
	res := <-done
	require.ErrorIs(t, res.err, context.Canceled)
	require.Equal(t, online.StreamStats{Read: 23, Joined: 20, Unmatched: 1, Rejected: 2, Acked: 23}, res.st)
	st := l.Stats()
	require.Equal(t, uint64(1), st.Rejected, "the outcome before its prediction")
	require.Equal(t, uint64(4), st.HeldOut)
	require.Equal(t, uint64(16), st.Trained)
	require.Equal(t, int64(16), tr.Stats().UpdateRows, "the source flushed every trained row before acknowledging")
}

// gatedSink holds Flush until the test releases it, so that the test can
// look at the stream while the update is pending.
type gatedSink struct {
	*online.Loop
	entered, release chan struct{}
}

func (g *gatedSink) Flush(ctx context.Context) error {
	g.entered <- struct{}{}
	<-g.release
	return g.Loop.Flush(ctx)
}

func TestRedisStreamSourceAcknowledgesAfterUpdate(t *testing.T) {
	ctx := context.Background()
	rdb := redisClient(t)
	clock := newSimClock()
	s := newSim(t, 1, -1, clock)
	tr := newTrainer(t, 0.03)
	l := newLoop(t, s, clock, tr, func(o *online.Options) { o.HoldoutEvery, o.BatchSize = 100, 64 })
	ids := predictN(t, l, 10)
	for _, id := range ids {
		_, err := online.PublishOutcome(ctx, rdb, "outcomes", online.Outcome{RequestID: id, Label: 1})
		require.NoError(t, err)
	}
	src, err := online.NewRedisStreamSource(rdb, quietStream("outcomes", "a"))
	require.NoError(t, err)
	sink := &gatedSink{Loop: l, entered: make(chan struct{}), release: make(chan struct{})}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := runSource(rctx, src, sink)
	<-sink.entered
	require.Equal(t, uint64(10), l.Stats().Joined)
	require.Equal(t, int64(0), tr.Stats().UpdateRows, "10 rows wait in a batch of 64")
	require.Equal(t, int64(10), pendingCount(t, rdb, "outcomes", "learners"), "nothing is acknowledged before the update")
	close(sink.release)
	waitFor(t, "acknowledgement", func() bool { return pendingCount(t, rdb, "outcomes", "learners") == 0 })
	require.Equal(t, int64(10), tr.Stats().UpdateRows)
	cancel()
	res := <-done
	require.ErrorIs(t, res.err, context.Canceled)
	require.Equal(t, uint64(10), res.st.Acked)
}

// crashSink fails every outcome, as a consumer that dies while applying a
// read would: the read's entries are never acknowledged.
type crashSink struct{ *online.Loop }

var errCrash = errors.New("consumer crashed")

func (crashSink) Outcome(context.Context, online.Outcome) error { return errCrash }

func TestRedisStreamSourceRedeliversUnacknowledged(t *testing.T) {
	ctx := context.Background()
	t.Run("same consumer restarts", func(t *testing.T) {
		rdb := redisClient(t)
		clock := newSimClock()
		s := newSim(t, 1, -1, clock)
		tr := newTrainer(t, 0.03)
		l := newLoop(t, s, clock, tr, func(o *online.Options) { o.HoldoutEvery = 1000 })
		for _, id := range predictN(t, l, 8) {
			_, err := online.PublishOutcome(ctx, rdb, "outcomes", online.Outcome{RequestID: id, Label: 1})
			require.NoError(t, err)
		}
		src, err := online.NewRedisStreamSource(rdb, quietStream("outcomes", "a"))
		require.NoError(t, err)
		st, err := src.Run(ctx, crashSink{l})
		require.ErrorIs(t, err, errCrash)
		require.Equal(t, uint64(0), st.Acked)
		require.Equal(t, int64(8), pendingCount(t, rdb, "outcomes", "learners"), "the crashed read stays pending")
		require.Equal(t, uint64(0), l.Stats().Joined)

		// The restarted consumer reads its own pending entries first.
		rctx, cancel := context.WithCancel(ctx)
		done := runSource(rctx, src, l)
		waitFor(t, "redelivery", func() bool { return pendingCount(t, rdb, "outcomes", "learners") == 0 })
		cancel()
		res := <-done
		require.ErrorIs(t, res.err, context.Canceled)
		require.Equal(t, uint64(8), res.st.Joined)
		require.Equal(t, uint64(0), res.st.Claimed)
		require.Equal(t, int64(8), tr.Stats().UpdateRows)
	})
	t.Run("another consumer claims", func(t *testing.T) {
		rdb := redisClient(t)
		clock := newSimClock()
		s := newSim(t, 1, -1, clock)
		tr := newTrainer(t, 0.03)
		l := newLoop(t, s, clock, tr, func(o *online.Options) { o.HoldoutEvery = 1000 })
		for _, id := range predictN(t, l, 8) {
			_, err := online.PublishOutcome(ctx, rdb, "outcomes", online.Outcome{RequestID: id, Label: 0})
			require.NoError(t, err)
		}
		// Consumer "a" reads everything and dies without acknowledging.
		require.NoError(t, rdb.XGroupCreateMkStream(ctx, "outcomes", "learners", "0").Err())
		res0, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "learners", Consumer: "a", Streams: []string{"outcomes", ">"}}).Result()
		require.NoError(t, err)
		require.Len(t, res0[0].Messages, 8)

		opts := quietStream("outcomes", "b")
		opts.ClaimIdle = 50 * time.Millisecond
		src, err := online.NewRedisStreamSource(rdb, opts)
		require.NoError(t, err)
		rctx, cancel := context.WithCancel(ctx)
		done := runSource(rctx, src, l)
		waitFor(t, "claim", func() bool { return pendingCount(t, rdb, "outcomes", "learners") == 0 })
		cancel()
		res := <-done
		require.ErrorIs(t, res.err, context.Canceled)
		require.Equal(t, uint64(8), res.st.Claimed)
		require.Equal(t, uint64(8), res.st.Joined)
		require.Equal(t, uint64(8), l.Stats().Joined)
		require.Equal(t, int64(8), tr.Stats().UpdateRows)
	})
}

// A slow stream, one outcome per read, still trains in mini-batches: the
// source acknowledges applied entries once FlushDelay has passed or Run
// ends, not after every read, so rows wait for their batch to fill. With a
// negative FlushDelay every read is flushed, and every update trains the
// one row of its read.
func TestRedisStreamSourceFillsBatchesOfASlowStream(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		delay                time.Duration
		updatesBeforeCancel  int64
		pendingBeforeCancel  int64
		updatesAfterShutdown int64
	}{
		{"delay", time.Hour, 2, 10, 3}, // batches of 4, 4, and the 2 left at shutdown
		{"every read", -1, 10, 0, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rdb := redisClient(t)
			clock := newSimClock()
			s := newSim(t, 1, -1, clock)
			tr := newTrainer(t, 0.03)
			l := newLoop(t, s, clock, tr, func(o *online.Options) { o.HoldoutEvery, o.BatchSize = 1000, 4 })
			ids := predictN(t, l, 10)
			opts := quietStream("outcomes", "a")
			opts.FlushDelay = tc.delay
			if tc.delay > 0 {
				opts.ClaimIdle = 2 * tc.delay // the delay must stay below it
			}
			src, err := online.NewRedisStreamSource(rdb, opts)
			require.NoError(t, err)
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := runSource(rctx, src, l)
			for i, id := range ids {
				_, err := online.PublishOutcome(ctx, rdb, "outcomes", online.Outcome{RequestID: id, Label: float64(i % 2)})
				require.NoError(t, err)
				waitFor(t, "outcome "+id, func() bool { return l.Stats().Joined == uint64(i+1) })
			}
			waitFor(t, "the updates of the reads", func() bool {
				return tr.Stats().Updates == tc.updatesBeforeCancel &&
					pendingCount(t, rdb, "outcomes", "learners") == tc.pendingBeforeCancel
			})
			cancel()
			res := <-done
			require.ErrorIs(t, res.err, context.Canceled)
			require.Equal(t, uint64(10), res.st.Acked, "every applied entry is acknowledged by the time Run returns")
			require.Equal(t, int64(0), pendingCount(t, rdb, "outcomes", "learners"))
			ts := tr.Stats()
			require.Equal(t, tc.updatesAfterShutdown, ts.Updates)
			require.Equal(t, int64(10), ts.UpdateRows, "every row trained before its entry was acknowledged")
		})
	}
}

func TestRedisStreamSourceConfig(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	for _, o := range []online.StreamOptions{
		{Group: "g", Consumer: "c"},
		{Stream: "s", Consumer: "c"},
		{Stream: "s", Group: "g"},
		{Stream: "s", Group: "g", Consumer: "c", Count: -1},
		{Stream: "s", Group: "g", Consumer: "c", FlushDelay: time.Minute}, // the default ClaimIdle
		{Stream: "s", Group: "g", Consumer: "c", FlushDelay: time.Second, ClaimIdle: time.Second},
	} {
		_, err := online.NewRedisStreamSource(rdb, o)
		require.ErrorIs(t, err, online.ErrConfig)
	}
	_, err := online.NewRedisStreamSource(nil, online.StreamOptions{Stream: "s", Group: "g", Consumer: "c"})
	require.ErrorIs(t, err, online.ErrConfig)
	src, err := online.NewRedisStreamSource(rdb, online.StreamOptions{Stream: "s", Group: "g", Consumer: "c", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	_, err = src.Run(context.Background(), nil)
	require.ErrorIs(t, err, online.ErrRedis, "a dead server is ErrRedis")
}
