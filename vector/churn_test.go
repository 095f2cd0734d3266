package vector

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestChurnBounded adds and deletes many rounds: compaction must reclaim
// the slots (capacity stays bounded) and recall must hold.
func TestChurnBounded(t *testing.T) {
	ctx := context.Background()
	const live, dim = 1000, 16
	data, queries := clustered(live*4, 30, dim, 10, 8)
	h := must(NewHNSW[uint64](Options{Dim: dim, EfConstruction: 64, Capacity: 256, CompactRatio: 0.2}))
	require.NoError(t, h.Add(ctx, items(data[:live])...))
	next := live
	for round := 0; round < 12; round++ {
		// delete the oldest 250, add 250 new
		var del []uint64
		for id := next - live; id < next-live+250; id++ {
			del = append(del, uint64(id))
		}
		n, err := h.Delete(ctx, del...)
		require.NoError(t, err)
		require.Equal(t, 250, n)
		batch := make([]Item[uint64], 250)
		for i := range batch {
			id := next + i
			batch[i] = Item[uint64]{ID: uint64(id), Vector: data[id%len(data)]}
		}
		require.NoError(t, h.Add(ctx, batch...))
		next += 250
		require.Equal(t, live, h.Len())
	}
	st := h.Stats()
	require.Greater(t, st.Compactions, int64(5))
	require.LessOrEqual(t, st.Slots, 2048, "12 rounds x 250 churned items must reuse slots")

	// recall over the live set, against exact search
	require.NoError(t, h.Compact(ctx))
	f := must(NewFlat[uint64](FlatOptions{Dim: dim}))
	for id := next - live; id < next; id++ {
		require.NoError(t, f.Add(ctx, Item[uint64]{ID: uint64(id), Vector: data[id%len(data)]}))
	}
	var hit, total int
	for _, q := range queries {
		want, _ := f.Search(ctx, q, 10, SearchOptions{})
		got, _ := h.Search(ctx, q, 10, SearchOptions{Ef: 64})
		set := map[uint64]bool{}
		for _, r := range got {
			set[r.ID] = true
		}
		for _, r := range want {
			if set[r.ID] {
				hit++
			}
		}
		total += len(want)
	}
	r := float64(hit) / float64(total)
	t.Logf("recall@10 after churn: %.3f, stats %+v", r, st)
	require.GreaterOrEqual(t, r, 0.95)
}

func TestDeleteEverythingThenReuse(t *testing.T) {
	ctx := context.Background()
	data, _ := clustered(300, 1, 8, 3, 9)
	h := must(NewHNSW[uint64](Options{Dim: 8, EfConstruction: 32, CompactRatio: -1}))
	require.NoError(t, h.Add(ctx, items(data)...))
	ids := make([]uint64, len(data))
	for i := range ids {
		ids[i] = uint64(i)
	}
	n, err := h.Delete(ctx, ids...)
	require.NoError(t, err)
	require.Equal(t, 300, n)
	res, err := h.Search(ctx, data[0], 5, SearchOptions{})
	require.NoError(t, err)
	require.Empty(t, res)
	require.NoError(t, h.Compact(ctx))
	require.Equal(t, 300, h.Stats().FreeSlots)
	require.NoError(t, h.Add(ctx, items(data[:10])...))
	res, err = h.Search(ctx, data[4], 1, SearchOptions{})
	require.NoError(t, err)
	require.Equal(t, uint64(4), res[0].ID)
	require.Zero(t, res[0].Distance)
	require.Equal(t, 290, h.Stats().FreeSlots)
}

