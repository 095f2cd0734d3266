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

// SearchBatch runs Search for every query on up to FlatOptions.Workers
// goroutines and returns the results in query order, with the contract of
// HNSW.SearchBatch: results[i] is what Search(ctx, queries[i], k, opts)
// returns, bad queries are named by index before any search runs, and a
// cancelled ctx stops the batch between queries.
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
	return runBatch(ctx, queries, f.workers, func(ctx context.Context, q []float32) ([]Result[K], error) {
		return f.Search(ctx, q, k, opts)
	})
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
	if len(queries) == 0 {
		return out, nil
	}
	workers = max(1, min(workers, len(queries)))
	var next atomic.Int64
	work := func(ctx context.Context) error {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(queries) {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("vector: search batch stopped before query %d of %d: %w", i, len(queries), err)
			}
			res, err := search(ctx, queries[i])
			if err != nil {
				return fmt.Errorf("vector: search batch: query %d of %d: %w", i, len(queries), err)
			}
			out[i] = res
		}
	}
	if workers == 1 {
		if err := work(ctx); err != nil {
			return nil, err
		}
		return out, nil
	}
	g, gctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error { return work(gctx) })
	}
	if err := g.Wait(); err != nil {
		// A worker stopped by another's failure reports the group's
		// cancellation; errgroup keeps the first error, the cause.
		return nil, err
	}
	return out, nil
}
