package coderimport_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/coder/hnsw"
	"github.com/quiverml/quiver/vector"
	"github.com/quiverml/quiver/vector/coderimport"
	"github.com/stretchr/testify/require"
)

func exportGraph[K string | uint64](t *testing.T, n, dim int, key func(int) K, dist hnsw.DistanceFunc) ([]byte, map[K][]float32) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	g := hnsw.NewGraph[K]()
	g.Distance = dist
	g.Rng = nil
	want := map[K][]float32{}
	for i := 0; i < n; i++ {
		v := make([]float32, dim)
		for j := range v {
			v[j] = r.Float32()*2 - 1
		}
		want[key(i)] = v
		g.Add(hnsw.MakeNode(key(i), v))
	}
	var buf bytes.Buffer
	require.NoError(t, g.Export(&buf))
	return buf.Bytes(), want
}

func TestImportUint64(t *testing.T) {
	ctx := context.Background()
	data, want := exportGraph(t, 300, 8, func(i int) uint64 { return uint64(i * 7) }, hnsw.EuclideanDistance)
	idx, err := vector.NewHNSW[uint64](vector.Options{Dim: 8})
	require.NoError(t, err)
	n, err := coderimport.Import(ctx, bytes.NewReader(data), idx)
	require.NoError(t, err)
	require.Equal(t, 300, n)
	require.Equal(t, 300, idx.Len())
	self := 0
	for k, v := range want {
		got, ok := idx.Get(k)
		require.True(t, ok, "key %d", k)
		require.Equal(t, v, got.Vector)
		res, err := idx.Search(ctx, v, 1, vector.SearchOptions{})
		require.NoError(t, err)
		if res[0].ID == k {
			self++
		}
	}
	// approximate search: allow the odd miss of a parallel build
	require.GreaterOrEqual(t, self, len(want)*99/100)
}

func TestImportStringCosine(t *testing.T) {
	ctx := context.Background()
	data, want := exportGraph(t, 200, 6, func(i int) string { return fmt.Sprintf("doc-%d", i) }, hnsw.CosineDistance)
	idx, err := vector.NewFlat[string](vector.FlatOptions{Dim: 6, Metric: vector.Cosine})
	require.NoError(t, err)
	n, err := coderimport.Import(ctx, bytes.NewReader(data), idx)
	require.NoError(t, err)
	require.Equal(t, len(want), n)
	for k, v := range want {
		res, err := idx.Search(ctx, v, 1, vector.SearchOptions{})
		require.NoError(t, err)
		require.Equal(t, k, res[0].ID)
	}
}

func TestImportErrors(t *testing.T) {
	ctx := context.Background()
	data, _ := exportGraph(t, 50, 4, func(i int) uint64 { return uint64(i) }, hnsw.EuclideanDistance)
	cases := []struct {
		name string
		in   []byte
		dst  vector.Index[uint64]
	}{
		{"truncated", data[:len(data)/2], mustFlat(t, 4, vector.L2)},
		{"empty", nil, mustFlat(t, 4, vector.L2)},
		{"metric mismatch", data, mustFlat(t, 4, vector.Cosine)},
		{"dimension mismatch", data, mustFlat(t, 5, vector.L2)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := coderimport.Import(ctx, bytes.NewReader(c.in), c.dst)
			require.Error(t, err)
			require.Zero(t, c.dst.Len(), "nothing imported")
		})
	}
	_, err := coderimport.Import(ctx, bytes.NewReader(data[:len(data)/2]), mustFlat(t, 4, vector.L2))
	require.ErrorIs(t, err, coderimport.ErrFormat)
	_, err = coderimport.Import(ctx, bytes.NewReader(data), mustFlat(t, 5, vector.L2))
	require.ErrorIs(t, err, vector.ErrDimension)
}

func mustFlat(t *testing.T, dim int, m vector.Metric) vector.Index[uint64] {
	t.Helper()
	f, err := vector.NewFlat[uint64](vector.FlatOptions{Dim: dim, Metric: m})
	require.NoError(t, err)
	return f
}

func FuzzImport(f *testing.F) {
	var buf bytes.Buffer
	g := hnsw.NewGraph[string]()
	g.Distance = hnsw.EuclideanDistance
	for i := 0; i < 20; i++ {
		g.Add(hnsw.MakeNode(fmt.Sprint(i), []float32{float32(i), 1, 2}))
	}
	if err := g.Export(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:30])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		idx, err := vector.NewFlat[string](vector.FlatOptions{Dim: 3})
		require.NoError(t, err)
		n, err := coderimport.Import(context.Background(), bytes.NewReader(b), idx)
		if err != nil {
			require.Zero(t, idx.Len())
			return
		}
		require.Equal(t, n, idx.Len())
	})
}
