package vector

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/quiverml/quiver/internal/simd"
	"github.com/quiverml/quiver/quant"
	"github.com/stretchr/testify/require"
)

func TestDotInt8MatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 5, 15, 16, 17, 31, 32, 33, 48, 100, 128, 384} {
		a := make([]int8, n)
		b := make([]int8, n)
		for i := range a {
			a[i] = int8(r.IntN(255) - 127)
			b[i] = int8(r.IntN(255) - 127)
		}
		want := quant.DotInt8(a, b)
		require.Equal(t, want, dotInt8(a, b), "n=%d", n)
		require.Equal(t, want, simd.DotInt8Go(a, b), "n=%d", n)
	}
}

func TestEncodeInt8(t *testing.T) {
	code := make([]int8, 4)
	s := encodeInt8(code, []float32{1, -2, 0.5, 0})
	require.InDelta(t, 2.0/127, s, 1e-7)
	require.Equal(t, []int8{64, -127, 32, 0}, code)
	require.Zero(t, encodeInt8(code, []float32{0, 0, 0, 0}))
	require.Equal(t, []int8{0, 0, 0, 0}, code)
}

func TestQuantizedRecall(t *testing.T) {
	ctx := context.Background()
	for _, m := range []Metric{L2, Cosine, InnerProduct} {
		t.Run(m.String(), func(t *testing.T) {
			data, queries := clustered(1500, 40, 32, 15, 11)
			if m == InnerProduct {
				data, queries = normalizeAll(data), normalizeAll(queries)
			}
			truth := groundTruth(data, queries, 10, m)
			h := buildHNSW(t, data, Options{Dim: 32, Metric: m, EfConstruction: 64, Quantization: QuantInt8})
			got := searchAll(t, h, queries, 10, SearchOptions{Ef: 32})
			r := recallAt(got, truth)
			t.Logf("int8 %s recall@10 = %.3f", m, r)
			require.GreaterOrEqual(t, r, 0.95)
			// distances are re-scored on floats: exact for the returned items
			res, err := h.Search(ctx, queries[0], 3, SearchOptions{})
			require.NoError(t, err)
			for _, x := range res {
				it, _ := h.Get(x.ID)
				q, _ := prepareQuery(queries[0], 32, m, make([]float32, 32))
				require.InDelta(t, distFunc(m)(q, it.Vector), x.Distance, 1e-5)
			}
			st := h.Stats()
			require.Greater(t, st.BytesPerVector, float64(32*4+32))

			// Saved without codes, loaded with them (and the reverse).
			path := filepath.Join(t.TempDir(), "q")
			require.NoError(t, h.Save(ctx, path))
			g, err := LoadHNSW[uint64](ctx, path, Options{Quantization: QuantInt8})
			require.NoError(t, err)
			require.Equal(t, got, searchAll(t, g, queries, 10, SearchOptions{Ef: 32}))
			plain, err := LoadHNSW[uint64](ctx, path, Options{})
			require.NoError(t, err)
			require.GreaterOrEqual(t, recallAt(searchAll(t, plain, queries, 10, SearchOptions{Ef: 32}), truth), 0.95)
		})
	}
}
