package registry

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/onnx"
)

// nopModel answers at once without allocating, so the benchmark measures
// only what sits in front of it.
type nopModel struct{}

func (nopModel) Info() serving.Info { return serving.Info{} }
func (nopModel) Predict(context.Context, map[string]serving.Tensor) (map[string]serving.Value, error) {
	return nil, nil
}
func (nopModel) Close() error { return nil }

// rwMutexRegistry is the hand-rolled alternative: a map of aliases behind a
// RWMutex, held for reading across the call so a swap waits for requests to
// drain before closing the old model.
type rwMutexRegistry struct {
	mu     sync.RWMutex
	models map[string]serving.Model
}

func (r *rwMutexRegistry) Predict(ctx context.Context, alias string, in map[string]serving.Tensor) (map[string]serving.Value, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.models[alias].Predict(ctx, in)
}

func nopServer(b *testing.B) *Handle {
	b.Helper()
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Publish(ctx, "m", []File{{Name: "m", Data: []byte("x")}}, Meta{}); err != nil {
		b.Fatal(err)
	}
	if err := s.SetAlias(ctx, "m", "production", 1); err != nil {
		b.Fatal(err)
	}
	srv, err := NewServer(s, func(context.Context, Version, string) (serving.Model, error) { return nopModel{}, nil },
		ServerOptions{PollInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	if err := srv.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	h, err := srv.Model("m", "production")
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkResolve measures the per-request cost of serving through an
// alias: direct is the model called as is, rwmutex a map behind a RWMutex
// held across the call, handle this package's Handle (atomic pointer plus
// reference count).
func BenchmarkResolve(b *testing.B) {
	ctx := context.Background()
	var direct serving.Model = nopModel{}
	rw := &rwMutexRegistry{models: map[string]serving.Model{"production": nopModel{}}}
	h := nopServer(b)
	cases := []struct {
		name string
		call func() error
	}{
		{"direct", func() error { _, err := direct.Predict(ctx, nil); return err }},
		{"rwmutex", func() error { _, err := rw.Predict(ctx, "production", nil); return err }},
		{"handle", func() error { _, err := h.Predict(ctx, nil); return err }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.call(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.call(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkTimeToServe measures how long a new version takes from the start
// of Publish until requests see it: publish (write, fsync, rename), then a
// Sync that verifies checksums, loads, warms up and swaps. "fake" uses a
// loader that does nothing, so it shows the registry's own cost; "onnx"
// loads a real ONNX Runtime session of a 16-8-4 MLP with warm-up.
func BenchmarkTimeToServe(b *testing.B) {
	onnxModel := versionedMLP(b, 1)
	loaders := []struct {
		name string
		load Loader
		data []byte
	}{
		{"fake", func(context.Context, Version, string) (serving.Model, error) { return nopModel{}, nil }, onnxModel},
		{"onnx", FileLoader("onnx", onnx.Opener(onnx.Options{WarmUp: true})), onnxModel},
	}
	for _, l := range loaders {
		b.Run(l.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			srv, err := NewServer(s, l.load, ServerOptions{PollInterval: time.Hour, Policy: Policy{DropPrevious: true}})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			h, err := srv.Model("m", "")
			if err != nil {
				b.Fatal(err)
			}
			var publish, serve time.Duration
			for b.Loop() {
				t0 := time.Now()
				v, err := s.Publish(ctx, "m", []File{{Name: "model.onnx", Data: l.data}}, Meta{})
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := srv.Sync(ctx); err != nil {
					b.Fatal(err)
				}
				if cur, ok := h.Version(); !ok || cur.Number != v.Number {
					b.Fatalf("serving %d, want %d", cur.Number, v.Number)
				}
				publish += t1.Sub(t0)
				serve += time.Since(t1)
				// Keep the scan short: drop versions that no longer serve.
				if v.Number > 1 {
					_ = s.Delete(ctx, "m", v.Number-1)
				}
			}
			b.ReportMetric(float64(publish.Microseconds())/float64(b.N), "publish-µs/op")
			b.ReportMetric(float64(serve.Microseconds())/float64(b.N), "sync-µs/op")
		})
	}
}

// BenchmarkPredictONNX compares a real model called directly with the same
// model behind a Handle.
func BenchmarkPredictONNX(b *testing.B) {
	ctx := context.Background()
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Publish(ctx, "m", []File{{Name: "model.onnx", Data: versionedMLP(b, 1)}}, Meta{}); err != nil {
		b.Fatal(err)
	}
	srv, err := NewServer(s, FileLoader("onnx", onnx.Opener(onnx.Options{})), ServerOptions{PollInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	h, err := srv.Model("m", "")
	if err != nil {
		b.Fatal(err)
	}
	_, dir, err := s.Fetch(ctx, "m", 1)
	if err != nil {
		b.Fatal(err)
	}
	direct, err := FileLoader("onnx", onnx.Opener(onnx.Options{}))(ctx, Version{Model: "m", Number: 1, Entry: "model.onnx"}, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	in := mlpInputs(rand.New(rand.NewPCG(1, 2)), 1)
	for _, c := range []struct {
		name string
		m    serving.Model
	}{{"direct", direct}, {"handle", h}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.m.Predict(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
