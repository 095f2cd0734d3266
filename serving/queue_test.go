package serving

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReqQueueOrderAndTake(t *testing.T) {
	var q reqQueue
	mk := func(prio, rows int, key uint64) *request {
		r := &request{prio: prio, rows: rows, key: key}
		q.push(r)
		return r
	}
	a := mk(0, 1, 1)
	b := mk(0, 2, 2) // another shape: must stay queued
	c := mk(5, 1, 1)
	d := mk(0, 3, 1)
	e := mk(-1, 1, 1)
	require.Equal(t, 5, q.len())
	require.Same(t, c, q.head(), "highest priority first")

	batch, rows := q.take(nil, 4, func(r *request) bool { return r.key == 1 })
	require.Equal(t, []*request{c, a, e}, batch, "priority, then arrival; d (3 rows) does not fit in 4")
	require.Equal(t, 3, rows)
	require.False(t, a.queued)
	require.Equal(t, 2, q.len())
	require.Same(t, b, q.head(), "skipped requests keep their place")

	require.True(t, q.remove(d))
	require.False(t, q.remove(d), "removing twice")
	require.False(t, q.remove(a), "a taken request is not queued")
	batch, rows = q.take(batch[:0], 10, func(*request) bool { return true })
	require.Equal(t, []*request{b}, batch)
	require.Equal(t, 2, rows)
	require.Equal(t, 0, q.len())
}

func TestReqQueueBoundsEmptyPriorityLists(t *testing.T) {
	var q reqQueue
	for p := 0; p < 100; p++ {
		r := &request{prio: p, rows: 1}
		q.push(r)
		require.True(t, q.remove(r))
	}
	require.LessOrEqual(t, len(q.levels), emptyLevelsKept+1)
}
