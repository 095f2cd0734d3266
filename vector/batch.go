package vector

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// BatchSearcher is the optional interface of an index that searches many
// queries in one call. HNSW and Flat implement it; SearchBatch uses it when
// an Index does and otherwise runs the index's Search on every core.
type BatchSearcher[K Key] interface {
	// SearchBatch returns, for every query, what Search would return for
	// it, in query order.
	SearchBatch(ctx context.Context, queries [][]float32, k int, opts SearchOptions) ([][]Result[K], error)
}

// SearchBatch searches idx for every query: through idx's own SearchBatch
// when it implements BatchSearcher, else by calling idx.Search on up to
// GOMAXPROCS goroutines. The contract is BatchSearcher's.
func SearchBatch[K Key](ctx context.Context, idx Index[K], queries [][]float32, k int, opts SearchOptions) ([][]Result[K], error) {
	if b, ok := idx.(BatchSearcher[K]); ok {
		return b.SearchBatch(ctx, queries, k, opts)
	}
	if err := checkBatch(ctx, queries, k, idx.Dim(), idx.Metric()); err != nil {
		return nil, err
	}
	return runBatch(ctx, queries, runtime.GOMAXPROCS(0), func(ctx context.Context, q []float32) ([]Result[K], error) {
		return idx.Search(ctx, q, k, opts)
	})
}

// SearchBatch runs Search for every query on up to Options.Workers
// goroutines and returns the results in query order: results[i] holds
// exactly what Search(ctx, queries[i], k, opts) returns (the same items in
// the same order with the same distances), since each query walks the
// graph on its own.
//
// Every query is validated before any is searched: a query of the wrong
// dimension or holding NaN or Inf fails the whole call with an error that
// names its index and wraps ErrDimension, ErrInvalidVector or ErrZeroVector.
// A cancelled ctx stops the batch between queries and returns ctx.Err()
// wrapped; no partial results are returned. Concurrent inserts and deletes
// are allowed, as for Search; each query then sees the index as it is when
// that query runs.
func (h *HNSW[K]) SearchBatch(ctx context.Context, queries [][]float32, k int, opts SearchOptions) ([][]Result[K], error) {
	if h.closed.Load() {
		return nil, ErrClosed
	}
	if err := checkBatch(ctx, queries, k, h.dim, h.opts.Metric); err != nil {
		return nil, err
	}
	return runBatch(ctx, queries, h.opts.Workers, func(ctx context.Context, q []float32) ([]Result[K], error) {
		return h.Search(ctx, q, k, opts)
	})
}

