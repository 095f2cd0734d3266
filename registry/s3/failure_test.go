package s3

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/registry"
)

// TestStoreDownAndBack kills the S3 server: reads of what is cached keep
// working, writes fail with ErrUnavailable and change nothing, a replica
// opened during the outage starts from its cache, and everything resumes
// when the server returns.
func TestStoreDownAndBack(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	w := e.open(t)
	publishMLP(t, w, "m", "one")
	publishMLP(t, w, "m", "two")
	require.NoError(t, w.SetAlias(ctx, "m", "prod", 1))
	rd := e.open(t)
	snap, err := rd.Scan(ctx, "m")
	require.NoError(t, err)
	_, dir1, err := rd.Fetch(ctx, "m", 1)
	require.NoError(t, err)

	e.srv.Kill()

	// Reads: the last snapshot, the cached version.
	down, err := rd.Scan(ctx, "m")
	require.NoError(t, err, "Scan answers from memory while the store is down")
	require.Equal(t, snap, down)
	models, err := rd.Models(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"m"}, models)
	_, dir, err := rd.Fetch(ctx, "m", 1)
	require.NoError(t, err, "a cached version is still fetched")
	require.Equal(t, dir1, dir)
	_, _, err = rd.Fetch(ctx, "m", 2)
	require.ErrorIs(t, err, ErrUnavailable, "a version never fetched cannot be")
	st := rd.Stats()
	require.True(t, st.Offline)
	require.NotZero(t, st.OfflineScans)
	require.NotZero(t, st.OfflineFetches)

	// Writes: a typed error, quickly, and nothing changes.
	start := time.Now()
	_, err = w.Publish(ctx, "m", []registry.File{{Name: "model.onnx", Data: mlpBytes(t)}}, registry.Meta{})
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorIs(t, w.SetAlias(ctx, "m", "prod", 2), ErrUnavailable)
	_, err = w.PutSnapshot(ctx, "idx", strings.NewReader("index bytes"))
	require.ErrorIs(t, err, ErrUnavailable)
	t.Logf("three writes failed in %v", time.Since(start))

	// A replica started during the outage, on the same cache folder,
	// serves what that cache holds.
	fresh := e.open(t, func(o *Options) { o.CacheDir = rd.CacheDir() })
	models, err = fresh.Models(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"m"}, models)
	cold, err := fresh.Scan(ctx, "m")
	require.NoError(t, err)
	require.Len(t, cold.Versions, 1, "only the fetched version is known offline")
	require.Equal(t, int64(1), cold.Versions[0].Number)
	require.Equal(t, snap.Aliases, cold.Aliases, "the alias table is the last one seen")
	_, _, err = fresh.Fetch(ctx, "m", 1)
	require.NoError(t, err)
	_, err = e.open(t).Scan(ctx, "m")
	require.ErrorIs(t, err, ErrUnavailable, "a replica with an empty cache has nothing to serve")

	e.srv.Restart()

	require.NoError(t, w.SetAlias(ctx, "m", "prod", 2))
	v3 := publishMLP(t, w, "m", "three")
	require.Equal(t, int64(3), v3.Number, "the failed publish burned no number")
	snap, err = rd.Scan(ctx, "m")
	require.NoError(t, err)
	require.Len(t, snap.Versions, 3)
	require.Equal(t, int64(2), snap.Aliases[0].Version)
	_, _, err = rd.Fetch(ctx, "m", 2)
	require.NoError(t, err)
	require.False(t, rd.Stats().Offline)
	snap, err = fresh.Scan(ctx, "m")
	require.NoError(t, err)
	require.Len(t, snap.Versions, 3)
}
