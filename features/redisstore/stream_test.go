package redisstore

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/quiverml/quiver/features"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// failingWriter fails its first n Puts with a non-row error.
type failingWriter struct {
	mu   sync.Mutex
	n    int
	next features.Writer
}

var errDown = errors.New("store down")

func (f *failingWriter) Put(ctx context.Context, view string, rows ...features.Row) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n > 0 {
		f.n--
		return errDown
	}
	return f.next.Put(ctx, view, rows...)
}

func runUntil(t *testing.T, src *StreamSource, w features.Writer, done func() bool) (StreamStats, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		st  StreamStats
		err error
	}
	ch := make(chan result, 1)
	go func() {
		st, err := src.Run(ctx, w, testView())
		ch <- result{st, err}
	}()
	deadline := time.After(10 * time.Second)
	for !done() {
		select {
		case r := <-ch:
			return r.st, r.err
		case <-deadline:
			t.Fatal("stream consumer did not finish in 10s")
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	r := <-ch
	return r.st, r.err
}

func TestStreamConsumesAcksAndResumes(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	ctx := context.Background()
	v := testView()
	now := time.Now()
	for i := range 10 {
		_, err := Publish(ctx, rdb, "events", v, testRow("u"+strconv.Itoa(i), now, float32(i)))
		require.NoError(t, err)
	}
	// A malformed entry is rejected and acknowledged, not redelivered.
	require.NoError(t, rdb.XAdd(ctx, &redis.XAddArgs{Stream: "events", Values: []any{"entity", "x", "event_time", "soon"}}).Err())
	require.NoError(t, rdb.XAdd(ctx, &redis.XAddArgs{Stream: "events", Values: []any{"entity", "y", "event_time", "1", "colour", "red"}}).Err())

	m := features.New(features.Options{})
	defer m.Close()
	require.NoError(t, m.Register(v))
	opts := StreamOptions{Stream: "events", Group: "fs", Consumer: "replica-1", Count: 4, Block: 20 * time.Millisecond}

	// First run: the store fails, so Run stops with the batch delivered but
	// not acknowledged.
	_, err := NewStreamSource(rdb, opts).Run(ctx, &failingWriter{n: 1, next: m}, v)
	require.ErrorIs(t, err, errDown)
	pending, err := rdb.XPending(ctx, "events", "fs").Result()
	require.NoError(t, err)
	require.Equal(t, int64(4), pending.Count)

	// Restart under the same consumer name: pending entries come first.
	st, err := runUntil(t, NewStreamSource(rdb, opts), m, func() bool {
		p, _ := rdb.XPending(ctx, "events", "fs").Result()
		n, _ := m.Len("user")
		return n == 10 && p != nil && p.Count == 0
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, uint64(12), st.Read)
	require.Equal(t, uint64(10), st.Stored)
	require.Equal(t, uint64(2), st.Rejected)
	require.Equal(t, uint64(12), st.Acked)
	res, err := m.GetRow(ctx, "user", "u7")
	require.NoError(t, err)
	require.Equal(t, float32(7), res.Values["age"].Float32())
	require.Equal(t, []float32{0.5, -1}, res.Values["emb"].Embedding())

	// New entries after a restart are picked up; old ones are not re-read.
	_, err = Publish(ctx, rdb, "events", v, testRow("late", now, 99))
	require.NoError(t, err)
	st, err = runUntil(t, NewStreamSource(rdb, opts), m, func() bool { n, _ := m.Len("user"); return n == 11 })
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, uint64(1), st.Read)
}

func TestParseMessage(t *testing.T) {
	v := testView()
	cases := []struct {
		name   string
		fields map[string]any
		want   error
	}{
		{"ok", map[string]any{"entity": "a", "event_time": "5", "age": "1.5", "clicks": "3", "country": "de", "emb": "1, 2"}, nil},
		{"no entity", map[string]any{"event_time": "5"}, ErrMessage},
		{"bad time", map[string]any{"entity": "a", "event_time": "x"}, ErrMessage},
		{"bad float", map[string]any{"entity": "a", "event_time": "5", "age": "old"}, ErrMessage},
		{"bad int", map[string]any{"entity": "a", "event_time": "5", "clicks": "1.5"}, ErrMessage},
		{"bad embedding", map[string]any{"entity": "a", "event_time": "5", "emb": "1,x"}, ErrMessage},
		{"unknown feature", map[string]any{"entity": "a", "event_time": "5", "colour": "red"}, features.ErrUnknownFeature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseMessage(v, tc.fields)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			require.Equal(t, int64(5), r.EventTime.UnixNano())
			require.Equal(t, float32(1.5), r.Values["age"].Float32())
			require.Equal(t, []float32{1, 2}, r.Values["emb"].Embedding())
		})
	}
	_, err := NewStreamSource(nil, StreamOptions{}).Run(context.Background(), nil, v)
	require.ErrorIs(t, err, ErrMessage)
}

// FuzzParseMessage feeds arbitrary field values to the stream decoder: a
// row or an error, never a panic.
func FuzzParseMessage(f *testing.F) {
	v := testView()
	f.Add("a", "5", "1.5", "3", "de", "1,2")
	f.Add("", "x", "NaN", "9999999999999999999999", "", ",,")
	f.Fuzz(func(t *testing.T, ent, ts, age, clicks, country, emb string) {
		r, err := ParseMessage(v, map[string]any{"entity": ent, "event_time": ts, "age": age, "clicks": clicks, "country": country, "emb": emb})
		if err != nil {
			require.True(t, errors.Is(err, ErrMessage) || errors.Is(err, features.ErrUnknownFeature), "%v", err)
			return
		}
		require.Equal(t, ent, r.Entity)
		require.Len(t, r.Values, 4)
	})
}