// SearchBatch returns, for every query, what Search(ctx, queries[i], k,
// opts) returns (the same items in the same order with the same
// distances), with the contract of HNSW.SearchBatch: bad queries are named
// by index before any search runs, and a cancelled ctx stops the batch.
//
// Unlike many calls of Search, it scans the vectors once per group of up to
// 8 queries: each tile of vectors (about 64 KiB) is read from memory once
// and compared with every query of the group, and the filter is evaluated
// once per item for the whole group. Groups run on up to
// FlatOptions.Workers goroutines. A cancelled ctx stops a group between
// tiles and the batch before the next group.
func (f *Flat[K]) SearchBatch(ctx context.Context, queries [][]float32, k int, opts SearchOptions) ([][]Result[K], error) {
	f.mu.RLock()
	closed := f.closed
	f.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if err := checkBatch(ctx, queries, k, f.dim, f.metric); err != nil {
		return nil, err
	}
	out := make([][]Result[K], len(queries))
	groups := (len(queries) + flatGroup - 1) / flatGroup
	err := forEach(ctx, groups, f.workers, func(ctx context.Context, g int) error {
		lo, hi := g*flatGroup, min(len(queries), (g+1)*flatGroup)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("vector: search batch stopped before query %d of %d: %w", lo, len(queries), err)
		}
		if err := f.scanGroup(ctx, queries[lo:hi], k, opts, out[lo:hi]); err != nil {
			return fmt.Errorf("vector: search batch: queries %d to %d of %d: %w", lo, hi-1, len(queries), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// flatGroup is how many queries one scan of a Flat index serves.
const flatGroup = 8

// flatTileBytes sizes the tile of vectors a group's queries go through
// together: small enough to stay in the core's L2 cache while they do.
const flatTileBytes = 64 << 10

// scanGroup fills out[j] with the k nearest items to queries[j], scanning
// the vectors once for all of them in tiles. For each query the items are
// visited in index order with the distance Search uses, so each heap, and
// so each result, is exactly Search's.
func (f *Flat[K]) scanGroup(ctx context.Context, queries [][]float32, k int, opts SearchOptions, out [][]Result[K]) error {
	qs := make([][]float32, len(queries))
	buf := make([]float32, len(queries)*f.dim)
	for j, q := range queries {
		qs[j], _ = prepareQuery(q, f.dim, f.metric, buf[j*f.dim:(j+1)*f.dim]) // checked by checkBatch
	}
	heaps := make([]maxHeap, len(queries))
	for j := range heaps {
		heaps[j] = make(maxHeap, 0, k)
	}
	tile := max(16, flatTileBytes/(4*f.dim))
	var match []bool
	if opts.Filter != nil {
		match = make([]bool, tile)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return ErrClosed
	}
	f.st.searches.Add(int64(len(queries)))
	n := len(f.keys)
	for lo := 0; lo < n; lo += tile {
		if lo > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		hi := min(n, lo+tile)
		for i := lo; i < hi && match != nil; i++ {
			match[i-lo] = opts.Filter.Match(f.meta[i])
		}
		for j, q := range qs {
			res := heaps[j]
			for i := lo; i < hi; i++ {
				if match != nil && !match[i-lo] {
					continue
				}
				res.keep(k, cand{f.dist(q, f.vecs[i*f.dim:(i+1)*f.dim]), uint32(i)})
			}
			heaps[j] = res
		}
	}
	for j := range heaps {
		out[j] = f.results(&heaps[j])
	}
	return nil
}

// checkBatch validates k, ctx and every query of a batch up front, so that
// a bad query fails the call before any work is done.
func checkBatch(ctx context.Context, queries [][]float32, k, dim int, m Metric) error {
	if err := checkK(k); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("vector: search batch: %w", err)
	}
	var buf []float32
	if m == Cosine {
		buf = make([]float32, dim)
	}
	for i, q := range queries {
		if _, err := prepareQuery(q, dim, m, buf); err != nil {
			return fmt.Errorf("vector: search batch: query %d of %d: %w", i, len(queries), err)
		}
	}
	return nil
}

// runBatch calls search for every query on up to workers goroutines, which
// take the next query from a shared counter (queries differ in cost, so a
// static split would leave cores idle). The first error stops the others
// before their next query.
func runBatch[K Key](ctx context.Context, queries [][]float32, workers int, search func(context.Context, []float32) ([]Result[K], error)) ([][]Result[K], error) {
	out := make([][]Result[K], len(queries))
	err := forEach(ctx, len(queries), workers, func(ctx context.Context, i int) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("vector: search batch stopped before query %d of %d: %w", i, len(queries), err)
		}
		res, err := search(ctx, queries[i])
		if err != nil {
			return fmt.Errorf("vector: search batch: query %d of %d: %w", i, len(queries), err)
		}
		out[i] = res
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// forEach calls do(ctx, i) for i in [0, n) on up to workers goroutines,
// which take the next i from a shared counter. The first error stops the
// others before their next call (they see ctx cancelled) and is returned.
func forEach(ctx context.Context, n, workers int, do func(context.Context, int) error) error {
	if n == 0 {
		return nil
	}
	workers = max(1, min(workers, n))
	var next atomic.Int64
	work := func(ctx context.Context) error {
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return nil
			}
			if err := do(ctx, i); err != nil {
				return err
			}
		}
	}
	if workers == 1 {
		return work(ctx)
	}
	g, gctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error { return work(gctx) })
	}
	// A worker stopped by another's failure reports the group's
	// cancellation; errgroup keeps the first error, the cause.
	return g.Wait()
}
