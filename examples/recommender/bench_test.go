package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
)

// BenchmarkRecommend measures one recommendation of 10 items out of 50
// candidates, from 32 concurrent callers, three ways:
//
//   - direct: what the request path costs without Quiver's serving layers:
//     the feature reads and retrieval, then the production model run
//     straight on ONNX Runtime, one run per request;
//   - in-process: App.recommend, the same work through the experiment's
//     router, the Batcher (merging callers' rows) and the registry alias;
//   - http: the same over loopback HTTP with JSON, as clients see it.
//
// in-process/direct is the price (or gain, when batching pays) of the
// composition; http/in-process that of the protocol.
func BenchmarkRecommend(b *testing.B) {
	app, err := New(context.Background(), Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	b.Cleanup(func() { _ = app.Close() })
	ctx := context.Background()
	var next atomic.Uint64
	user := func() string { return app.world.users[int(next.Add(1))%len(app.world.users)].ID }

	b.Run("direct", func(b *testing.B) {
		m, err := onnx.LoadBytes(ctx, rankerV1, onnx.Options{})
		require.NoError(b, err)
		defer m.Close()
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c, err := app.candidates(ctx, user(), -1)
				if err != nil {
					b.Error(err)
					return
				}
				s, err := scores(m.Predict(ctx, map[string]serving.Tensor{"x": serving.NewTensor([]int64{int64(len(c.ids)), rowWidth}, c.rows)}))
				if err != nil {
					b.Error(err)
					return
				}
				_ = topK(s, 10)
			}
		})
	})
	b.Run("in-process", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := app.recommend(ctx, "bench", user(), 10, -1); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("http", func(b *testing.B) {
		ts := httptest.NewServer(app.Handler())
		defer ts.Close()
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := client.Get(ts.URL + "/recommend?k=10&user=" + user())
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	})
}
