package redisstore

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/quiverml/quiver/features"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func testView() features.View {
	return features.View{
		Name: "user", Entity: "user_id", TTL: time.Hour, Version: 2,
		Features: []features.Feature{
			{Name: "age", Kind: features.KindFloat32, Default: features.Float32(-1)},
			{Name: "clicks", Kind: features.KindInt64},
			{Name: "country", Kind: features.KindString},
			{Name: "emb", Kind: features.KindEmbedding, Dim: 2},
		},
	}
}

func testRow(id string, at time.Time, age float32) features.Row {
	return features.Row{Entity: id, EventTime: at, Values: map[string]features.Value{
		"age": features.Float32(age), "clicks": features.Int64(7), "country": features.String("fr"),
		"emb": features.Embedding([]float32{0.5, -1}),
	}}
}

func newTier(t *testing.T, rdb redis.UniversalClient) *Tier {
	t.Helper()
	m := features.New(features.Options{})
	t.Cleanup(func() { _ = m.Close() })
	tier := New(m, rdb, Options{})
	require.NoError(t, tier.Register(testView()))
	return tier
}

func TestTierWriteThroughAndReadThrough(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	ctx := context.Background()
	a, b := newTier(t, rdb), newTier(t, rdb) // two replicas
	now := time.Now()
	var rows []features.Row
	for i := range 30 {
		rows = append(rows, testRow("u"+strconv.Itoa(i), now, float32(i)))
	}
	require.NoError(t, a.Put(ctx, "user", rows...))

	key := "quiver:features:4:user:v2:u3"
	ttl, err := rdb.PTTL(ctx, key).Result()
	require.NoError(t, err)
	require.InDelta(t, float64(time.Hour), float64(ttl), float64(5*time.Second), "TTL maps to the key's expiry")

	sel, err := b.Select("user", "age", "clicks", "emb")
	require.NoError(t, err)
	ids := []string{"u3", "nobody", "u29"}
	dst := make([]float32, len(ids)*sel.Width())
	st := make([]features.Status, len(ids)*sel.Len())
	require.NoError(t, b.GetMany(ctx, sel, ids, dst, st))
	require.Equal(t, []float32{3, 7, 0.5, -1, -1, 0, 0, 0, 29, 7, 0.5, -1}, dst)
	require.Equal(t, features.StatusPresent, st[0])
	require.Equal(t, features.StatusNotFound, st[3])
	n, err := b.Local().Len("user")
	require.NoError(t, err)
	require.Equal(t, 2, n, "read-through caches the rows found in Redis")

	res, err := b.GetRow(ctx, "user", "u10")
	require.NoError(t, err)
	require.Equal(t, "fr", res.Values["country"].Str())
	require.Equal(t, now.UnixNano(), res.EventTime.UnixNano())
	_, err = b.GetRow(ctx, "user", "nobody")
	require.ErrorIs(t, err, features.ErrNotFound)
}

func TestTierEventTimeWinsAcrossReplicas(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	ctx := context.Background()
	a, b := newTier(t, rdb), newTier(t, rdb)
	now := time.Now()
	require.NoError(t, a.Put(ctx, "user", testRow("u", now, 2)))
	require.NoError(t, b.Put(ctx, "user", testRow("u", now.Add(-time.Minute), 1)))
	c := newTier(t, rdb)
	res, err := c.GetRow(ctx, "user", "u")
	require.NoError(t, err)
	require.Equal(t, float32(2), res.Values["age"].Float32(), "the older event from replica b must not win in Redis")
	require.NoError(t, b.Put(ctx, "user", testRow("u", now.Add(time.Minute), 3)))
	d := newTier(t, rdb)
	res, err = d.GetRow(ctx, "user", "u")
	require.NoError(t, err)
	require.Equal(t, float32(3), res.Values["age"].Float32())
}

func TestTierRejectsInvalidRowsAndSkipsExpired(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	ctx := context.Background()
	a := newTier(t, rdb)
	bad := testRow("bad", time.Now(), 1)
	bad.Values["emb"] = features.Embedding([]float32{1})
	err := a.Put(ctx, "user", testRow("ok", time.Now(), 1), bad, testRow("old", time.Now().Add(-2*time.Hour), 1))
	require.ErrorIs(t, err, features.ErrDimension)
	keys, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Equal(t, []string{"quiver:features:4:user:v2:ok"}, keys, "invalid and already-expired rows are not sent")
	require.ErrorIs(t, a.Put(ctx, "nope", testRow("x", time.Now(), 1)), features.ErrUnknownView)
}

func TestTierRecoversAfterScriptFlush(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	ctx := context.Background()
	a := newTier(t, rdb)
	require.NoError(t, a.Put(ctx, "user", testRow("a", time.Now(), 1)))
	require.NoError(t, rdb.ScriptFlush(ctx).Err())
	require.NoError(t, a.Put(ctx, "user", testRow("b", time.Now(), 1)))
	require.Equal(t, int64(1), rdb.Exists(ctx, "quiver:features:4:user:v2:b").Val())
}

func TestTierRedisDown(t *testing.T) {
	srv := startRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	a := newTier(t, rdb)
	srv.stop()
	ctx := context.Background()
	err := a.Put(ctx, "user", testRow("a", time.Now(), 1))
	require.ErrorIs(t, err, ErrRedis)
	n, _ := a.Local().Len("user")
	require.Zero(t, n, "a failed write-through leaves the local store untouched")
	sel, _ := a.Select("user", "age")
	dst, st := make([]float32, 1), make([]features.Status, 1)
	require.ErrorIs(t, a.GetMany(ctx, sel, []string{"a"}, dst, st), ErrRedis)
	require.Equal(t, features.StatusNotFound, st[0])
}
