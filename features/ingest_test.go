package features

import (
	"context"
	"errors"
	"iter"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestIngestChannel(t *testing.T) {
	m, clk := newTestStore(t, Options{}, floatView("v", 0, 0))
	src := make(chan Row)
	var rejected []error
	done := make(chan struct{})
	var stats IngestStats
	var err error
	go func() {
		defer close(done)
		stats, err = Ingest(context.Background(), m, "v", src, IngestOptions{BatchSize: 8, OnReject: func(_ string, e error) { rejected = append(rejected, e) }})
	}()
	for i := range 20 {
		r := Row{Entity: "k" + strconv.Itoa(i), EventTime: clk.Now(), Values: map[string]Value{"x": Float32(float32(i))}}
		if i == 5 {
			r.Values["nope"] = Float32(1)
		}
		src <- r
	}
	close(src)
	<-done
	require.NoError(t, err)
	require.Equal(t, IngestStats{Rows: 20, Batches: 3, Rejected: 1}, stats)
	require.Len(t, rejected, 1)
	require.ErrorIs(t, rejected[0], ErrUnknownFeature)
	n, _ := m.Len("v")
	require.Equal(t, 19, n)
}

func TestIngestFlushesPartialBatchOnTimer(t *testing.T) {
	m, clk := newTestStore(t, Options{}, floatView("v", 0, 0))
	src := make(chan Row, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = Ingest(ctx, m, "v", src, IngestOptions{BatchSize: 100, FlushInterval: time.Millisecond})
	}()
	src <- Row{Entity: "a", EventTime: clk.Now(), Values: map[string]Value{"x": Float32(1)}}
	require.Eventually(t, func() bool { n, _ := m.Len("v"); return n == 1 }, 5*time.Second, time.Millisecond)
}

func TestIngestStopsOnContextAndFatalErrors(t *testing.T) {
	m, clk := newTestStore(t, Options{}, floatView("v", 0, 0))
	ctx, cancel := context.WithCancel(context.Background())
	src := make(chan Row, 4)
	src <- Row{Entity: "a", EventTime: clk.Now(), Values: map[string]Value{"x": Float32(1)}}
	go func() {
		// Cancel once Ingest has taken the row into its pending batch.
		for len(src) > 0 {
			runtime.Gosched()
		}
		cancel()
	}()
	_, err := Ingest(ctx, m, "v", src, IngestOptions{BatchSize: 100, FlushInterval: time.Hour})
	require.ErrorIs(t, err, context.Canceled)
	n, _ := m.Len("v")
	require.Equal(t, 1, n, "the pending batch is written before returning")

	src2 := make(chan Row, 1)
	src2 <- Row{Entity: "a", EventTime: clk.Now()}
	close(src2)
	_, err = Ingest(context.Background(), m, "missing", src2, IngestOptions{})
	require.ErrorIs(t, err, ErrUnknownView)
}

func TestIngestSeq(t *testing.T) {
	m, clk := newTestStore(t, Options{}, floatView("v", 0, 0))
	boom := errors.New("boom")
	seq := func(n int, fail bool) iter.Seq2[Row, error] {
		return func(yield func(Row, error) bool) {
			for i := range n {
				if !yield(Row{Entity: "s" + strconv.Itoa(i), EventTime: clk.Now(), Values: map[string]Value{"x": Float32(float32(i))}}, nil) {
					return
				}
			}
			if fail {
				yield(Row{}, boom)
			}
		}
	}
	stats, err := IngestSeq(context.Background(), m, "v", seq(10, false), IngestOptions{BatchSize: 4})
	require.NoError(t, err)
	require.Equal(t, IngestStats{Rows: 10, Batches: 3}, stats)
	_, err = IngestSeq(context.Background(), m, "v", seq(3, true), IngestOptions{})
	require.ErrorIs(t, err, boom)
	n, _ := m.Len("v")
	require.Equal(t, 10, n)
}
