package redisstore

import (
	"context"
	"math"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiverml/quiver/features"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// testClock is a settable clock for the tier's staleness and breaker.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func newTierWith(t *testing.T, rdb redis.UniversalClient, opts Options, clk *testClock, views ...features.View) *Tier {
	t.Helper()
	m := features.New(features.Options{})
	t.Cleanup(func() { _ = m.Close() })
	tier := New(m, rdb, opts)
	if clk != nil {
		tier.now = clk.Now
	}
	if len(views) == 0 {
		views = []features.View{testView()}
	}
	for _, v := range views {
		require.NoError(t, tier.Register(v))
	}
	return tier
}

func readAge(t *testing.T, tier *Tier, entity string) (float32, features.Status, error) {
	t.Helper()
	sel, err := tier.Select("user", "age")
	require.NoError(t, err)
	dst, st := make([]float32, 1), make([]features.Status, 1)
	err = tier.GetMany(context.Background(), sel, []string{entity}, dst, st)
	return dst[0], st[0], err
}

// TestTierBoundedStaleness: a write through replica A is visible through
// replica B once B's local copy is older than MaxStaleness, for GetMany
// and GetRow alike, even with a TTL of zero.
func TestTierBoundedStaleness(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	view := testView()
	view.TTL = 0
	const bound = 250 * time.Millisecond
	clkA, clkB := newTestClock(), newTestClock()
	a := newTierWith(t, srv.client(t), Options{MaxStaleness: bound}, clkA, view)
	b := newTierWith(t, srv.client(t), Options{MaxStaleness: bound}, clkB, view)
	at := time.Now()

	require.NoError(t, a.Put(ctx, "user", testRow("u", at, 1)))
	age, st, err := readAge(t, b, "u")
	require.NoError(t, err)
	require.Equal(t, features.StatusPresent, st)
	require.Equal(t, float32(1), age, "B reads the row through and caches it")
	res, err := b.GetRow(ctx, "user", "u")
	require.NoError(t, err)
	require.Equal(t, float32(1), res.Values["age"].Float32())

	require.NoError(t, a.Put(ctx, "user", testRow("u", at.Add(time.Second), 2)))
	clkB.Add(bound + time.Millisecond)
	age, _, err = readAge(t, b, "u")
	require.NoError(t, err)
	require.Equal(t, float32(2), age, "after MaxStaleness B reads A's newer write")

	require.NoError(t, a.Put(ctx, "user", testRow("u", at.Add(2*time.Second), 3)))
	clkB.Add(bound + time.Millisecond)
	res, err = b.GetRow(ctx, "user", "u")
	require.NoError(t, err)
	require.Equal(t, float32(3), res.Values["age"].Float32(), "GetRow honours the bound too")

	// A row gone from Redis (deleted, expired) is not served from the
	// local copy once it is stale.
	require.NoError(t, srv.client(t).FlushAll(ctx).Err())
	clkB.Add(bound + time.Millisecond)
	_, st, err = readAge(t, b, "u")
	require.NoError(t, err)
	require.Equal(t, features.StatusNotFound, st)
}

// TestTierNegativeMaxStalenessKeepsLocalCopies documents the single
// replica setting: local copies are served without reading Redis.
func TestTierNegativeMaxStalenessKeepsLocalCopies(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	clkB := newTestClock()
	a := newTierWith(t, srv.client(t), Options{}, nil)
	b := newTierWith(t, srv.client(t), Options{MaxStaleness: -1}, clkB)
	at := time.Now()
	require.NoError(t, a.Put(ctx, "user", testRow("u", at, 1)))
	_, _, err := readAge(t, b, "u")
	require.NoError(t, err)
	require.NoError(t, a.Put(ctx, "user", testRow("u", at.Add(time.Second), 2)))
	clkB.Add(time.Hour)
	age, _, err := readAge(t, b, "u")
	require.NoError(t, err)
	require.Equal(t, float32(1), age)
}

// TestTierKeysDoNotCollide writes two view and entity pairs that spelled
// the same key under the unescaped layout.
func TestTierKeysDoNotCollide(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	v1, v2 := testView(), testView()
	v1.Name, v1.Version = "a:v0:b", 0
	v2.Name, v2.Version = "a", 0
	w := newTierWith(t, srv.client(t), Options{}, nil, v1, v2)
	at := time.Now()
	require.NoError(t, w.Put(ctx, v1.Name, testRow("x", at, 1)))
	require.NoError(t, w.Put(ctx, v2.Name, testRow("b:v0:x", at, 2)))
	keys, err := srv.client(t).Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 2, "one key per view and entity: %q", keys)

	r := newTierWith(t, srv.client(t), Options{}, nil, v1, v2)
	res, err := r.GetRow(ctx, v1.Name, "x")
	require.NoError(t, err)
	require.Equal(t, float32(1), res.Values["age"].Float32())
	res, err = r.GetRow(ctx, v2.Name, "b:v0:x")
	require.NoError(t, err)
	require.Equal(t, float32(2), res.Values["age"].Float32())
}

