package vector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func items(data [][]float32) []Item[uint64] {
	out := make([]Item[uint64], len(data))
	for i, v := range data {
		out[i] = Item[uint64]{ID: uint64(i), Vector: v}
	}
	return out
}

func buildHNSW(t testing.TB, data [][]float32, o Options) *HNSW[uint64] {
	t.Helper()
	h, err := NewHNSW[uint64](o)
	require.NoError(t, err)
	require.NoError(t, h.Add(context.Background(), items(data)...))
	return h
}

func searchAll(t testing.TB, idx Index[uint64], queries [][]float32, k int, o SearchOptions) [][]uint64 {
	t.Helper()
	out := make([][]uint64, len(queries))
	for i, q := range queries {
		res, err := idx.Search(context.Background(), q, k, o)
		require.NoError(t, err)
		for _, r := range res {
			out[i] = append(out[i], r.ID)
		}
	}
	return out
}

func TestHNSWRecall(t *testing.T) {
	for _, m := range []Metric{L2, Cosine, InnerProduct} {
		t.Run(m.String(), func(t *testing.T) {
			n := 5000
			if m != L2 { // same code path after normalisation: keep -race quick
				n = 2000
			}
			data, queries := clustered(n, 100, 32, 20, 1)
			if m == InnerProduct { // MIPS on unit vectors equals cosine ranking
				data = normalizeAll(data)
				queries = normalizeAll(queries)
			}
			truth := groundTruth(data, queries, 10, m)
			h := buildHNSW(t, data, Options{Dim: 32, Metric: m, M: 16, EfConstruction: 64})
			require.Equal(t, len(data), h.Len())
			got := searchAll(t, h, queries, 10, SearchOptions{Ef: 64})
			r := recallAt(got, truth)
			t.Logf("%s recall@10 = %.3f", m, r)
			require.GreaterOrEqual(t, r, 0.95)

			flat, err := NewFlat[uint64](FlatOptions{Dim: 32, Metric: m})
			require.NoError(t, err)
			require.NoError(t, flat.Add(context.Background(), items(data)...))
			require.Equal(t, 1.0, recallAt(searchAll(t, flat, queries, 10, SearchOptions{}), truth))
		})
	}
}

func normalizeAll(v [][]float32) [][]float32 {
	out := make([][]float32, len(v))
	for i := range v {
		out[i], _ = checkVector(v[i], len(v[i]), Cosine)
	}
	return out
}

func TestHNSWResultsSortedAndExactForSmallSets(t *testing.T) {
	ctx := context.Background()
	h, err := NewHNSW[string](Options{Dim: 2})
	require.NoError(t, err)
	require.NoError(t, h.Add(ctx,
		Item[string]{ID: "a", Vector: []float32{0, 0}},
		Item[string]{ID: "b", Vector: []float32{1, 0}},
		Item[string]{ID: "c", Vector: []float32{0, 3}},
	))
	res, err := h.Search(ctx, []float32{0.9, 0}, 3, SearchOptions{})
	require.NoError(t, err)
	require.Len(t, res, 3)
	require.Equal(t, []string{"b", "a", "c"}, []string{res[0].ID, res[1].ID, res[2].ID})
	require.InDelta(t, 0.01, res[0].Distance, 1e-6)
	require.InDelta(t, 0.81, res[1].Distance, 1e-6)

	res, err = h.Search(ctx, []float32{0.9, 0}, 10, SearchOptions{})
	require.NoError(t, err)
	require.Len(t, res, 3, "k above Len returns every item")
	res, err = h.Search(ctx, []float32{0.9, 0}, math.MaxInt, SearchOptions{})
	require.NoError(t, err)
	require.Len(t, res, 3, "a huge k neither overflows nor allocates for k")
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	indexes := map[string]func() Index[string]{
		"hnsw": func() Index[string] {
			h, err := NewHNSW[string](Options{Dim: 3, Metric: Cosine})
			require.NoError(t, err)
			return h
		},
		"flat": func() Index[string] {
			f, err := NewFlat[string](FlatOptions{Dim: 3, Metric: Cosine})
			require.NoError(t, err)
			return f
		},
	}
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	cases := []struct {
		name  string
		items []Item[string]
		want  error
	}{
		{"short vector", []Item[string]{{ID: "x", Vector: []float32{1, 2}}}, ErrDimension},
		{"long vector", []Item[string]{{ID: "x", Vector: []float32{1, 2, 3, 4}}}, ErrDimension},
		{"nan", []Item[string]{{ID: "x", Vector: []float32{1, nan, 3}}}, ErrInvalidVector},
		{"inf", []Item[string]{{ID: "x", Vector: []float32{1, inf, 3}}}, ErrInvalidVector},
		{"zero under cosine", []Item[string]{{ID: "x", Vector: []float32{0, 0, 0}}}, ErrZeroVector},
		{"duplicate in call", []Item[string]{{ID: "x", Vector: []float32{1, 2, 3}}, {ID: "x", Vector: []float32{3, 2, 1}}}, ErrDuplicateID},
		{"duplicate of stored", []Item[string]{{ID: "new", Vector: []float32{1, 2, 3}}, {ID: "kept", Vector: []float32{1, 1, 1}}}, ErrDuplicateID},
		{"bad metadata", []Item[string]{{ID: "x", Vector: []float32{1, 2, 3}, Metadata: Metadata{"f": []int{1}}}}, ErrMetadata},
		{"good then bad", []Item[string]{{ID: "y", Vector: []float32{1, 2, 3}}, {ID: "z", Vector: []float32{1, nan, 3}}}, ErrInvalidVector},
	}
	for name, mk := range indexes {
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				idx := mk()
				require.NoError(t, idx.Add(ctx, Item[string]{ID: "kept", Vector: []float32{1, 0, 0}}))
				err := idx.Add(ctx, c.items...)
				require.ErrorIs(t, err, c.want)
				require.Equal(t, 1, idx.Len(), "nothing half inserted")
				for _, it := range c.items {
					if it.ID != "kept" {
						_, ok := idx.Get(it.ID)
						require.False(t, ok)
					}
				}
				got, ok := idx.Get("kept")
				require.True(t, ok)
				require.Equal(t, []float32{1, 0, 0}, got.Vector)
			})
		}
		t.Run(name+"/search", func(t *testing.T) {
			idx := mk()
			require.NoError(t, idx.Add(ctx, Item[string]{ID: "kept", Vector: []float32{1, 0, 0}}))
			for _, c := range []struct {
				q    []float32
				k    int
				want error
			}{
				{[]float32{1, 0, 0}, 0, ErrInvalidK},
				{[]float32{1, 0, 0}, -1, ErrInvalidK},
				{[]float32{1, 0}, 1, ErrDimension},
				{[]float32{nan, 0, 0}, 1, ErrInvalidVector},
				{[]float32{0, 0, 0}, 1, ErrZeroVector},
			} {
				_, err := idx.Search(ctx, c.q, c.k, SearchOptions{})
				require.ErrorIs(t, err, c.want)
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := idx.Search(cctx, []float32{1, 0, 0}, 1, SearchOptions{})
			require.ErrorIs(t, err, context.Canceled)
			require.NoError(t, idx.Close())
			_, err = idx.Search(ctx, []float32{1, 0, 0}, 1, SearchOptions{})
			require.ErrorIs(t, err, ErrClosed)
			require.ErrorIs(t, idx.Add(ctx, Item[string]{ID: "n", Vector: []float32{1, 0, 0}}), ErrClosed)
		})
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{{}, {Dim: -1}, {Dim: 4, M: 1}, {Dim: 4, Metric: 9}, {Dim: 4, EfSearch: -2}} {
		_, err := NewHNSW[string](o)
		require.ErrorIs(t, err, ErrOptions, "%+v", o)
	}
	_, err := NewFlat[string](FlatOptions{})
	require.ErrorIs(t, err, ErrOptions)
}

