package s3

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/registry"
	"github.com/quiverml/quiver/vector"
)

// buildIndex returns an HNSW index of n random vectors, saved at path.
func buildIndex(t *testing.T, n int, seed uint64, path string) *vector.HNSW[string] {
	t.Helper()
	ctx := context.Background()
	idx, err := vector.NewHNSW[string](vector.Options{Dim: 16, Metric: vector.Cosine, Seed: seed})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(seed, 7))
	items := make([]vector.Item[string], n)
	for i := range items {
		v := make([]float32, 16)
		for j := range v {
			v[j] = float32(rng.NormFloat64())
		}
		items[i] = vector.Item[string]{ID: fmt.Sprintf("doc-%d", i), Vector: v, Metadata: vector.Metadata{"shard": i % 4}}
	}
	require.NoError(t, idx.Add(ctx, items...))
	require.NoError(t, idx.Save(ctx, path))
	return idx
}

// TestVectorSnapshotRoundTrip: a replica starts from the latest index
// snapshot another one stored, and answers searches exactly as the
// original does.
func TestVectorSnapshotRoundTrip(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	w, rd := e.open(t), e.open(t)
	dir := t.TempDir()

	_, err := rd.LatestSnapshot(ctx, "docs")
	require.ErrorIs(t, err, registry.ErrNotFound)

	buildIndex(t, 300, 1, filepath.Join(dir, "v1.qvix"))
	s1, err := w.PutSnapshotFile(ctx, "docs", filepath.Join(dir, "v1.qvix"))
	require.NoError(t, err)
	require.Equal(t, int64(1), s1.Number)
	orig := buildIndex(t, 500, 2, filepath.Join(dir, "v2.qvix"))
	s2, err := w.PutSnapshotFile(ctx, "docs", filepath.Join(dir, "v2.qvix"))
	require.NoError(t, err)
	require.Equal(t, int64(2), s2.Number)
	st, err := os.Stat(filepath.Join(dir, "v2.qvix"))
	require.NoError(t, err)
	require.Equal(t, st.Size(), s2.Size)

	latest, err := rd.LatestSnapshot(ctx, "docs")
	require.NoError(t, err)
	require.Equal(t, s2, latest)

	dst := filepath.Join(t.TempDir(), "replica.qvix")
	got, err := rd.GetSnapshot(ctx, "docs", dst)
	require.NoError(t, err)
	require.Equal(t, s2, got)
	loaded, err := vector.LoadHNSW[string](ctx, dst, vector.Options{})
	require.NoError(t, err)
	require.Equal(t, orig.Len(), loaded.Len())
	rng := rand.New(rand.NewPCG(9, 9))
	for range 20 {
		q := make([]float32, 16)
		for j := range q {
			q[j] = float32(rng.NormFloat64())
		}
		want, err := orig.Search(ctx, q, 10, vector.SearchOptions{Filter: vector.Eq("shard", 1)})
		require.NoError(t, err)
		have, err := loaded.Search(ctx, q, 10, vector.SearchOptions{Filter: vector.Eq("shard", 1)})
		require.NoError(t, err)
		require.Equal(t, want, have)
	}

	old := filepath.Join(t.TempDir(), "old.qvix")
	_, err = rd.GetSnapshotNumber(ctx, "docs", 1, old)
	require.NoError(t, err)
	first, err := vector.LoadHNSW[string](ctx, old, vector.Options{})
	require.NoError(t, err)
	require.Equal(t, 300, first.Len())

	list, err := rd.Snapshots(ctx, "docs")
	require.NoError(t, err)
	require.Equal(t, []SnapshotInfo{s1, s2}, list)

	// A damaged object is caught before it replaces anything.
	key := w.snapshotPrefix("docs") + s2.Object
	path := e.objectPath(w, key)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0xff
	require.NoError(t, os.WriteFile(path, bad, 0o644))
	_, err = rd.GetSnapshot(ctx, "docs", dst)
	require.ErrorIs(t, err, registry.ErrChecksum)
	kept, err := os.ReadFile(dst)
	require.NoError(t, err)
	st2, err := os.ReadFile(filepath.Join(dir, "v2.qvix"))
	require.NoError(t, err)
	require.Equal(t, st2, kept, "the previous download is left as it was")
	require.NoError(t, os.WriteFile(path, data[:len(data)-5], 0o644))
	_, err = rd.GetSnapshot(ctx, "docs", filepath.Join(t.TempDir(), "x.qvix"))
	require.ErrorIs(t, err, registry.ErrChecksum, "truncated")
	require.NoError(t, os.WriteFile(path, data, 0o644))

	// Retention keeps the newest and the latest pointer's target.
	for range 3 {
		_, err := w.PutSnapshot(ctx, "docs", bytes.NewReader(data))
		require.NoError(t, err)
	}
	removed, err := w.PruneSnapshots(ctx, "docs", 2)
	require.NoError(t, err)
	require.Equal(t, 3, removed)
	list, err = rd.Snapshots(ctx, "docs")
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, []int64{4, 5}, []int64{list[0].Number, list[1].Number})
	_, err = rd.GetSnapshotNumber(ctx, "docs", 1, filepath.Join(t.TempDir(), "gone"))
	require.ErrorIs(t, err, registry.ErrNotFound)
	objs, err := w.list(ctx, w.snapshotPrefix("docs")+"data/", true, "")
	require.NoError(t, err)
	require.Len(t, objs, 2, "pruned snapshots' bytes are removed")

	_, err = w.PutSnapshot(ctx, "../x", bytes.NewReader(nil))
	require.ErrorIs(t, err, registry.ErrInvalidName)
	_, err = w.PutSnapshotFile(ctx, "docs", t.TempDir())
	require.ErrorIs(t, err, registry.ErrBadInput)
}

// TestConcurrentSnapshots: writers in two Stores commit distinct numbers,
// and the latest pointer ends on the highest.
func TestConcurrentSnapshots(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	stores := []*Store{e.open(t), e.open(t)}
	const each = 5
	type result struct {
		si   SnapshotInfo
		body string
		err  error
	}
	results := make(chan result, 2*2*each)
	var wg sync.WaitGroup
	for i, s := range stores {
		for g := range 2 {
			wg.Go(func() {
				for k := range each {
					body := fmt.Sprintf("index from store %d goroutine %d #%d", i, g, k)
					si, err := s.PutSnapshot(ctx, "idx", bytes.NewReader([]byte(body)))
					results <- result{si, body, err}
				}
			})
		}
	}
	wg.Wait()
	close(results)
	bodies := map[int64]string{}
	for r := range results {
		require.NoError(t, r.err)
		_, dup := bodies[r.si.Number]
		require.False(t, dup, "snapshot %d committed twice", r.si.Number)
		bodies[r.si.Number] = r.body
	}
	require.Len(t, bodies, 20)
	latest, err := stores[0].LatestSnapshot(ctx, "idx")
	require.NoError(t, err)
	require.Equal(t, int64(20), latest.Number, "the pointer never moves back")
	for n, body := range bodies {
		dst := filepath.Join(t.TempDir(), "s")
		_, err := stores[1].GetSnapshotNumber(ctx, "idx", n, dst)
		require.NoError(t, err)
		data, err := os.ReadFile(dst)
		require.NoError(t, err)
		require.Equal(t, body, string(data))
	}
}
