package vector

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSearchDuringMutationReturnsFullResults searches while items are added,
// or deleted and compacted, and checks every result set against what the
// index is known to hold: no error, closest first, no duplicates, no id that
// no Add has been called for or whose Delete has returned, and exactly k
// results, because at least k items stay live throughout. A node that
// becomes reachable before its own lists are written ends a walk at once
// and returns short result sets, a few per second of such load.
func TestSearchDuringMutationReturnsFullResults(t *testing.T) {
	const (
		dim      = 8
		preload  = 2000
		k        = 10
		duration = 1500 * time.Millisecond
	)
	data, queries := clustered(preload+40000, 64, dim, 12, 21)
	// M=3 puts a third of the nodes on upper layers, where a walk that lands
	// on a node still being linked descends into its lists; with M=2 even a
	// graph built on one goroutine has small islands now and then, which
	// would fail the test for a reason other than the one it looks for.
	cases := []struct {
		name string
		opts Options
		// mutate runs until stop is closed or its work ends; it raises
		// maxID before adding ids below it and raises deletedBelow after
		// deleting the ids below it.
		mutate func(ctx context.Context, h *HNSW[uint64], stop <-chan struct{}, maxID, deletedBelow *atomic.Uint64) error
	}{
		{
			name: "add",
			opts: Options{Dim: dim, M: 3, EfConstruction: 16, Workers: 4, CompactRatio: -1},
			mutate: func(ctx context.Context, h *HNSW[uint64], stop <-chan struct{}, maxID, _ *atomic.Uint64) error {
				for lo := preload; lo+100 <= len(data); lo += 100 {
					select {
					case <-stop:
						return nil
					default:
					}
					batch := items(data[lo : lo+100])
					for j := range batch {
						batch[j].ID = uint64(lo + j)
					}
					maxID.Store(uint64(lo + 100))
					if err := h.Add(ctx, batch...); err != nil {
						return err
					}
				}
				return nil
			},
		},
		{
			name: "delete and compact",
			opts: Options{Dim: dim, M: 4, EfConstruction: 32, Workers: 4, CompactRatio: 0.2},
			mutate: func(ctx context.Context, h *HNSW[uint64], stop <-chan struct{}, _, deletedBelow *atomic.Uint64) error {
				// Keep the last k*10 items live.
				for lo := 0; lo+25 <= preload-10*k; lo += 25 {
					select {
					case <-stop:
						return nil
					default:
					}
					ids := make([]uint64, 25)
					for j := range ids {
						ids[j] = uint64(lo + j)
					}
					n, err := h.Delete(ctx, ids...)
					if err != nil {
						return err
					}
					if n != len(ids) {
						return fmt.Errorf("deleted %d of %d ids", n, len(ids))
					}
					deletedBelow.Store(uint64(lo + 25))
					if lo%500 == 0 {
						if err := h.Compact(ctx); err != nil {
							return err
						}
					}
				}
				return nil
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			h := must(NewHNSW[uint64](c.opts))
			require.NoError(t, h.Add(ctx, items(data[:preload])...))
			var maxID, deletedBelow atomic.Uint64
			maxID.Store(preload)
			stop := make(chan struct{})
			errs := make(chan error, 16)
			report := func(err error) {
				select {
				case errs <- err:
				default: // enough to fail on
				}
			}
			var mutators, searchers sync.WaitGroup
			mutators.Go(func() {
				if err := c.mutate(ctx, h, stop, &maxID, &deletedBelow); err != nil {
					report(fmt.Errorf("mutate: %w", err))
				}
			})
			var searches, short atomic.Int64
			for g := range 4 {
				searchers.Go(func() {
					r := rand.New(rand.NewPCG(uint64(g), 99))
					for {
						select {
						case <-stop:
							return
						default:
						}
						q := queries[r.IntN(len(queries))]
						gone := deletedBelow.Load()
						res, err := h.Search(ctx, q, k, SearchOptions{})
						top := maxID.Load()
						searches.Add(1)
						if err != nil {
							report(fmt.Errorf("search: %w", err))
							return
						}
						if err := checkResults(res, k, gone, top); err != nil {
							short.Add(1)
							report(err)
						}
					}
				})
			}
			timer := time.NewTimer(duration)
			done := make(chan struct{})
			go func() { mutators.Wait(); close(done) }()
			select {
			case <-timer.C:
			case <-done:
			}
			timer.Stop()
			close(stop)
			mutators.Wait()
			searchers.Wait()
			close(errs)
			t.Logf("%d searches, %d bad result sets", searches.Load(), short.Load())
			for err := range errs {
				require.NoError(t, err)
			}
			require.Positive(t, searches.Load())
		})
	}
}

// checkResults checks one result set of an unfiltered search: exactly k
// results, closest first, distinct, every id in [gone, top).
func checkResults(res []Result[uint64], k int, gone, top uint64) error {
	if len(res) != k {
		ids := make([]uint64, len(res))
		for i, r := range res {
			ids[i] = r.ID
		}
		return fmt.Errorf("got %d results, want %d: %v", len(res), k, ids)
	}
	seen := make(map[uint64]bool, len(res))
	for i, r := range res {
		if seen[r.ID] {
			return fmt.Errorf("id %d returned twice", r.ID)
		}
		seen[r.ID] = true
		if r.ID < gone {
			return fmt.Errorf("id %d returned after its Delete returned (deleted below %d)", r.ID, gone)
		}
		if r.ID >= top {
			return fmt.Errorf("id %d returned before it was added (added below %d)", r.ID, top)
		}
		if i > 0 && r.Distance < res[i-1].Distance {
			return fmt.Errorf("result %d at distance %v after %v: not sorted", i, r.Distance, res[i-1].Distance)
		}
	}
	return nil
}
