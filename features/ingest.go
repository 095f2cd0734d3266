package features

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"
)

// Writer is the write side of a Store: what ingestion feeds.
type Writer interface {
	Put(ctx context.Context, view string, rows ...Row) error
}

// IngestOptions configures Ingest and IngestSeq. The zero value is ready
// to use.
type IngestOptions struct {
	// BatchSize is the most rows per Put. Zero means 256.
	BatchSize int
	// FlushInterval bounds how long a partial batch waits for more rows
	// (channel sources only). Zero means 100ms.
	FlushInterval time.Duration
	// OnReject is called with the error of every batch in which some rows
	// were rejected (the valid rows of the batch are stored). Nil logs the
	// error at warn level.
	OnReject func(view string, err error)
	// Logger receives rejections when OnReject is nil. Nil means
	// slog.Default(); pass slog.New(slog.DiscardHandler) to silence it.
	Logger *slog.Logger
}

// IngestStats counts what an ingestion run did.
type IngestStats struct {
	// Rows offered, Batches written, Rejected rows (invalid, not stored).
	Rows, Batches, Rejected uint64
}

func (o IngestOptions) withDefaults() IngestOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 100 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

type ingester struct {
	w     Writer
	view  string
	opts  IngestOptions
	batch []Row
	stats IngestStats
}

// flush writes the pending batch. Row-level rejections are reported and
// ingestion goes on; any other error (unknown view, closed store,
// cancelled context, I/O) is returned.
func (g *ingester) flush(ctx context.Context) error {
	if len(g.batch) == 0 {
		return nil
	}
	err := g.w.Put(ctx, g.view, g.batch...)
	g.stats.Batches++
	n := len(g.batch)
	clear(g.batch)
	g.batch = g.batch[:0]
	if err == nil {
		return nil
	}
	rejected := RowErrors(err)
	if rejected == 0 {
		return fmt.Errorf("features: ingest %q: %w", g.view, err)
	}
	g.stats.Rejected += uint64(min(rejected, n))
	if g.opts.OnReject != nil {
		g.opts.OnReject(g.view, err)
	} else {
		g.opts.Logger.Warn("features: rows rejected", "view", g.view, "rows", rejected, "error", err)
	}
	return nil
}

// RowErrors counts the per-row validation errors joined in an error that
// PutMany returned: zero when err is nil or is not only row rejections (a
// store-level failure such as ErrClosed). Ingestion code uses it to tell
// rows to skip from errors to stop on.
func RowErrors(err error) int {
	if err == nil {
		return 0
	}
	rowLevel := func(e error) bool {
		for _, s := range []error{ErrUnknownFeature, ErrType, ErrDimension, ErrInvalidValue, ErrInvalidEntity, ErrTooLarge, ErrEventTime} {
			if errors.Is(e, s) {
				return true
			}
		}
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range j.Unwrap() {
			if !rowLevel(e) {
				return 0
			}
			n++
		}
		return n
	}
	if rowLevel(err) {
		return 1
	}
	return 0
}

func (g *ingester) add(ctx context.Context, r Row) error {
	g.stats.Rows++
	g.batch = append(g.batch, r)
	if len(g.batch) >= g.opts.BatchSize {
		return g.flush(ctx)
	}
	return nil
}

// Ingest writes rows from src to view in batches of opts.BatchSize (or
// whatever arrived within opts.FlushInterval) until src is closed, which
// returns nil, or ctx ends, which writes the pending batch and returns
// ctx's error. Invalid rows are counted and reported through
// opts.OnReject; other write errors end ingestion.
func Ingest(ctx context.Context, w Writer, view string, src <-chan Row, opts IngestOptions) (IngestStats, error) {
	g := &ingester{w: w, view: view, opts: opts.withDefaults()}
	t := time.NewTimer(g.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			err := g.flush(context.WithoutCancel(ctx))
			return g.stats, errors.Join(fmt.Errorf("features: ingest %q: %w", view, ctx.Err()), err)
		case r, ok := <-src:
			if !ok {
				return g.stats, g.flush(ctx)
			}
			if len(g.batch) == 0 {
				t.Reset(g.opts.FlushInterval)
			}
			if err := g.add(ctx, r); err != nil {
				return g.stats, err
			}
		case <-t.C:
			if err := g.flush(ctx); err != nil {
				return g.stats, err
			}
		}
	}
}

// IngestSeq writes rows from an iterator to view in batches until it is
// exhausted (nil), yields an error (returned after writing the pending
// batch) or ctx ends.
func IngestSeq(ctx context.Context, w Writer, view string, src iter.Seq2[Row, error], opts IngestOptions) (IngestStats, error) {
	g := &ingester{w: w, view: view, opts: opts.withDefaults()}
	for r, err := range src {
		if err != nil {
			return g.stats, errors.Join(fmt.Errorf("features: ingest %q: source: %w", view, err), g.flush(ctx))
		}
		if cerr := ctx.Err(); cerr != nil {
			return g.stats, errors.Join(fmt.Errorf("features: ingest %q: %w", view, cerr), g.flush(context.WithoutCancel(ctx)))
		}
		if err := g.add(ctx, r); err != nil {
			return g.stats, err
		}
	}
	return g.stats, g.flush(ctx)
}
