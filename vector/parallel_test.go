package vector

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestParallelBuildKeepsEveryNodeReachable builds small graphs on several
// goroutines (where inserts race for the same link lists) and searches for
// every stored vector: it must come back as its own nearest neighbour. A
// lost in-link makes a node unreachable; under -race scheduling a build
// that overwrote concurrent back-links missed about 1% of the nodes.
func TestParallelBuildKeepsEveryNodeReachable(t *testing.T) {
	ctx := context.Background()
	miss, total := 0, 0
	for rep := 0; rep < 6; rep++ {
		r := rand.New(rand.NewPCG(uint64(rep), 2))
		data := make([][]float32, 300)
		for i := range data {
			data[i] = make([]float32, 8)
			for j := range data[i] {
				data[i][j] = r.Float32()*2 - 1
			}
		}
		h := must(NewHNSW[uint64](Options{Dim: 8, Workers: 4}))
		require.NoError(t, h.Add(ctx, items(data)...))
		for i, v := range data {
			res, err := h.Search(ctx, v, 1, SearchOptions{})
			require.NoError(t, err)
			total++
			if res[0].ID != uint64(i) {
				miss++
			}
		}
	}
	t.Logf("self-search misses: %d of %d", miss, total)
	require.LessOrEqual(t, miss, total/500)
}

// TestStressAllOperations runs every operation at once (adds, upserts,
// deletes that trigger compactions, filtered and plain searches, gets,
// saves, explicit compactions) to shake out races and lock-order deadlocks;
// run under -race.
func TestStressAllOperations(t *testing.T) {
	ctx := context.Background()
	data, queries := clustered(1200, 20, 8, 6, 12)
	h := must(NewHNSW[uint64](Options{Dim: 8, EfConstruction: 32, Capacity: 8, CompactRatio: 0.1, Workers: 2}))
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	report := func(err error) {
		if err != nil {
			select {
			case errs <- err:
			default:
			}
		}
	}
	wg.Go(func() { // writer: batches and single upserts
		for i := 0; i+100 <= len(data); i += 100 {
			batch := items(data[i : i+100])
			for j := range batch {
				batch[j].ID = uint64(i + j)
				batch[j].Metadata = Metadata{"g": (i + j) % 4}
			}
			report(h.Upsert(ctx, batch...))
			report(h.Upsert(ctx, Item[uint64]{ID: uint64(i), Vector: data[i+1], Metadata: Metadata{"g": 9}}))
		}
	})
	wg.Go(func() { // deleter
		r := rand.New(rand.NewPCG(7, 8))
		for i := 0; i < 150; i++ {
			_, err := h.Delete(ctx, uint64(r.IntN(len(data))), uint64(r.IntN(len(data))))
			report(err)
		}
	})
	wg.Go(func() { // saver and compactor
		for i := 0; i < 4; i++ {
			report(h.Save(ctx, filepath.Join(dir, "s")))
			report(h.Compact(ctx))
		}
	})
	for g := 0; g < 2; g++ {
		wg.Go(func() { // readers
			for i := 0; i < 150; i++ {
				q := queries[i%len(queries)]
				var f Filter
				if i%3 == 0 {
					f = Eq("g", 1)
				}
				res, err := h.Search(ctx, q, 5, SearchOptions{Filter: f})
				report(err)
				for _, r := range res {
					if f != nil && !f.Match(r.Metadata) {
						report(fmt.Errorf("result %d does not match the filter", r.ID))
					}
				}
				h.Get(uint64(i))
				h.Stats()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// The final state loads back and answers.
	require.NoError(t, h.Save(ctx, filepath.Join(dir, "final")))
	g, err := LoadHNSW[uint64](ctx, filepath.Join(dir, "final"), Options{})
	require.NoError(t, err)
	require.Equal(t, h.Len(), g.Len())
	require.NoError(t, h.Close())
	require.ErrorIs(t, h.Save(ctx, filepath.Join(dir, "closed")), ErrClosed)
}
