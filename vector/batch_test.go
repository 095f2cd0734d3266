package vector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSearchBatchMatchesSearch checks that a batch returns, for every
// query, exactly what Search returns for it alone: the same ids in the
// same order with the same distances and metadata.
func TestSearchBatchMatchesSearch(t *testing.T) {
	ctx := context.Background()
	data, queries := clustered(1000, 100, 16, 8, 3)
	odd := Eq("odd", true)
	for _, m := range []Metric{L2, Cosine} {
		its := items(data)
		for i := range its {
			its[i].Metadata = Metadata{"odd": i%2 == 1}
		}
		h := must(NewHNSW[uint64](Options{Dim: 16, Metric: m, EfConstruction: 32, Workers: 4}))
		require.NoError(t, h.Add(ctx, its...))
		f := must(NewFlat[uint64](FlatOptions{Dim: 16, Metric: m, Workers: 3}))
		require.NoError(t, f.Add(ctx, its...))
		for _, tc := range []struct {
			name string
			idx  Index[uint64]
			opts SearchOptions
		}{
			{"hnsw", h, SearchOptions{Ef: 32}},
			{"hnsw-filter", h, SearchOptions{Ef: 32, Filter: odd}},
			{"flat", f, SearchOptions{}},
			{"flat-filter", f, SearchOptions{Filter: odd}},
			{"generic", onlyIndex[uint64]{h}, SearchOptions{Ef: 24}},
		} {
			t.Run(m.String()+"/"+tc.name, func(t *testing.T) {
				got, err := SearchBatch(ctx, tc.idx, queries, 10, tc.opts)
				require.NoError(t, err)
				require.Len(t, got, len(queries))
				for i, q := range queries {
					want, err := tc.idx.Search(ctx, q, 10, tc.opts)
					require.NoError(t, err)
					require.Len(t, want, 10)
					require.Equal(t, want, got[i], "query %d", i)
				}
			})
		}
	}
}

// onlyIndex hides an index's SearchBatch, so SearchBatch takes its
// generic path.
type onlyIndex[K Key] struct{ Index[K] }

func TestSearchBatchEmptyAndSingle(t *testing.T) {
	ctx := context.Background()
	data, queries := clustered(200, 1, 8, 4, 1)
	h := buildHNSW(t, data, Options{Dim: 8, EfConstruction: 32})
	got, err := h.SearchBatch(ctx, nil, 5, SearchOptions{})
	require.NoError(t, err)
	require.Empty(t, got)
	got, err = h.SearchBatch(ctx, queries, 5, SearchOptions{})
	require.NoError(t, err)
	want, err := h.Search(ctx, queries[0], 5, SearchOptions{})
	require.NoError(t, err)
	require.Equal(t, [][]Result[uint64]{want}, got)

	empty := must(NewHNSW[uint64](Options{Dim: 8}))
	got, err = empty.SearchBatch(ctx, queries, 5, SearchOptions{})
	require.NoError(t, err)
	require.Equal(t, [][]Result[uint64]{{}}, got)
}

func TestSearchBatchBadInput(t *testing.T) {
	ctx := context.Background()
	data, queries := clustered(300, 6, 8, 4, 2)
	h := buildHNSW(t, data, Options{Dim: 8, Metric: Cosine, EfConstruction: 32})
	f := must(NewFlat[uint64](FlatOptions{Dim: 8, Metric: Cosine}))
	require.NoError(t, f.Add(ctx, items(data)...))
	bad := func(i int, v []float32) [][]float32 {
		qs := append([][]float32(nil), queries...)
		qs[i] = v
		return qs
	}
	nan := make([]float32, 8)
	nan[5] = float32(math.NaN())
	for _, idx := range []Index[uint64]{h, f, onlyIndex[uint64]{h}} {
		for _, tc := range []struct {
			name    string
			queries [][]float32
			k       int
			want    error
			msg     string
		}{
			{"short query", bad(3, make([]float32, 7)), 10, ErrDimension, "query 3 of 6: vector: wrong dimension: query has 7 elements, want 8"},
			{"nil query", bad(0, nil), 10, ErrDimension, "query 0 of 6"},
			{"NaN", bad(5, nan), 10, ErrInvalidVector, "query 5 of 6: vector: vector holds NaN or Inf: query element 5 is NaN"},
			{"zero under cosine", bad(2, make([]float32, 8)), 10, ErrZeroVector, "query 2 of 6"},
			{"k=0", queries, 0, ErrInvalidK, "got 0"},
		} {
			t.Run(fmt.Sprintf("%T/%s", idx, tc.name), func(t *testing.T) {
				got, err := SearchBatch(ctx, idx, tc.queries, tc.k, SearchOptions{})
				require.ErrorIs(t, err, tc.want)
				require.ErrorContains(t, err, tc.msg)
				require.Nil(t, got)
			})
		}
	}
	require.NoError(t, h.Close())
	_, err := h.SearchBatch(ctx, queries, 10, SearchOptions{})
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, f.Close())
	_, err = f.SearchBatch(ctx, queries, 10, SearchOptions{})
	require.ErrorIs(t, err, ErrClosed)
}