func TestUpsertAndDelete(t *testing.T) {
	ctx := context.Background()
	for name, idx := range map[string]Index[uint64]{
		"hnsw": must(NewHNSW[uint64](Options{Dim: 2, CompactRatio: -1})),
		"flat": must(NewFlat[uint64](FlatOptions{Dim: 2})),
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, idx.Add(ctx, Item[uint64]{ID: 1, Vector: []float32{0, 0}}, Item[uint64]{ID: 2, Vector: []float32{5, 5}}))
			require.NoError(t, idx.Upsert(ctx, Item[uint64]{ID: 1, Vector: []float32{10, 10}, Metadata: Metadata{"v": 2}}))
			require.Equal(t, 2, idx.Len())
			it, ok := idx.Get(1)
			require.True(t, ok)
			require.Equal(t, []float32{10, 10}, it.Vector)
			require.Equal(t, 2, it.Metadata["v"], "metadata keeps its Go type")
			res, err := idx.Search(ctx, []float32{0, 0}, 1, SearchOptions{})
			require.NoError(t, err)
			require.Equal(t, uint64(2), res[0].ID, "the old version of 1 is gone")

			n, err := idx.Delete(ctx, 2, 7)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			require.Equal(t, 1, idx.Len())
			res, err = idx.Search(ctx, []float32{5, 5}, 5, SearchOptions{})
			require.NoError(t, err)
			require.Len(t, res, 1)
			require.Equal(t, uint64(1), res[0].ID)
			// a deleted id may be added again
			require.NoError(t, idx.Add(ctx, Item[uint64]{ID: 2, Vector: []float32{5, 5}}))
			require.Equal(t, 2, idx.Len())
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestConcurrentSearchInsertDelete runs searches while other goroutines
// add, upsert and delete; run under -race.
func TestConcurrentSearchInsertDelete(t *testing.T) {
	ctx := context.Background()
	data, queries := clustered(3000, 50, 16, 10, 2)
	h := must(NewHNSW[uint64](Options{Dim: 16, EfConstruction: 64, Capacity: 16, CompactRatio: 0.2}))
	require.NoError(t, h.Add(ctx, items(data[:500])...))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	wg.Go(func() {
		for i := 500; i < len(data); i += 50 {
			batch := items(data[i : i+50])
			for j := range batch {
				batch[j].ID = uint64(i + j)
			}
			if err := h.Add(ctx, batch...); err != nil {
				errs <- fmt.Errorf("add: %w", err)
				return
			}
			if err := h.Upsert(ctx, Item[uint64]{ID: uint64(i), Vector: data[i+1]}); err != nil {
				errs <- fmt.Errorf("upsert: %w", err)
				return
			}
		}
	})
	wg.Go(func() {
		r := rand.New(rand.NewPCG(3, 4))
		for i := 0; i < 300; i++ {
			if _, err := h.Delete(ctx, uint64(r.IntN(500))); err != nil {
				errs <- err
				return
			}
		}
	})
	for g := 0; g < 2; g++ {
		wg.Go(func() {
			for i := 0; i < 200; i++ {
				res, err := h.Search(ctx, queries[i%len(queries)], 10, SearchOptions{Ef: 32})
				if err != nil {
					errs <- err
					return
				}
				for j := 1; j < len(res); j++ {
					if res[j].Distance < res[j-1].Distance {
						errs <- errors.New("results out of order")
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