// TestTierCircuitBreaker stops Redis: the first call pays the failure,
// the next ones fail at once for the back-off period; once Redis is back
// and the period has passed, a probe closes the breaker.
func TestTierCircuitBreaker(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	clk := newTestClock()
	const backoff = 5 * time.Second
	tier := newTierWith(t, rdb, Options{BreakerBackoff: backoff}, clk)
	require.NoError(t, tier.Put(ctx, "user", testRow("kept", time.Now(), 1)))

	require.Equal(t, TierStats{Written: 1}, tier.Stats())

	srv.stop()
	_, _, err := readAge(t, tier, "a")
	require.ErrorIs(t, err, ErrRedis)
	require.NotErrorIs(t, err, ErrUnavailable, "the first failure reached Redis")
	require.Equal(t, TierStats{Written: 1, Fetched: 1, Failures: 1, BreakerOpen: true}, tier.Stats())

	steps := []struct {
		name string
		call func() error
	}{
		{"GetMany", func() error { _, _, err := readAge(t, tier, "b"); return err }},
		{"GetRow", func() error { _, err := tier.GetRow(ctx, "user", "c"); return err }},
		{"Put", func() error { return tier.Put(ctx, "user", testRow("d", time.Now(), 1)) }},
	}
	for _, s := range steps {
		err := s.call()
		require.ErrorIs(t, err, ErrUnavailable, s.name)
		require.ErrorIs(t, err, ErrRedis, s.name)
	}
	require.Equal(t, TierStats{Written: 1, Fetched: 1, Failures: 1, Refused: 3, BreakerOpen: true}, tier.Stats())
	age, st, err := readAge(t, tier, "kept")
	require.NoError(t, err, "a fresh local row needs no Redis")
	require.Equal(t, features.StatusPresent, st)
	require.Equal(t, float32(1), age)

	// The probe after the back-off fails while Redis is down and reopens
	// the breaker for twice as long.
	clk.Add(backoff)
	_, _, err = readAge(t, tier, "e")
	require.ErrorIs(t, err, ErrRedis)
	require.NotErrorIs(t, err, ErrUnavailable, "the probe reached Redis")
	clk.Add(backoff)
	_, _, err = readAge(t, tier, "e")
	require.ErrorIs(t, err, ErrUnavailable, "doubled back-off")

	srv.start(t)
	_, _, err = readAge(t, tier, "e")
	require.ErrorIs(t, err, ErrUnavailable, "still within the back-off")
	clk.Add(backoff)
	require.NoError(t, tier.Put(ctx, "user", testRow("f", time.Now(), 4)), "the probe finds Redis back")
	_, _, err = readAge(t, tier, "g")
	require.NoError(t, err)
	s := tier.Stats()
	require.False(t, s.BreakerOpen, "the probe closed the breaker")
	require.Equal(t, uint64(2), s.Failures, "the first call and the failed probe")
	require.Equal(t, uint64(2), s.Written)
	other := newTierWith(t, srv.client(t), Options{}, nil)
	age, st, err = readAge(t, other, "f")
	require.NoError(t, err)
	require.Equal(t, features.StatusPresent, st)
	require.Equal(t, float32(4), age)
}

// TestTierEventTimes: out-of-range times are refused before Redis is
// touched; a zero time is stamped once, identically in Redis and locally.
func TestTierEventTimes(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	clk := newTestClock()
	a := newTierWith(t, srv.client(t), Options{}, clk)
	for _, at := range []time.Time{time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)} {
		err := a.Put(ctx, "user", testRow("u", at, 1))
		require.ErrorIs(t, err, features.ErrEventTime, at.String())
	}
	keys, err := srv.client(t).Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Empty(t, keys)

	row := testRow("z", time.Time{}, 5)
	require.NoError(t, a.Put(ctx, "user", row))
	local, err := a.GetRow(ctx, "user", "z")
	require.NoError(t, err)
	require.True(t, local.EventTime.Equal(clk.Now()), "stamped with the tier's time")
	b := newTierWith(t, srv.client(t), Options{}, nil)
	remote, err := b.GetRow(ctx, "user", "z")
	require.NoError(t, err)
	require.True(t, remote.EventTime.Equal(local.EventTime), "Redis holds the same time: %v vs %v", remote.EventTime, local.EventTime)
	require.Equal(t, float32(5), remote.Values["age"].Float32())
}

// TestStreamEventTimes covers the stream's two entry points.
func TestStreamEventTimes(t *testing.T) {
	v := testView()
	cases := []struct {
		name string
		text string
		want error
	}{
		{"after 2262", "9223372036854775808", features.ErrEventTime},
		{"before 1678", "-9223372036854775809", features.ErrEventTime},
		{"the last", strconv.FormatInt(math.MaxInt64, 10), nil},
		{"the first", strconv.FormatInt(math.MinInt64, 10), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseMessage(v, map[string]any{FieldEntity: "u", FieldEventTime: tc.text})
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
				require.ErrorIs(t, err, ErrMessage)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.text, strconv.FormatInt(r.EventTime.UnixNano(), 10))
		})
	}

	srv := startRedis(t)
	rdb := srv.client(t)
	ctx := context.Background()
	_, err := Publish(ctx, rdb, "s", v, testRow("u", time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), 1))
	require.ErrorIs(t, err, features.ErrEventTime)
	n, err := rdb.XLen(ctx, "s").Result()
	require.NoError(t, err)
	require.Zero(t, n, "nothing is published")

	before := time.Now()
	id, err := Publish(ctx, rdb, "s", v, testRow("u", time.Time{}, 1))
	require.NoError(t, err)
	msgs, err := rdb.XRange(ctx, "s", id, id).Result()
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	r, err := ParseMessage(v, msgs[0].Values)
	require.NoError(t, err)
	require.False(t, r.EventTime.Before(before), "a zero event time is published as the time of the call")
}