// scripted is an index whose Search runs a hook, to stop a batch at a
// chosen query.
type scripted struct {
	Index[uint64]
	calls atomic.Int64
	hook  func(call int64) error
}

func (s *scripted) Search(ctx context.Context, q []float32, k int, o SearchOptions) ([]Result[uint64], error) {
	if err := s.hook(s.calls.Add(1)); err != nil {
		return nil, err
	}
	return s.Index.Search(ctx, q, k, o)
}

func TestSearchBatchStops(t *testing.T) {
	data, queries := clustered(200, 400, 8, 4, 4)
	f := must(NewFlat[uint64](FlatOptions{Dim: 8}))
	require.NoError(t, f.Add(context.Background(), items(data)...))

	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := f.SearchBatch(ctx, queries, 10, SearchOptions{})
		require.ErrorIs(t, err, context.Canceled)
	})
	t.Run("cancelled between queries", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := &scripted{Index: f, hook: func(call int64) error {
			if call == 5 {
				cancel()
			}
			return nil
		}}
		got, err := SearchBatch(ctx, Index[uint64](s), queries, 10, SearchOptions{})
		require.ErrorIs(t, err, context.Canceled)
		require.Nil(t, got)
		// Searches already running when the context was cancelled finish;
		// no worker starts another.
		require.Less(t, s.calls.Load(), int64(5+64))
	})
	t.Run("cancelled between queries, one worker", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		one := must(NewFlat[uint64](FlatOptions{Dim: 8, Workers: 1}))
		require.NoError(t, one.Add(ctx, items(data)...))
		var matches atomic.Int64
		filter := FilterFunc(func(Metadata) bool {
			if matches.Add(1) == 1 {
				cancel() // during the first group: the second must not start
			}
			return true
		})
		_, err := one.SearchBatch(ctx, queries, 10, SearchOptions{Filter: filter})
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorContains(t, err, "before query 8 of 400", "the first group of 8 queries ran")
		require.Equal(t, int64(len(data)), matches.Load(), "the filter runs once per item for a whole group")
	})
	t.Run("failing query", func(t *testing.T) {
		boom := errors.New("boom")
		s := &scripted{Index: f, hook: func(call int64) error {
			if call == 7 {
				return boom
			}
			return nil
		}}
		_, err := runBatch(context.Background(), queries, 4, func(ctx context.Context, q []float32) ([]Result[uint64], error) {
			return s.Search(ctx, q, 10, SearchOptions{})
		})
		require.ErrorIs(t, err, boom)
		require.Regexp(t, `^vector: search batch: query \d+ of 400: boom$`, err.Error())
		require.Less(t, s.calls.Load(), int64(len(queries)))
	})
}

// TestFlatSearchBatchAcrossTiles scans an index of several tiles with a
// number of queries that is not a multiple of the group size: every result
// is exactly Search's, and a cancellation during the first tile stops the
// group before the second.
func TestFlatSearchBatchAcrossTiles(t *testing.T) {
	ctx := context.Background()
	data, queries := clustered(5000, 21, 8, 6, 11)
	its := items(data)
	for i := range its {
		its[i].Metadata = Metadata{"odd": i%2 == 1}
	}
	for _, m := range []Metric{L2, Cosine, InnerProduct} {
		f := must(NewFlat[uint64](FlatOptions{Dim: 8, Metric: m, Workers: 2}))
		require.NoError(t, f.Add(ctx, its...))
		for _, opts := range []SearchOptions{{}, {Filter: Eq("odd", true)}} {
			got, err := f.SearchBatch(ctx, queries, 7, opts)
			require.NoError(t, err)
			for i, q := range queries {
				want, err := f.Search(ctx, q, 7, opts)
				require.NoError(t, err)
				require.Equal(t, want, got[i], "%v query %d filter %v", m, i, opts.Filter != nil)
			}
		}
	}

	f := must(NewFlat[uint64](FlatOptions{Dim: 8, Workers: 1}))
	require.NoError(t, f.Add(ctx, its...))
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var matches atomic.Int64
	filter := FilterFunc(func(Metadata) bool {
		if matches.Add(1) == 1 {
			cancel()
		}
		return true
	})
	_, err := f.SearchBatch(cctx, queries, 7, SearchOptions{Filter: filter})
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "queries 0 to 7 of 21")
	tile := flatTileBytes / (4 * 8)
	require.Equal(t, int64(tile), matches.Load(), "one tile, then the group stops")
}