func TestFilteredSearch(t *testing.T) {
	ctx := context.Background()
	data, queries := clustered(2000, 20, 16, 10, 10)
	h := must(NewHNSW[uint64](Options{Dim: 16, EfConstruction: 64}))
	f := must(NewFlat[uint64](FlatOptions{Dim: 16}))
	its := items(data)
	for i := range its {
		its[i].Metadata = Metadata{"mod10": i % 10, "lang": []string{"en", "fr", "de"}[i%3], "rare": i%500 == 0}
	}
	require.NoError(t, h.Add(ctx, its...))
	require.NoError(t, f.Add(ctx, its...))
	cases := []struct {
		name   string
		filter Filter
		want   int // how many items match
	}{
		{"eq string", Eq("lang", "fr"), 667},
		{"eq number", Eq("mod10", 3), 200},
		{"range", Range("mod10", 2, 4), 600},
		{"set", In("lang", "en", "de"), 1333},
		{"and", And(Eq("lang", "en"), Range("mod10", math.Inf(-1), 4)), 333},
		{"rare: exact scan", Eq("rare", true), 4},
		{"not", Not(Eq("lang", "en")), 1333},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			all, err := f.Search(ctx, queries[0], 5000, SearchOptions{Filter: c.filter})
			require.NoError(t, err)
			require.Len(t, all, c.want, "items matching")
			var hit, total int
			for _, q := range queries {
				want, err := f.Search(ctx, q, 10, SearchOptions{Filter: c.filter})
				require.NoError(t, err)
				require.Len(t, want, min(10, c.want))
				got, err := h.Search(ctx, q, 10, SearchOptions{Filter: c.filter, Ef: 64})
				require.NoError(t, err)
				require.Len(t, got, min(10, c.want), "a selective filter still returns k results")
				set := map[uint64]bool{}
				for _, r := range got {
					require.True(t, c.filter.Match(r.Metadata), "result %d does not match", r.ID)
					set[r.ID] = true
				}
				for _, r := range want {
					if set[r.ID] {
						hit++
					}
				}
				total += len(want)
			}
			require.GreaterOrEqual(t, float64(hit)/float64(total), 0.9)
		})
	}
	require.Positive(t, h.Stats().ExactScans)
}

func TestStatsCollector(t *testing.T) {
	ctx := context.Background()
	h := must(NewHNSW[string](Options{Dim: 2, CompactRatio: -1}))
	require.NoError(t, h.Add(ctx, Item[string]{ID: "a", Vector: []float32{1, 2}}, Item[string]{ID: "b", Vector: []float32{2, 1}}))
	_, err := h.Delete(ctx, "a")
	require.NoError(t, err)
	_, err = h.Search(ctx, []float32{1, 1}, 1, SearchOptions{})
	require.NoError(t, err)
	st := h.Stats()
	require.Equal(t, 1, st.Live)
	require.Equal(t, 1, st.Deleted)
	require.Equal(t, int64(1), st.Searches)
	require.Equal(t, int64(2), st.Inserts)
	require.Positive(t, st.BytesPerVector)

	c := h.Collector(prometheus.Labels{"index": "churn"})
	require.Equal(t, 16, testutil.CollectAndCount(c))
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`
# HELP quiver_vector_items Live items in the index.
# TYPE quiver_vector_items gauge
quiver_vector_items{index="churn"} 1
# HELP quiver_vector_tombstones Deleted items not yet compacted.
# TYPE quiver_vector_tombstones gauge
quiver_vector_tombstones{index="churn"} 1
`), "quiver_vector_items", "quiver_vector_tombstones"))
	// The parts add up to the total; a float index has no codes or mapping.
	var sum float64
	for _, part := range []string{"vectors", "codes", "links", "keys", "metadata"} {
		sum += partBytes(t, c, part)
	}
	require.Equal(t, float64(st.Bytes), sum)
	require.Positive(t, partBytes(t, c, "vectors"))
	require.Zero(t, partBytes(t, c, "codes"))
}

// partBytes returns the value of quiver_vector_memory_part_bytes for part.
func partBytes(t *testing.T, c prometheus.Collector, part string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "quiver_vector_memory_part_bytes" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "part" && lp.GetValue() == part {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no quiver_vector_memory_part_bytes{part=%q}", part)
	return 0
}

func TestFlatStats(t *testing.T) {
	ctx := context.Background()
	f := must(NewFlat[string](FlatOptions{Dim: 4}))
	require.NoError(t, f.Add(ctx, Item[string]{ID: "a", Vector: []float32{1, 2, 3, 4}}, Item[string]{ID: "b", Vector: []float32{4, 3, 2, 1}}))
	_, err := f.Delete(ctx, "a")
	require.NoError(t, err)
	_, err = f.Search(ctx, []float32{1, 1, 1, 1}, 1, SearchOptions{})
	require.NoError(t, err)
	st := f.Stats()
	require.Equal(t, 1, st.Live)
	require.Equal(t, int64(2), st.Inserts)
	require.Equal(t, int64(1), st.Deletes)
	require.Equal(t, int64(1), st.Searches)
	require.GreaterOrEqual(t, st.BytesPerVector, 16.0)
	require.Equal(t, 16, testutil.CollectAndCount(f.Collector(nil)))
	require.Equal(t, st.Bytes, st.Parts.Vectors+st.Parts.Keys+st.Parts.Metadata)
	require.Equal(t, int64(cap(f.vecs))*4, st.Parts.Vectors)
}
