package vector

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireProgress checks a sequence of progress calls: one operation,
// one total, Done strictly increasing, and Done == Total in the last call
// only.
func requireProgress(t *testing.T, calls []Progress, op string, total int) {
	t.Helper()
	require.NotEmpty(t, calls)
	for i, c := range calls {
		require.Equal(t, op, c.Op, "call %d", i)
		require.Equal(t, total, c.Total, "call %d", i)
		if i > 0 {
			require.Greater(t, c.Done, calls[i-1].Done, "call %d: Done must grow", i)
		}
		if i < len(calls)-1 {
			require.Less(t, c.Done, total, "call %d: only the last call reports Done == Total", i)
		}
	}
	require.Equal(t, total, calls[len(calls)-1].Done)
}

func TestProgressAdd(t *testing.T) {
	ctx := context.Background()
	data, _ := clustered(2000, 0, 16, 10, 5)
	path := filepath.Join(t.TempDir(), "during.qvix")
	var calls []Progress
	var h *HNSW[uint64]
	var saveErr error
	saved := false
	h = must(NewHNSW[uint64](Options{Dim: 16, EfConstruction: 32, Workers: 4, Progress: func(p Progress) {
		calls = append(calls, p)
		if !saved {
			saved = true
			// The callback may use the index, even for a call that waits
			// for the running Add to finish.
			saveErr = h.Save(ctx, path)
		}
		_ = h.Len()
	}}))
	require.NoError(t, h.Add(ctx, items(data)...))
	requireProgress(t, calls, "add", len(data))
	require.NoError(t, saveErr)
	_, err := LoadHNSW[uint64](ctx, path, Options{})
	require.NoError(t, err)

	// A small batch reports its end only; Upsert counts the items left
	// after repeated ids collapse.
	calls = nil
	up := items(data[:10])
	up = append(up, up[0])
	require.NoError(t, h.Upsert(ctx, up...))
	require.Equal(t, []Progress{{Op: "add", Done: 10, Total: 10}}, calls)

	// A failed Add ends without the Done == Total call.
	calls = nil
	dup := []Item[uint64]{{ID: 1_000_000, Vector: data[0]}, {ID: 3, Vector: data[1]}}
	require.ErrorIs(t, h.Add(ctx, dup...), ErrDuplicateID)
	require.Empty(t, calls)
}

func TestProgressLoad(t *testing.T) {
	ctx := context.Background()
	data, _ := clustered(1500, 0, 8, 6, 6)
	h := buildHNSW(t, data, Options{Dim: 8, EfConstruction: 32, CompactRatio: -1})
	_, err := h.Delete(ctx, 0, 1, 2)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "idx.qvix")
	require.NoError(t, h.Save(ctx, path))

	var calls []Progress
	g, err := LoadHNSW[uint64](ctx, path, Options{Progress: func(p Progress) { calls = append(calls, p) }})
	require.NoError(t, err)
	require.Equal(t, len(data)-3, g.Len())
	// Tombstoned slots are loaded too, so they count.
	requireProgress(t, calls, "load", len(data))

	// A corrupt file ends without the Done == Total call.
	b := must(readVerified(path))
	bad := filepath.Join(t.TempDir(), "bad.qvix")
	require.NoError(t, writeAtomic(ctx, bad, func(e *encoder) error { e.write(b[:len(b)/2]); return nil }))
	calls = nil
	_, err = LoadHNSW[uint64](ctx, bad, Options{Progress: func(p Progress) { calls = append(calls, p) }})
	require.ErrorIs(t, err, ErrCorrupt)
	for _, c := range calls {
		require.Less(t, c.Done, c.Total)
	}
}

// TestProgressReporter drives the reporter directly: intermediate calls
// come from its goroutine with the count so far, held below Total until
// the operation finishes. It waits for each call on a channel.
func TestProgressReporter(t *testing.T) {
	got := make(chan Progress)
	p := startProgress(func(p Progress) { got <- p }, "x", 100)
	next := func() Progress {
		t.Helper()
		select {
		case c := <-got:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no progress call")
			return Progress{}
		}
	}
	p.add(10)
	require.Equal(t, Progress{"x", 10, 100}, next())
	p.add(90)
	require.Equal(t, Progress{"x", 99, 100}, next())
	p.finish()
	go p.stop()
	require.Equal(t, Progress{"x", 100, 100}, next())

	require.Nil(t, startProgress(nil, "x", 100))
	var none *progress
	none.add(1)
	none.finish()
	none.stop()
}

func TestProgressCompact(t *testing.T) {
	ctx := context.Background()
	data, _ := clustered(1500, 0, 8, 6, 7)
	var calls []Progress
	h := buildHNSW(t, data, Options{Dim: 8, EfConstruction: 32, CompactRatio: -1, Progress: func(p Progress) {
		if p.Op == "compact" {
			calls = append(calls, p)
		}
	}})
	ids := make([]uint64, 300)
	for i := range ids {
		ids[i] = uint64(i)
	}
	_, err := h.Delete(ctx, ids...)
	require.NoError(t, err)
	require.NoError(t, h.Compact(ctx))
	requireProgress(t, calls, "compact", len(data))
	require.Equal(t, 300, h.Stats().FreeSlots)

	// A cancelled compaction ends without the Done == Total call.
	_, err = h.Delete(ctx, 400, 401)
	require.NoError(t, err)
	calls = nil
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, h.Compact(cctx), context.Canceled)
	for _, c := range calls {
		require.Less(t, c.Done, c.Total)
	}
}
